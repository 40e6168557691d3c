#!/usr/bin/env bash
# Builds istiod (pilot-discovery), pilot-agent and istioctl from the istio.io/istio Go module
# and extracts Envoy's bootstrap template, caching everything under
# ~/.cache/fledge/istio/<version>/. Prints that directory on stdout (last line); progress goes
# to stderr. Safe to rerun: a finished cache is skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${FLEDGE_CACHE:-$HOME/.cache/fledge}/istio"
out="$cache_root/$ISTIO_VERSION"
mkdir -p "$out" "$cache_root/src"

# Serialize concurrent runs (two make invocations, parallel engineers) on the same cache.
exec 9>"$cache_root/.lock"
flock 9

log() { printf '[istio-deps] %s\n' "$*" >&2; }
command -v go >/dev/null || { log "go toolchain not found on PATH"; exit 1; }

export CGO_ENABLED=0
# -mod=mod lets the wrapper module resolve go.sum on first build; no VCS in the wrapper.
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain behind our back.
export GOTOOLCHAIN=local

binaries=(pilot-discovery pilot-agent istioctl)

all_cached() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
  [[ -s "$out/envoy_bootstrap.json" ]]
}

if all_cached; then
  log "istio $ISTIO_VERSION cached"
  echo "$out"
  exit 0
fi

dir="$cache_root/src/istio-$ISTIO_VERSION"
mkdir -p "$dir"
cat >"$dir/go.mod.new" <<GOMOD
module fledge.local/istio-build

go 1.25

require istio.io/istio $ISTIO_VERSION
GOMOD
# Keep go.sum across runs unless the pinned version changed.
if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.src" 2>/dev/null; then
  cp "$dir/go.mod.new" "$dir/go.mod"
  cp "$dir/go.mod.new" "$dir/go.mod.src"
  rm -f "$dir/go.sum"
fi
rm -f "$dir/go.mod.new"

moddir="$(cd "$dir" && go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
template="$moddir/tools/packaging/common/envoy_bootstrap.json"
[[ -s "$template" ]] || { log "istio.io/istio@$ISTIO_VERSION has no $template"; exit 1; }
cp "$template" "$out/envoy_bootstrap.json.tmp"
chmod 0644 "$out/envoy_bootstrap.json.tmp"
mv "$out/envoy_bootstrap.json.tmp" "$out/envoy_bootstrap.json"

log "building ${binaries[*]} at istio.io/istio@$ISTIO_VERSION; this takes ~6 min cold on 2 cores"
staging="$out/.build"
rm -rf "$staging"; mkdir -p "$staging"
# One go build for all three shares the compiled dependency graph.
(cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$staging/" \
  istio.io/istio/pilot/cmd/pilot-discovery \
  istio.io/istio/pilot/cmd/pilot-agent \
  istio.io/istio/istioctl/cmd/istioctl)
for b in "${binaries[@]}"; do mv "$staging/$b" "$out/$b"; done
rmdir "$staging"
log "istio binaries built"

echo "$out"
