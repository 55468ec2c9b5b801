"""The values the CDK app (infra/) and the functions both use, typed here and nowhere else. Plain
constants with no imports: the CDK app imports this file too, as it does agent/budget.py.
(The memory library's own values live in it: memory.window.STRATEGIES, memory.keys.TURN_PREFIX,
memory.outcomes.WRITE_SUPPRESSED_EVENT.)"""

# AGENT_MODEL_PROVIDER: Claude through Anthropic's API or Amazon Bedrock, or a canned offline model.
PROVIDERS = ("anthropic", "bedrock", "offline")
# AGENT_MODEL_ID when unset. Bedrock serves current Claude models only through inference profiles;
# the global cross-region one works from any commercial region.
DEFAULT_MODEL_IDS = {
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "offline": "offline",
}

# SESSION_TTL_DAYS: conversation items expire this long after their write.
DEFAULT_SESSION_TTL_DAYS = 30
# MEMORY_MAX_TURNS (K): the most turns read into a prompt.
DEFAULT_MAX_TURNS = 20

# Powertools' service names (the only dimension of their metrics, which the dashboard graphs) and
# the CloudWatch namespace of every metric, the alarm's included.
AGENT_SERVICE = "agent"
COMPACTOR_SERVICE = "compactor"
METRICS_NAMESPACE = "AgentMemory"
# The metrics of every turn, synchronous or asynchronous (agent.observation), graphed by the dashboard.
TURN_LATENCY_METRIC, INPUT_TOKENS_METRIC, OUTPUT_TOKENS_METRIC = "TurnLatency", "InputTokens", "OutputTokens"
# A few failed memory writes are noise (a throttle, a blip); this many in 5 minutes means memory is
# being lost: the alarm e-mails. `make drill` sends more turns than this.
SUPPRESSED_WRITES_ALARM_THRESHOLD = 10
SUPPRESSED_WRITES_ALARM_MINUTES = 5
