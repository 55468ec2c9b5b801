"""The time budget of a turn, derived here and nowhere else: the synchronous path behind API Gateway
and the asynchronous worker. Plain numbers of seconds with no imports: the CDK app reads them too.

A real Claude takes about 1 s to its first token, then writes 50-80 tokens a second. Its answer is
streamed (agent.providers), so a timeout bounds the *gaps* between stream events (STALL_SECONDS),
never the answer's length; the turn's deadline bounds the whole turn. A deadline that arrives
while the model is writing ends the answer there: what was written is the reply, stored like any
turn and marked `truncated`.
"""

# Both paths. A memory read fails fast: 2 attempts x (0.5 s connect + 1 s read) + <= 1 s backoff
# (memory/client.py). A write (the best-effort append, the idempotency claim) has the same bounds, and
# so has the read of the model's API key (agent.providers: the secret's client); JSON, logs and
# metrics take ~1 s.
MEMORY_READ_SECONDS = 4
MEMORY_WRITE_SECONDS = 4
SECRET_READ_SECONDS = 4
OVERHEAD_SECONDS = 1
# No stream event for this long means the model stalled. A real stream has gaps of tens of ms
# between tokens; the longest legitimate gap is before the first token of a long prompt (a
# 100,000-token prefill takes several seconds), so 15 s, not less.
STALL_SECONDS = 15
CONNECT_SECONDS = 2

# Synchronous turns. API Gateway HTTP APIs end an integration after at most 30 s (CDK accepts 29 s).
API_INTEGRATION_TIMEOUT_SECONDS = 29
# API Gateway waits for a cold start or a SnapStart restore, the function's timeout does not count it.
COLD_START_RESERVE_SECONDS = 4
SYNC_TURN_SECONDS = API_INTEGRATION_TIMEOUT_SECONDS - COLD_START_RESERVE_SECONDS  # 25: the function timeout
# The model's deadline, counted from the request's entry into the handler (agent.handler), so that
# everything before the model is inside it: the idempotency claim, the API key's read and the memory
# read, at most PRE_MODEL_SECONDS together when each fails as slowly as its client allows. Fast (~30 ms
# together), they leave the model nearly all of it; a failing read is answered 503 before the model is
# called. After the deadline only the append and the answer remain, so the function answers inside its
# timeout whichever dependency hangs. 20 s carry a 1,000-token answer at 60 tokens/s (1 s + 16.7 s);
# about 1,150 tokens is the most a synchronous turn can hold at that pace. Longer answers are cut there
# (`truncated`): send them asynchronously.
SYNC_MODEL_SECONDS = SYNC_TURN_SECONDS - MEMORY_WRITE_SECONDS - OVERHEAD_SECONDS
PRE_MODEL_SECONDS = MEMORY_WRITE_SECONDS + SECRET_READ_SECONDS + MEMORY_READ_SECONDS

# Asynchronous turns (Prefer: respond-async), run by the worker. The longest answer
# (MODEL_MAX_OUTPUT_TOKENS, 8,192 by default) at a slow 40 tokens/s takes 205 s; a short tool round,
# a retry and the memory calls fit in the rest of 5 minutes. It is also how long a client may wait
# to hear that a turn whose worker died has failed.
ASYNC_TURN_SECONDS = 300
ASYNC_MODEL_SECONDS = ASYNC_TURN_SECONDS - MEMORY_WRITE_SECONDS - OVERHEAD_SECONDS
# The worker stops itself at its turn's deadline; the Lambda timeout adds room for its cold start and
# its last status write, so only a hung worker is ever killed (Lambda allows 900 s).
WORKER_TIMEOUT_SECONDS = ASYNC_TURN_SECONDS + 30
# A running turn's partial reply is written back at most this often: about once a second, as a
# client polling it would see it. Each write rewrites the whole reply (a write unit per KB), so past
# the first 4,000 characters (~17 s at 60 tokens/s) it is written only when it grew by a quarter:
# an 8,192-token answer then costs ~40 writes and ~5x its size in write units, not one per second.
PROGRESS_INTERVAL_SECONDS = 1.0
PROGRESS_SMALL_CHARS = 4_000
PROGRESS_GROWTH = 1.25
