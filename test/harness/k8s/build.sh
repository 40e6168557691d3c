#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules and fetches Istio's CRDs, caching
# everything under ~/.cache/fledge/k8s/<versions>/. Prints that directory on stdout
# (last line); progress goes to stderr. Safe to rerun: finished outputs are skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${FLEDGE_CACHE:-$HOME/.cache/fledge}/k8s"
out="$cache_root/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_istio-api-${ISTIO_API_VERSION}"
mkdir -p "$out" "$cache_root/src"

# Serialize concurrent runs (e.g. two make invocations) on the same cache.
exec 9>"$cache_root/.lock"
flock 9

log() { printf '[k8s-deps] %s\n' "$*" >&2; }
command -v go >/dev/null || { log "go toolchain not found on PATH"; exit 1; }

export CGO_ENABLED=0
# -mod=mod lets the wrapper modules resolve go.sum on first build; no VCS in wrappers.
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain behind our back.
export GOTOOLCHAIN=local

# The kubernetes staging modules (k8s.io/api, k8s.io/apiserver, ...) are tagged v0.X.Y
# for kubernetes v1.X.Y.
staging_version="v0.${K8S_VERSION#v1.}"

# Writes a wrapper module in $1 with go.mod body from stdin (keeps go.sum across runs).
write_wrapper() {
  local dir="$1"
  mkdir -p "$dir"
  cat >"$dir/go.mod.new"
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.src" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"
    cp "$dir/go.mod.new" "$dir/go.mod.src"
    rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
}

# Builds k8s.io/kubernetes/cmd/$1 into the cache, from one wrapper module shared by every
# kubernetes binary (same pinned version, same go.sum, same Go build cache).
build_kube_binary() {
  local name="$1"
  local dst="$out/$name"
  if [[ -x "$dst" ]]; then log "$name $K8S_VERSION cached"; return; fi
  log "building $name $K8S_VERSION (staging modules $staging_version); this takes a while"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
  # k8s.io/kubernetes points its staging modules at ./staging/src, which does not exist in
  # the module zip; pin each one to the published release with the same minor/patch.
  local replaces
  replaces="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9.-]*\) => \./staging/src/k8s\.io/[a-z0-9.-]*$#\t\1 => \1 '"$staging_version"'#p' "$gomod")"
  [[ -n "$replaces" ]] || { log "found no staging replace lines in $gomod"; exit 1; }
  # The directory keeps its first binary's name so existing caches stay valid.
  local dir="$cache_root/src/kube-apiserver-$K8S_VERSION"
  write_wrapper "$dir" <<GOMOD
module fledge.local/k8s-build/kube-apiserver

go 1.24.0

require k8s.io/kubernetes $K8S_VERSION

replace (
$replaces
)
GOMOD
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  (cd "$dir" && go build -trimpath -o "$dst.tmp" \
    -ldflags "-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
    "k8s.io/kubernetes/cmd/$name")
  mv "$dst.tmp" "$dst"
  log "$name built"
}

build_etcd() {
  local dst="$out/etcd"
  if [[ -x "$dst" ]]; then log "etcd $ETCD_VERSION cached"; return; fi
  log "building etcd $ETCD_VERSION"
  local dir="$cache_root/src/etcd-$ETCD_VERSION"
  # etcd's own go.mod replaces its sibling modules with ../ paths (ignored for a
  # dependency), so require them at the same release explicitly.
  write_wrapper "$dir" <<GOMOD
module fledge.local/k8s-build/etcd

go 1.24.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
  # The server module's root package is etcd's main.
  (cd "$dir" && go build -trimpath -o "$dst.tmp" -ldflags "-s -w" go.etcd.io/etcd/server/v3)
  mv "$dst.tmp" "$dst"
  log "etcd built"
}

fetch_istio_crds() {
  local dst="$out/istio-crds.yaml"
  if [[ -s "$dst" ]]; then log "istio CRDs $ISTIO_API_VERSION cached"; return; fi
  log "fetching istio.io/api@$ISTIO_API_VERSION CRDs"
  local moddir
  moddir="$(go mod download -json "istio.io/api@$ISTIO_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  local src="$moddir/kubernetes/customresourcedefinitions.gen.yaml"
  [[ -s "$src" ]] || { log "istio.io/api@$ISTIO_API_VERSION has no $src"; exit 1; }
  cp "$src" "$dst.tmp"
  chmod 0644 "$dst.tmp"
  mv "$dst.tmp" "$dst"
}

fetch_istio_crds
build_etcd
build_kube_binary kube-apiserver
# Deployment/ReplicaSet/garbage-collector controllers, so tests get real ReplicaSets.
build_kube_binary kube-controller-manager

echo "$out"
