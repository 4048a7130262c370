#!/usr/bin/env bash
# Builds the pinned Hyperledger Fabric and Fabric CA binaries with the Go toolchain, from the Go module
# proxy, and caches them per version outside the repository. Skips whatever is already built.
#
#   scripts/install-fabric.sh          build (or reuse) the binaries; prints the bin directory on stdout
#   HDX_FABRIC_HOME=/path ...          cache root (default: ~/.cache/hdx/fabric)
#
# The versions are pinned, with checksums, by the Go modules in fabric-network/build/{fabric,fabric-ca}
# (go.mod + go.sum). Fabric's module path has no /v3 suffix, so its release tags are not Go module
# versions: a release is required by the pseudo-version of its tagged commit. `go install pkg@version`
# does not work here (it asks the proxy for the module's version list, which the proxy refuses), so each
# tool is built with `go build -mod=readonly` inside those modules instead.
set -euo pipefail

FABRIC_VERSION="v3.1.1"       # must match fabric-network/build/fabric/go.mod
FABRIC_CA_VERSION="v1.5.21"   # must match fabric-network/build/fabric-ca/go.mod
GO_MIN="1.25.0"               # the highest `go` line of the two modules

repo=$(cd "$(dirname "$0")/.." && pwd)
cache_root="${HDX_FABRIC_HOME:-$HOME/.cache/hdx/fabric}"
bin_dir="$cache_root/fabric-$FABRIC_VERSION-ca-$FABRIC_CA_VERSION/bin"

log() { printf '[install-fabric] %s\n' "$*" >&2; }
die() { printf '[install-fabric] error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 ||
  die "Go is not installed or not on PATH. Install Go >= $GO_MIN (https://go.dev/dl/) and run again."
go_version=$(GOTOOLCHAIN=local go env GOVERSION | sed 's/^go//')
[ "$(printf '%s\n%s\n' "$GO_MIN" "$go_version" | sort -V | head -n1)" = "$GO_MIN" ] ||
  die "Go $go_version is too old: Fabric $FABRIC_VERSION and Fabric CA $FABRIC_CA_VERSION need Go >= $GO_MIN. Upgrade Go and run again."
command -v gcc >/dev/null 2>&1 || die "gcc is missing: fabric-ca-server needs cgo (SQLite). Install gcc and run again."

mkdir -p "$bin_dir"
# build <module dir> <cgo> <tool> <package>
build() {
  local dir=$1 cgo=$2 tool=$3 pkg=$4 start logf
  if [ -x "$bin_dir/$tool" ]; then return; fi
  start=$(date +%s); logf="$cache_root/build-$tool.log"
  log "[$i/${#tools[@]}] $tool: building $pkg (first build on this machine) ..."
  # Build next to the cache and move into place only when done, so an interrupted build is never cached.
  if ! (cd "$repo/fabric-network/build/$dir" &&
        GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=$cgo \
          go build -trimpath -o "$bin_dir/.$tool.partial" "$pkg") >"$logf" 2>&1; then
    tail -n 20 "$logf" >&2
    die "building $tool failed (full log: $logf)"
  fi
  mv "$bin_dir/.$tool.partial" "$bin_dir/$tool"
  log "$tool: built in $(( $(date +%s) - start ))s"
}

tools=(
  "fabric 0 peer github.com/hyperledger/fabric/cmd/peer"
  "fabric 0 orderer github.com/hyperledger/fabric/cmd/orderer"
  "fabric 0 configtxgen github.com/hyperledger/fabric/cmd/configtxgen"
  "fabric 0 osnadmin github.com/hyperledger/fabric/cmd/osnadmin"
  "fabric 0 configtxlator github.com/hyperledger/fabric/cmd/configtxlator"
  "fabric-ca 1 fabric-ca-server github.com/hyperledger/fabric-ca/cmd/fabric-ca-server"
  "fabric-ca 1 fabric-ca-client github.com/hyperledger/fabric-ca/cmd/fabric-ca-client"
)
i=0
for t in "${tools[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  build $t
done
# The stock peer and orderer configs ship in the fabric module; the launcher copies them per node and
# overrides what it needs through CORE_* / ORDERER_* environment variables.
config_dir="$(dirname "$bin_dir")/config"
if [ ! -f "$config_dir/core.yaml" ] || [ ! -f "$config_dir/orderer.yaml" ]; then
  src=$(cd "$repo/fabric-network/build/fabric" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/hyperledger/fabric)
  mkdir -p "$config_dir"
  cp "$src/sampleconfig/core.yaml" "$src/sampleconfig/orderer.yaml" "$config_dir/"
  chmod u+w "$config_dir"/*.yaml
  log "stock configs copied to $config_dir"
fi
log "Fabric $FABRIC_VERSION and Fabric CA $FABRIC_CA_VERSION binaries ready in $bin_dir"
echo "$bin_dir"
