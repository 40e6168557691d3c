# Real Istio control plane (istiod, pilot-agent, istioctl) for integration tests and bench.
# Include from the top-level Makefile:  include test/harness/istio/istio.mk
# Outputs are cached under ~/.cache/fledge/istio/<version>/, so rerunning is cheap.
ISTIO_HARNESS_DIR := $(dir $(lastword $(MAKEFILE_LIST)))

.PHONY: istio-deps
istio-deps:
	@$(ISTIO_HARNESS_DIR)build.sh
