#!/usr/bin/env bash
# Benchmarks (`npm run bench [-- NAME]`): each prints its figures and the settings it ran with.
#   npm run bench                     every benchmark under bench/
#   npm run bench -- anchored-create  one of them
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
check_prerequisites
ensure_node_modules
npm run --silent build
export TS_NODE_PROJECT=test/tsconfig.json
run_one() { step "bench: $1"; node -r ts-node/register/transpile-only "$2"; }
if [ $# -gt 0 ]; then
  f="bench/$1.ts"; [ -f "$f" ] || f="bench/$1/run.ts"
  [ -f "$f" ] || die "no benchmark named $1 (see bench/)"
  run_one "$1" "$f"
else
  for f in bench/*.ts bench/*/run.ts; do
    case "$f" in bench/support.ts|bench/quiet-contracts.ts|bench/hapi.ts|*'*'*) continue ;; esac
    run_one "$(basename "${f%.ts}")" "$f"
  done
fi
