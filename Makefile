# Two commands: `make demo` runs the quickstart, `make test` runs the whole test suite.
# Each creates .venv when it is missing and installs the project into it; torch is pinned through
# constraints.txt to 2.13.0 (the CPU build these machines keep on disk; a looser pin pulls a CUDA build).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test validate install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/memorylab run scenarios/quickstart.yaml --overwrite
	@echo "report: runs/quickstart/report.md"

validate: $(STAMP)
	$(BIN)/memorylab validate scenarios/

test: $(STAMP) validate
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs .pytest_cache *.egg-info
