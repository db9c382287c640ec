# The README's commands. Each creates what it needs: the virtual environment (.venv) and, at run time,
# an embedded PostgreSQL; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lambda-test faults lint import-times bench venv clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.x)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[bot,reports,dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/expensebot demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Only the fault-injection suite (part of `make test` too), ending with its table: faults injected, messages
# lost and duplicated, 5xx answers, per scenario.
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -q

# Every function of template.yaml through `sam local invoke`, from the `sam build` artifact, against the local
# stack (README: "make lambda-test"). SAM CLI pins many packages, so it lives in a venv of its own; the stamp
# names the version, so another SAM_CLI_VERSION installs that one.
SAM_CLI_VERSION ?= 1.170.0
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)

$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'
	@touch $(SAM_STAMP)

lambda-test: $(STAMP) $(SAM_STAMP)
	$(BIN)/expensebot lambda-test --sam-venv $(SAM_VENV) $(LAMBDA_TEST_ARGS)

# checkov pins many dependencies of its own, so it lives in its own venv, pinned: a new checkov release brings
# new checks, and lint should change only when we change it.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
EXPANDED := .aws-sam/expanded-template.json
CHECKOV_ARGS = --framework cloudformation --skip-download --compact --quiet \
	--skip-check $$($(BIN)/python -c 'import yaml; print(",".join(yaml.safe_load(open("infra/checkov-skips.yaml"))))')

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $(CHECKOV_STAMP)

# cfn-lint and checkov on template.yaml, and checkov again on the plain CloudFormation SAM expands it to (the
# roles, stages and permissions SAM adds): skipped checks and why are in infra/checkov-skips.yaml.
lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m expensebot_tools.project.sam_expand $(EXPANDED)
	$(CHECKOV) $(CHECKOV_ARGS) -f template.yaml
	$(CHECKOV) $(CHECKOV_ARGS) -f $(EXPANDED)

# Cold imports are measured on this venv's Python and on Python 3.13, Lambda's runtime, in a venv that holds
# only what Lambda has: the layers' requirements, the webhook's aiogram and boto3 (the runtime's own). A
# python3.13 from pyenv is used when there is one; PYTHON_LAMBDA=... names another.
PYTHON_LAMBDA ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.13*/bin/python3.13) python3.13)
LAMBDA_VENV := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.installed-stamp

$(LAMBDA_STAMP): layers/expensebot/requirements.txt layers/reports/requirements.txt functions/webhook/requirements.txt
	@test -x $(LAMBDA_VENV)/bin/python || $(PYTHON_LAMBDA) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LAMBDA_VENV)/bin/python -m pip install --quiet -r layers/expensebot/requirements.txt \
		-r layers/reports/requirements.txt -r functions/webhook/requirements.txt boto3
	@touch $(LAMBDA_STAMP)

import-times: $(STAMP) $(LAMBDA_STAMP)
	$(BIN)/expensebot dev import-times --python $(BIN)/python --python $(LAMBDA_VENV)/bin/python

# The speed and size goals, on a generated data set kept in .bench/pgdata (results: .bench/results.jsonl).
# `make bench` runs every benchmark; `make bench BENCH=budget_check` one (`.venv/bin/expensebot bench --list`).
BENCH ?=
bench: $(STAMP)
	$(BIN)/expensebot bench $(BENCH)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) $(LAMBDA_VENV) .pytest_cache .ruff_cache .aws-sam
