# revspend: the two commands a newcomer needs are `make pipeline` and `make test`.
SHELL := bash
VENV := .venv
DVC := $(VENV)/bin/dvc
PYTHON ?= python3

.PHONY: all setup pipeline serve test lint unit e2e validate-compose clean

all: pipeline

## setup: a virtual environment with the pinned DVC (requirements-dvc.txt)
setup: $(DVC)

$(DVC): requirements-dvc.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dvc.txt
	@touch $(DVC)

## pipeline: generate data, build features, train, evaluate (dvc repro)
pipeline: setup
	$(DVC) repro

## serve: the prediction server on http://127.0.0.1:8000 (run `make pipeline` first)
serve:
	scripts/stage serve --bind 127.0.0.1:8000 --registry models/registry --snapshot data/online/snapshot.bin

## test: formatting, lints, the workspace tests and the end-to-end run
test: lint unit e2e

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit:
	cargo test --workspace --locked

e2e: setup
	DVC=$(DVC) scripts/e2e.sh

## validate-compose: check docker/compose.yaml against the compose-spec schema
validate-compose:
	scripts/validate-compose.sh

clean:
	rm -rf data/raw data/master data/splits data/online data/features.json \
	  data/quarantine.csv models/model.bin reports dvc_plots
