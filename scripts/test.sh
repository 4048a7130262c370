#!/usr/bin/env bash
# The one test command (`npm test`): installs what is missing, builds everything, runs every package's
# unit tests, then the integration tests against a real Fabric network that they start and always stop.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

check_prerequisites
ensure_node_modules
step "Fabric binaries (built once per machine, then cached)"
bash scripts/install-fabric.sh >/dev/null
step "Lint shell scripts"
if ensure_shellcheck; then
  shellcheck -x scripts/*.sh .ci/run fabric-network/builders/ccaas/bin/*
else
  echo "shellcheck is not installed: skipped (Debian: apt-get install shellcheck)" >&2
fi
step "Lint (eslint, typescript-eslint strict) and format (prettier)"
npm run --silent lint
npm run --silent format:check
step "Build"
npm run --silent build
step "Type-check tests"
npm run --silent typecheck
npx --no-install tsc -p test/tsconfig.json
if ! ensure_postgres; then
  echo "PostgreSQL is not installed: the PostgreSQL store's tests will fail (Debian: apt-get install postgresql, or set HDX_PG_BIN)" >&2
fi
step "Unit tests"
npm run --silent test:unit
step "Gateway unit tests again on the PostgreSQL store (HDX_TEST_STORE=postgres: a local cluster the tests start and stop)"
(cd gateway && HDX_TEST_STORE=postgres npx --no-install mocha)
if ! ensure_chromium; then
  echo "chromium is not installed: the browser test (test/integration/webapp.test.ts) will fail (Debian: apt-get install chromium)" >&2
fi
step "Integration tests (real Fabric network: 4 CAs, Raft, 3 peers, CCaaS chaincode)"
npm run --silent test:integration
step "Fault tests under load (each on a network of its own): Raft leader killed, a member's peer killed"
npm run --silent test:faults
step "Consortium (each on a network of its own): BFT ordering (SmartBFT, 4 orderers) with its leader killed under load; a member joins (add-org); a member joins and leaves (remove-org); members in network namespaces of their own"
npm run --silent test:consortium
