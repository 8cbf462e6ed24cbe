# Two commands a fresh machine needs (see README):
#   make serve   install into .venv and run the service on its embedded defaults
#   make test    install into .venv and run linters, type checks and every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint hapi synthea browser unit integration bench bench-writeback bench-cds fit clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/fhircac serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy fhircac

# The HAPI FHIR test server the integration tests start (built with Maven on first use).
hapi: $(STAMP)
	$(BIN)/python tools/hapi_server.py build

# The Synthea test corpus (Synthea 3.3.0 from Maven Central, fixed seed, cached in tools/synthea/cache/;
# about two minutes when it is not cached).
synthea: $(STAMP)
	$(BIN)/python tools/synthea_corpus.py build

# Debian's Chromium and ChromeDriver for the report page's browser test (installed when missing).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "installing Debian packages chromium and chromium-driver"; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends chromium chromium-driver

test: lint hapi synthea browser
	$(BIN)/python -m pytest --hypothesis-profile=ci

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: hapi synthea browser
	$(BIN)/python -m pytest tests/integration

bench: $(STAMP)
	$(BIN)/python bench/calc_batch.py
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/large_record.py

bench-writeback: hapi
	$(BIN)/python bench/writeback.py

# CDS Hooks cac-patient-view under gunicorn against a bare Flask echo (about two minutes).
bench-cds: $(STAMP)
	$(BIN)/python bench/cds.py
	$(BIN)/python bench/cds.py --same-patients --rounds 2

# Re-fit the percentile model (needs the shared reference file and the `fit` extra).
fit: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,fit]'
	$(BIN)/python tools/fit_percentile.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
