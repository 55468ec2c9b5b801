"""What a function restored from a SnapStart snapshot owes: state that must differ per environment is
renewed after the restore, and a schedule keeps the snapshot's version alive.

Every environment restored from one snapshot starts with the snapshot's memory, the global `random`
state included: botocore's retry jitter (botocore.retries.standard) draws from it, so without a
reseed every restored environment would wait the same "random" backoff after a throttle, and their
retries would meet again. `secrets`, `uuid4` and the X-Ray ids read os.urandom, which the restore
does not replay. Runtime hooks: https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html
(the snapshot_restore_py library ships in the Python managed runtimes; requirements-serve.txt pins
it for local runs and tests). Uniqueness after a restore:
https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html

A SnapStart version that is not invoked for 14 days goes Inactive, and invoking it fails with
SnapStartNotReadyException until it is Active again:
https://docs.aws.amazon.com/lambda/latest/dg/snapstart-troubleshooting.html. infra/agent_function.py
schedules KEEP_ALIVE_EVENT to each SnapStart alias; the handlers answer it before anything else.
"""

import random

from snapshot_restore_py import register_after_restore

KEEP_ALIVE_EVENT = {"keep_alive": True}
KEPT_ALIVE = {"kept_alive": True}


def is_keep_alive(event) -> bool:
    return event == KEEP_ALIVE_EVENT


@register_after_restore
def reseed_after_restore() -> None:
    """Reseeds the global `random` from os.urandom, per environment."""
    random.seed()
