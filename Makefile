# revspend: the two commands a newcomer needs are `make pipeline` and `make test`.
SHELL := bash
VENV := .venv
DVC := $(VENV)/bin/dvc
PYTHON ?= python3

.PHONY: all setup setup-audit pipeline serve test lint audit unit e2e docker-test validate-compose clean clean-registry

all: pipeline

## setup: a virtual environment with the pinned DVC (requirements-dvc.txt)
setup: $(DVC)

$(DVC): requirements-dvc.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dvc.txt
	@touch $(DVC)

## setup-audit: cargo-audit in the same virtual environment (requirements-audit.txt)
setup-audit: $(VENV)/bin/cargo-audit

$(VENV)/bin/cargo-audit: requirements-audit.txt $(DVC)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-audit.txt
	@touch $@

## pipeline: generate data, build features, train, evaluate (dvc repro)
pipeline: setup
	$(DVC) repro

## serve: the prediction server on http://127.0.0.1:8000 (run `make pipeline` first).
## Uses REVSPEND_PSEUDONYM_KEY when set, else the public development key the
## default pipeline uses (build_features.allow_development_key in params.yaml).
## The optimised build: serve alone (no data stack), so the release build is
## quick, and the dev build's per-request cost is not what a user measures.
serve:
	cargo build --release --locked -p serve
	target/release/serve --bind 127.0.0.1:8000 --registry models/registry --snapshot data/online/snapshot.bin \
	  --allow-development-key

## test: formatting, lints, the dependency audit, the workspace tests, the
## end-to-end run and the container test (which serves what e2e produced)
test: lint audit unit e2e docker-test

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## audit: known advisories in Cargo.lock (offline; accepted ones and their
## reasons are in .cargo/audit.toml)
audit: setup-audit
	scripts/audit.sh

unit:
	cargo test --workspace --locked

e2e: setup
	DVC=$(DVC) scripts/e2e.sh

## docker-test: build the image with docker compose, run it (host network,
## 127.0.0.1 only), predict, promote another version on the host and see the
## container follow, stop it; starts dockerd and makes the base images when
## missing (scripts/docker-test.sh). Needs `make pipeline` first.
docker-test: setup
	scripts/docker-test.sh

## validate-compose: check docker/compose.yaml against the compose-spec schema
validate-compose:
	scripts/validate-compose.sh

## clean: remove the pipeline's generated data and model (the DVC outputs
## that git does not track; the other reports in reports/ are tracked and stay).
## crates/core/tests/it/pipeline.rs checks this list against dvc.yaml.
clean:
	rm -rf data/raw data/staged data/features data/splits data/features.json \
	  data/online/snapshot.bin data/quarantine.csv data/profile/train.json \
	  models/model.bin reports/index.html reports/monitor.html dvc_plots

## clean-registry: remove every registered model version and the alias log
clean-registry:
	rm -rf models/registry
