# Real Kubernetes control plane (kube-apiserver + etcd + Istio CRDs) for integration tests.
# Include from the top-level Makefile:  include test/harness/k8s/k8s.mk
# Outputs are cached under ~/.cache/fledge/k8s/, so rerunning is cheap.
K8S_HARNESS_DIR := $(dir $(lastword $(MAKEFILE_LIST)))

.PHONY: k8s-deps
k8s-deps:
	@$(K8S_HARNESS_DIR)build.sh
