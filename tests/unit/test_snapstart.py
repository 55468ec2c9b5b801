"""SnapStart: each environment restored from one snapshot renews its random state, and the keep-alive
schedule's event is answered without touching memory or the model (agent.snapstart)."""

import random

import pytest
import snapshot_restore_py
from botocore.retries.standard import ExponentialBackoff

from agent import snapstart
from dynamodb_actions import recorded_actions

SNAPSHOT_SEED = 1234  # the random state every environment restored from one snapshot starts with


@pytest.fixture
def handlers(functions):
    """The API and worker handler modules, imported as Lambda's init imports them."""
    return list(functions)


def restore(run_hooks: bool) -> list[float]:
    """One environment restored from the snapshot: Lambda runs the after-restore hooks, then the
    function draws what botocore's retry jitter would draw."""
    random.seed(SNAPSHOT_SEED)
    if run_hooks:
        for hook, args, kwargs in snapshot_restore_py.get_after_restore():
            hook(*args, **kwargs)
    return [random.random() for _ in range(4)]


def test_every_restored_environment_draws_its_own_retry_jitter(handlers):
    # Given the handlers' init, which registered the after-restore hook
    assert snapstart.reseed_after_restore in [hook for hook, _, _ in snapshot_restore_py.get_after_restore()]
    # And botocore's retry backoff, which draws its jitter from the global random state
    assert ExponentialBackoff()._random == random.random
    # Then without the hook, two restored environments would draw the same sequence
    assert restore(run_hooks=False) == restore(run_hooks=False)
    # And with the hooks Lambda runs after each restore, they draw different ones
    assert restore(run_hooks=True) != restore(run_hooks=True)


def test_the_keep_alive_event_is_answered_without_memory_or_model(handlers, monkeypatch):
    for handler in handlers:
        monkeypatch.setattr(handler, "configured_model" if hasattr(handler, "configured_model") else "model",
                            lambda *_: pytest.fail("the model was built"))
        with recorded_actions(handler.dynamodb) as actions:
            assert handler.lambda_handler(snapstart.KEEP_ALIVE_EVENT, None) == snapstart.KEPT_ALIVE
        assert actions == set()
