# Two commands work on a fresh machine: `make build` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: build test test-tools dist lint typecheck snapshots bench e2e bench-deploy fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

# The demo's OmniVoIP images are pulled (build.prebuilt): no checkout of the application sits beside
# this repository, and `omnigen build` refuses build contexts that are missing.
build: $(STAMP)
	OMNIGEN_BUILD__PREBUILT=true $(BIN)/omnigen build

test: $(STAMP) test-tools
	$(BIN)/ruff check omnigen tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

# A wheel of the `omnigen` command for machines without a checkout: `pipx install dist/omnigen-*.whl`.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls dist/*.whl

# The judges the tests run besides Python: the Node tools (npm ci) and, as root, the Debian
# daemons and shells. Idempotent and quiet once installed; a judge that cannot be installed
# here (no root, Node too old) is skipped by its tests with the reason, never failed.
test-tools:
	@bash .ci/install-node-tools.sh || echo "make test: the Node judges (dclint, taplo) are not installed; their tests will skip"
	@for installer in .ci/install-shells.sh .ci/install-daemons.sh .ci/install-tls-firewall.sh; do \
		bash $$installer || echo "make test: $$installer failed; the tests that need it will skip"; \
	done

snapshots: $(STAMP)
	$(BIN)/omnigen schema -o schema/omnivoip.schema.json
	$(BIN)/omnigen schema --format markdown -o docs/profile.md
	$(BIN)/pytest -q --snapshot-update tests

# Generator speed and memory against the real `docker compose config -q` (not a test).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# End-to-end tier: a generated deployment on a private Docker engine (root; installs docker.io).
e2e: $(STAMP)
	bash .ci/install-docker.sh
	bash .ci/install-mmdebstrap.sh
	$(BIN)/pytest -q -m e2e tests/e2e --ignore=tests/e2e/realapp
	# Its own session, so its own engine: the images it tags with the compose file's names must not
	# replace the stand-ins above, and the 1-CPU engine above must not wait on its engine's lock.
	$(BIN)/pytest -q -m e2e tests/e2e/realapp

# What publishing the RTP range costs on a real engine: out/bench/, docs/deploy-costs.md,
# omnigen/catalog/measured_costs.py (root; about an hour at 3 runs per cell,
# BENCH_DEPLOY_ARGS="--repeat 1" for a 20-minute look, "--from-csv" to redo the outputs only).
bench-deploy: $(STAMP)
	bash .ci/install-docker.sh
	$(BIN)/pip install --quiet -e '.[test,dev,bench]'
	$(BIN)/python scripts/bench_deploy.py $(BENCH_DEPLOY_ARGS)

# Long fuzzing of build over profile bytes and secrets (`make test` runs 15 s per target):
# FUZZ_SECONDS per target (default 600). New kinds of outcome are saved to
# tests/fuzz_corpus/ (review and commit them: every test run replays the corpus).
fuzz: $(STAMP)
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} FUZZ_COMPOSE_EVERY=$${FUZZ_COMPOSE_EVERY:-4} FUZZ_ROUND_EXAMPLES=$${FUZZ_ROUND_EXAMPLES:-200} FUZZ_RECORD=1 \
		$(BIN)/pytest -q -p no:cacheprovider tests/test_fuzz.py

clean:
	rm -rf out dist .pytest_cache .mypy_cache .ruff_cache
