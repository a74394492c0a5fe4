# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv system-deps bench-deps clean

demo: $(STAMP)  ## run the whole system on embedded defaults (SERVE=1 keeps it running)
	$(BIN)/python -m sandbox.demo

test: $(STAMP) system-deps  ## run every test (unit, integration with real Redis/SMTP/CRM/workers, browser)
	$(BIN)/python -m pytest

bench: $(STAMP) system-deps bench-deps  ## run the benchmarks in bench/ (figures, not asserts; see bench/README.md)
	$(BIN)/python bench/export_bench.py
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/ack_bench.py
	$(BIN)/python bench/worker_bench.py
	$(BIN)/python bench/drain_bench.py
	$(BIN)/python bench/backfill_bench.py

# The browser tests drive Debian's chromium (Playwright's own browser download is not used);
# the SMTP TLS tests make a throwaway certificate with openssl; the export tests open the
# workbook in LibreOffice (soffice, headless); the evidence tests run against a real
# PostgreSQL: tests/postgres_server.py starts a throwaway cluster with Debian's initdb and
# pg_ctl, which live in /usr/lib/postgresql/<major>/bin, not on PATH. The demo test pastes
# the curl command the demo prints.
SYSTEM_PACKAGES := chromium openssl libreoffice-calc-nogui postgresql curl
system-deps:
	@command -v chromium >/dev/null && command -v openssl >/dev/null && command -v soffice >/dev/null \
	  && command -v curl >/dev/null \
	  && { command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || { \
	  echo "installing $(SYSTEM_PACKAGES) from Debian's packages (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); }

# bench/ack_bench.py drives the web receiver with wrk, an HTTP load generator written in C
# (Debian's package), so that the client takes little of the 2 cores the receivers run on.
BENCH_PACKAGES := wrk
bench-deps:
	@command -v wrk >/dev/null || { \
	  echo "installing $(BENCH_PACKAGES) from Debian's packages (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PACKAGES); }

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var build *.egg-info
