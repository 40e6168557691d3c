#!/usr/bin/env bash
# NOT RUN IN CI, NOT TESTED: this needs Docker, which fledge's test machines do not have.
# (The manifests it applies are tested: test/integration/manifests.test.ts applies them to
# a real kube-apiserver with Istio's CRD schemas.)
#
# For users with Docker: a local kind cluster with Istio and fledge's manifests.
#   scripts/kind-up.sh            create cluster "fledge", install Istio, apply manifests/
#   KIND_CLUSTER=x scripts/kind-up.sh
# Needs: docker, kind, kubectl, istioctl (matching ISTIO_VERSION) on PATH.
set -euo pipefail

CLUSTER="${KIND_CLUSTER:-fledge}"
IMAGE="${FLEDGE_IMAGE:-ghcr.io/fledge-dev/fledge:0.1.0}"
ISTIO_VERSION_WANTED="${ISTIO_VERSION:-1.27}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "kind-up: '$1' is not on PATH ($2)" >&2; exit 1; }; }
need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need istioctl "https://istio.io/latest/docs/setup/getting-started/#download (Istio ${ISTIO_VERSION_WANTED}.x)"

step() { printf '\n==> %s\n' "$*"; }

step "kind cluster '${CLUSTER}'"
if kind get clusters | grep -qx "${CLUSTER}"; then
  echo "exists; reusing it"
else
  kind create cluster --name "${CLUSTER}" --wait 120s
fi
kubectl config use-context "kind-${CLUSTER}"

step "building ${IMAGE} and loading it into the cluster"
docker build -t "${IMAGE}" "${ROOT}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

step "installing Istio (demo profile: istiod + ingress gateway)"
istioctl install -y --set profile=demo
kubectl -n istio-system rollout status deploy/istiod --timeout=300s
kubectl -n istio-system rollout status deploy/istio-ingressgateway --timeout=300s

step "applying fledge: RBAC, extproc, controller, EnvoyFilters"
kubectl apply -f "${ROOT}/manifests/rbac.yaml"
kubectl apply -f "${ROOT}/manifests/extproc.yaml"
kubectl apply -f "${ROOT}/manifests/controller.yaml"
kubectl apply -f "${ROOT}/manifests/envoyfilter.yaml"
kubectl -n fledge-system rollout status deploy/fledge-extproc --timeout=180s
kubectl -n fledge-system rollout status deploy/fledge-controller --timeout=180s

step "applying the example inference service (namespace models)"
kubectl apply -f "${ROOT}/manifests/example/00-namespace.yaml"
kubectl apply -f "${ROOT}/manifests/example/"
kubectl -n models rollout status deploy/chat-v1 --timeout=180s
kubectl -n models rollout status deploy/chat-v2 --timeout=180s

cat <<MSG

fledge is up in kind cluster '${CLUSTER}'. Try:
  kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80 &
  curl -s -H 'Host: chat.example.com' -H 'x-user-id: alice' \\
       -d '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \\
       -H 'content-type: application/json' -D - http://127.0.0.1:8080/v1/chat/completions
  kubectl -n fledge-system port-forward deploy/fledge-extproc 9101:9101 &
  curl -s http://127.0.0.1:9101/debug/state
The controller needs a Prometheus at the URL in manifests/controller.yaml for analysis.
MSG
