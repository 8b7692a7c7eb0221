# Two commands matter: `make setup` once on a fresh machine, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: setup browser screenshots docs test pytest lint typecheck run check bench bench-halo sandbox clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	@$(MAKE) --no-print-directory browser

# Debian's Chromium and ChromeDriver for the browser test; where they cannot be installed the
# test is skipped and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "could not install chromium: the browser test will be skipped"; \
	else \
		echo "chromium missing and apt-get unavailable: the browser test will be skipped"; \
	fi

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# At the lowest priority: in `make test` it runs beside pytest on the CPU time pytest leaves idle
# (its workers waiting on Azurite and its subprocesses) rather than taking a CPU from pytest's
# start-up, when every worker imports and collects at once.
typecheck:
	nice -n 19 $(BIN)/mypy

# mypy (one CPU, about 6-13 s cold) runs beside pytest; whole lines of each are printed as they
# finish, and either failing fails the target.
test: lint
	@$(MAKE) --no-print-directory -j2 --output-sync=line typecheck pytest

# A run starts about fifteen Python processes (workers, devhosts, the setup check) that import the
# same modules: with Python's bytecode cache (__pycache__, git-ignored) the first one compiles them
# for the rest. A machine that turns the cache off (PYTHONDONTWRITEBYTECODE) has each compile them
# again, which cost a devhost-heavy slice of the suite an eighth of its CPU.
pytest:
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

# The README's pictures of the tab: the browser test, writing its screenshots to docs/images.
screenshots:
	SCREENSHOT_DIR=docs/images $(PY) -m pytest -q tests/tab/test_browser.py -k allowed_origin

run:
	$(PY) -m sandbox.devhost --port 7071

# The console examples of README.md and docs/, answered anew by a real run of `make run`'s devhost
# and written into the docs (tests/docs checks they still answer so).
docs:
	$(PY) -m tests.docs.regenerate

# The setup check (docs/operations.md) against the settings in the environment: one line per
# requirement; exits 1 when a required one is missing or failed.
check:
	$(PY) -m shared.api.setup

bench:
	$(PY) bench/halo_read.py
	$(PY) bench/sync.py
	$(PY) bench/sync.py --immybot --naive
	$(PY) bench/resume.py
	$(PY) bench/report_read.py
	$(PY) bench/assets.py
	$(PY) bench/sync.py --clients 20000 --immybot
	$(PY) bench/faults.py
	$(PY) bench/targets.py
	$(PY) bench/tab.py
	$(PY) bench/load.py
	$(PY) bench/events.py
	$(PY) bench/cold_start.py
	$(PY) bench/transport.py

bench-halo:
	$(PY) bench/halo_read.py

sandbox:
	$(PY) -m sandbox.halo --port 8089

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
