# theranet developer commands. `make install` then `make test` on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q || rc=$$?; if [ "$${rc:-0}" -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $${rc:-0}

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# The digital patient (177Lu-DOTATATE, 7.4 GBq, 4 time points) through two therapy
# cycles: cycle 1 into out/demo/, cycle 2 (8 weeks later, its own kinetics) into
# out/demo/cycle2/, both recorded in out/demo/registry.sqlite, then the plan of the
# next activity. --fwhm-mm 12 is the reconstructed resolution of the phantom's 177Lu
# SPECT model (docs/phantom.md), given as a site gives its measured system
# resolution; the FWHM and calibration uncertainties are the demo's stated inputs.
DEMO := out/demo
DEMO_DOSIMETRY := --fwhm-mm 12 --fwhm-sd-mm 1 --calibration-sd-percent 5 \
	--registry $(DEMO)/registry.sqlite --patient-id DEMO-0001
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/theranet phantom --out $(DEMO)/study --tracer 177Lu-DOTATATE --activity-gbq 7.4 \
		--times-h 4,24,96,168 --seed 0 --quiet
	$(BIN)/theranet dosimetry $(DEMO)/study --out $(DEMO) $(DEMO_DOSIMETRY)
	$(BIN)/theranet phantom --out $(DEMO)/study_cycle2 --tracer 177Lu-DOTATATE \
		--activity-gbq 7.4 --times-h 4,24,96,168 --seed 0 --cycle 2 --quiet
	$(BIN)/theranet dosimetry $(DEMO)/study_cycle2 --out $(DEMO)/cycle2 $(DEMO_DOSIMETRY)
	$(BIN)/theranet plan DEMO-0001 --registry $(DEMO)/registry.sqlite

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out benchmarks/results.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
