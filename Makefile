# The verbs of the project. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve
NODE_STAMP := node_modules/.installed
export PYTHONPATH := functions:.
export CDK_DISABLE_VERSION_CHECK := true
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: dev test test-unit test-integration test-infra synth deploy destroy chat bench lint reliability clean

# `make dev` installs only what serving needs; the CDK, test and lint toolchain comes with the rest.
$(SERVE_STAMP): requirements-serve.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-serve.txt
	touch $@

$(STAMP): requirements.txt requirements-serve.txt layers/agent/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(SERVE_STAMP) $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

dev: $(SERVE_STAMP) $(NODE_STAMP)  ## run the agent locally: DynamoDB Local + the HTTP API on 127.0.0.1:$${PORT:-3000}
	$(PY) -m local.server

chat: $(SERVE_STAMP)  ## terminal chat with the local server (or ENDPOINT=... TOKEN=...)
	$(PY) -m local.chat

test: install  ## unit (moto) + integration (DynamoDB Local over HTTP) + infra (synth) tests
	$(PY) -m pytest

synth: install  ## cdk synth with the real layer, no Docker; then check the layer's wheels
	CDK_DOCKER=/nonexistent/docker npx cdk synth --quiet
	$(PY) -m infra.check_layer cdk.out

deploy: install  ## cdk deploy (ALARM_EMAIL=you@example.com to get the alarm e-mails)
	npx cdk deploy --require-approval never $(if $(ALARM_EMAIL),-c alarmEmail=$(ALARM_EMAIL)) $(CDK_ARGS)

destroy: install
	npx cdk destroy --force

bench: install  ## reproducible measurements, saved under benchmarks/results/
	$(PY) -m benchmarks.run

reliability: install  ## rerun the reliability tests and regenerate docs/RELIABILITY.md from them
	$(PY) -m pytest tests/integration --reliability-report docs/RELIABILITY.md

lint: synth  ## cfn-lint the synthesized template
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

clean:
	rm -rf $(VENV) node_modules cdk.out .local-data
