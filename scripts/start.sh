#!/usr/bin/env bash
# The one command that runs HDX (`npm start`): installs what is missing, builds, brings the Fabric network
# up (idempotent), deploys the chaincode and starts the hospital1 gateway in the background.
#   npm start                 start (or resume) everything; prints the gateway URL
#   npm run network -- down   stop everything it started (add --wipe to delete all state)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

check_prerequisites
ensure_node_modules
step "Build"
npm run --silent build
step "Fabric network (first run builds the Fabric binaries: several minutes)"
node fabric-network/dist/cli.js up

home="${HDX_NETWORK_HOME:-$PWD/.hdx/network}"
org="${HDX_ORG_TO_START:-hospital1}"
port="${HDX_GATEWAY_PORT:-8080}"
name="gateway.$org"
pidfile="$home/pids/$name.pid"
log="$home/logs/$name.log"

pid_of() { node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid))' "$pidfile"; }
running() { [ -f "$pidfile" ] && kill -0 "$(pid_of)" 2>/dev/null; }

step "HDX gateway for $org"
if running; then
  echo "already running (pid $(pid_of))" >&2
else
  (
    set -a
    # shellcheck disable=SC1090
    . "$home/gateways/$org.env"
    set +a
    export HDX_GATEWAY_PORT="$port" HDX_DATA_DIR="${HDX_DATA_DIR:-$PWD/.hdx/gateway-$org}"
    exec setsid node gateway/dist/main.js >>"$log" 2>&1 </dev/null
  ) &
  gw=$!
  printf '{"pid":%s,"command":"node","startedAt":"%s"}' "$gw" "$(date -u +%FT%TZ)" >"$pidfile"
  for _ in $(seq 1 60); do
    # Our process first: another server already on the port must not pass for this gateway.
    if ! kill -0 "$gw" 2>/dev/null; then
      tail -n 20 "$log" >&2
      die "the gateway exited (log: $log)"
    fi
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  kill -0 "$gw" 2>/dev/null && curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null ||
    die "the gateway did not become healthy (log: $log)"
fi

cat <<MSG

HDX is running.
  FHIR API ($org):  http://127.0.0.1:$port/fhir      (try: curl http://127.0.0.1:$port/fhir/metadata)
  health:           http://127.0.0.1:$port/healthz
  network status:   npm run network -- status
  logs:             npm run network -- logs $name
  stop everything:  npm run network -- down        (add --wipe to delete all state)
MSG
