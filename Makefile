# shopsearch: two commands on a fresh machine
#   make demo   set up, index the bundled ESCI-US catalog, answer a few searches, evaluate
#   make test   set up, run the default test tier
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
INDEX  ?= indexes/esci-us
SAMPLE := src/shopsearch/datasets/esci_us

export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser demo test test-slow bench check clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first (a local wheel here), so nothing below pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Headless Chromium for the storefront's browser test (Debian package; Playwright's own
# browser download is not used). Installed when missing and we may (root + apt-get);
# otherwise the browser test is skipped with a message.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian) for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "no $(CHROMIUM): the browser test will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

demo: setup
	$(BIN)/shopsearch index $(SAMPLE)/products.jsonl.gz --out $(INDEX)
	$(BIN)/shopsearch search $(INDEX) "ugg slippers women" "toddler water bottle without straw" -k 5
	$(BIN)/shopsearch search $(INDEX) "kitchen towels" --filter "rating>=4.5" --filter "price<=20" -k 5
	$(BIN)/shopsearch search $(INDEX) "保温杯 water bottle" -k 3
	$(BIN)/shopsearch eval $(INDEX) --judgments $(SAMPLE)/judgments.jsonl --protocol retrieve --pipeline all

test: setup browser
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

bench: setup
	$(BIN)/python benchmarks/bench_index_search.py

check: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) indexes .pytest_cache
