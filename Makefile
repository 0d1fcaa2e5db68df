PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# test processes (pytest-xdist); each test module runs whole in one of them, so module fixtures are built once
TEST_WORKERS ?= 2

.PHONY: venv demo test test-all bench clean

venv: $(STAMP)

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# One retry: a transient registry or disk error (seen once in CI: "OSError: [Errno 5] Input/output error")
	# should not fail the build; a real resolution error fails both tries.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test,postgres]' || \
	  (echo "pip install failed; retrying once" >&2; sleep 5; \
	   $(PY) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test,postgres]')
	touch $(STAMP)

demo: venv
	$(VENV)/bin/mixsig demo --out demo-output

test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-all: venv
	$(PY) -m pytest -q -m "" -n $(TEST_WORKERS) --dist loadfile

bench: venv
	$(PY) benchmarks/run_all.py --out bench-output/benchmarks.json

clean:
	rm -rf $(VENV) demo-output bench-output
