"""Tracing of the two SnapStart functions (the API and the worker): Powertools' Tracer on the X-Ray SDK.

The decision (docs/DEPLOY.md, "Tracing after the X-Ray SDK"): the X-Ray SDK entered maintenance mode on
2026-02-25 and reaches end of support on 2027-02-25, after which it gets no release, not even for a
security issue (https://docs.aws.amazon.com/xray/latest/devguide/xray-daemon-eos.html); AWS recommends
OpenTelemetry. Lambda's active tracing (infra) needs no SDK in the code and stays. The Tracer stays only
where it costs no cold start: building it imports the SDK and patches botocore, which SnapStart does
once per version, in the snapshot. The compactor, without SnapStart, never imports this module. When
Powertools releases its OpenTelemetry Tracer provider, this module is the one place that changes.
"""

from aws_lambda_powertools.tracing import Tracer

from agent.observability import SERVICE

# Only what the agent calls: botocore (DynamoDB, Bedrock, Secrets Manager). The default, every
# library X-Ray knows, imports each one installed at every cold start (sqlite3 always; httpx and
# requests where present) for nothing: the anthropic SDK sends through its own httpx2, which X-Ray
# cannot patch (benchmarks/cold_start.py).
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
