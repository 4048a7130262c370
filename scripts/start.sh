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
# Gateways to start, each ORG:PORT; hospital1 first (the default FHIR endpoint). By default every member in
# network.json, at the port its organization DID names (gatewayPort): 8080, 8081, 8082 for hospital1,
# hospital2 and the regulator, then 8083, 8084 for the slots of members that joined (npm run network -- add-org).
default_gateways() {
  node -e 'const orgs = Object.values(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).orgs);
process.stdout.write(orgs.map((o, i) => o.org + ":" + (o.gatewayPort ?? 8080 + i)).join(" "))' "$home/network.json"
}
gateways="${HDX_GATEWAYS:-$(default_gateways)}"

pid_of() { node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid))' "$1"; }

# start_gateway ORG PORT: starts the org's gateway in the background (pid and log with the network's).
start_gateway() {
  local org=$1 port=$2 name="gateway.$1" pidfile="$home/pids/gateway.$1.pid" log="$home/logs/gateway.$1.log" gw
  if [ -f "$pidfile" ] && kill -0 "$(pid_of "$pidfile")" 2>/dev/null; then
    echo "$name: already running (pid $(pid_of "$pidfile"))" >&2
    return
  fi
  (
    set -a
    # shellcheck disable=SC1090
    . "$home/gateways/$org.env"
    set +a
    # The store lives with the ledger its records are anchored on: `down --wipe` removes both.
    export HDX_GATEWAY_PORT="$port" HDX_DATA_DIR="$home/gateway-$org"
    exec setsid node gateway/dist/main.js >>"$log" 2>&1 </dev/null
  ) &
  gw=$!
  # The URL lets `npm run network -- status` ask the gateway's /healthz (its health and its view's lag).
  printf '{"pid":%s,"command":"node","startedAt":"%s","url":"http://127.0.0.1:%s"}' "$gw" "$(date -u +%FT%TZ)" "$port" >"$pidfile"
  for _ in $(seq 1 60); do
    # Our process first: another server already on the port must not pass for this gateway.
    if ! kill -0 "$gw" 2>/dev/null; then
      tail -n 20 "$log" >&2
      die "$name exited (log: $log)"
    fi
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  if ! kill -0 "$gw" 2>/dev/null || ! curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null; then
    die "$name did not become healthy (log: $log)"
  fi
  echo "$name: started (pid $gw)" >&2
}

step "HDX gateways"
urls=""
for g in $gateways; do
  start_gateway "${g%%:*}" "${g##*:}"
  urls="$urls  ${g%%:*}: http://127.0.0.1:${g##*:}/fhir\n"
done

printf '\nHDX is running.\n'
printf 'FHIR API of each organization (try: curl http://127.0.0.1:8080/fhir/metadata):\n%b' "$urls"
cat <<MSG
  network status:   npm run network -- status
  logs:             npm run network -- logs gateway.hospital1
  tokens, keys:     node gateway/dist/cli.js --help   (the hdx CLI; walkthrough in README.md)
  stop everything:  npm run network -- down        (add --wipe to delete all state)
MSG
