# claim-scrubber: the two commands that matter are `make demo` and `make test`.
# Everything runs on loopback: Kafka and Redis from deploy/local/stack.sh, the worker in the
# background with its log in .stack/worker/worker.log.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUNDLE := build/refdata.json
DEMO_INPUT := seeds/examples/claims.jsonl
PAYERS := scrubber/refdata/payers/default.yaml

.PHONY: help venv lock stack-up stack-down stack-status stack-reset refdata topics \
        worker-start worker-stop demo test test-unit lint format contracts \
        prometheus-install prometheus-up prometheus-down alerts-check soak bench

help:
	@echo "make demo        set up everything, run the worker, publish the demo claims, summarise"
	@echo "make test        lint, then the whole suite against the real local stack"
	@echo "make stack-down  stop the worker, Kafka and Redis"

venv: $(VENV)/.installed

LOCK := deploy/requirements.lock

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e '.[dev]'
	touch $@

# Re-resolve the dependencies from pyproject.toml in a scratch environment and pin them.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,2p' $(LOCK); build/lock-venv/bin/pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf build/lock-venv

stack-up:
	deploy/local/stack.sh up

stack-down: worker-stop prometheus-down
	deploy/local/stack.sh down

stack-status:
	deploy/local/stack.sh status

stack-reset: worker-stop
	deploy/local/stack.sh reset

$(BUNDLE): venv $(wildcard seeds/*.txt) $(wildcard scrubber/refdata/*.py) \
           $(wildcard scrubber/refdata/cms/*) scrubber/refdata/master/modifiers.csv $(PAYERS)
	$(BIN)/scrubber refdata build --seeds seeds --payers $(PAYERS) -o $(BUNDLE)

refdata: $(BUNDLE) stack-up
	$(BIN)/scrubber refdata load --bundle $(BUNDLE)

topics: venv stack-up
	$(BIN)/scrubber topics create

worker-start: venv refdata topics
	deploy/local/worker.sh start

worker-stop:
	deploy/local/worker.sh stop

demo: worker-start
	$(BIN)/scrubber demo $(DEMO_INPUT)

# mypy runs without its cache: a cache from an earlier install once passed what a clean clone fails.
lint: venv
	$(BIN)/ruff check scrubber tests
	$(BIN)/ruff format --check scrubber tests
	$(BIN)/mypy --no-incremental

format: venv
	$(BIN)/ruff format scrubber tests
	$(BIN)/ruff check --fix scrubber tests

contracts: venv
	$(BIN)/scrubber contracts generate

prometheus-install:
	deploy/local/prometheus.sh install

prometheus-up: prometheus-install
	deploy/local/prometheus.sh up

prometheus-down:
	deploy/local/prometheus.sh down

alerts-check: prometheus-install
	deploy/local/prometheus.sh check

test-unit: venv prometheus-install
	$(BIN)/pytest tests/unit -q

test: lint stack-up prometheus-install
	$(BIN)/pytest -q

# The benchmark: raw aiokafka and bare Faust passthroughs, the worker, the offline scrub and the
# engine on the same synthetic stream; prints numbers and writes build/bench/.
bench: venv stack-up refdata
	$(BIN)/python -m scrubber.bench

# The chaos suite with long runs (100,000 lines per fault scenario, 30 minutes of steady load
# sampled every minute after a 5-minute warm-up); `make test` runs it bounded. The steady-load
# report and its curves: build/chaos/steady_load.json and .png.
soak: venv stack-up
	CHAOS_LINES=100000 CHAOS_STEADY_SECONDS=1800 CHAOS_STEADY_SAMPLE_SECONDS=60 \
	CHAOS_STEADY_WARMUP_SECONDS=300 $(BIN)/pytest tests/chaos -q -s
