# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

demo: $(STAMP)  ## run the whole system on embedded defaults (SERVE=1 keeps it running)
	$(BIN)/python -m sandbox.demo

test: $(STAMP)  ## run every test (unit, integration with real Redis/SMTP/CRM/workers)
	$(BIN)/python -m pytest

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var build *.egg-info
