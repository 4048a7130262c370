# shellcheck shell=bash
# Shared helpers for the entry-point scripts. Source it; do not run it.

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Node 20.19+ (or 22.12+) and Go 1.25+ must be on PATH; gcc builds fabric-ca-server (cgo) and better-sqlite3.
check_prerequisites() {
  command -v node >/dev/null 2>&1 || die "Node.js is not installed: install Node 20.19+ (https://nodejs.org) and run again."
  local v
  v=$(node -p 'process.versions.node')
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit((a===20&&b>=19)||(a===22&&b>=12)||a>22?0:1)' ||
    die "Node.js $v is not supported: use Node 20.19+ or 22.12+."
  command -v go >/dev/null 2>&1 || die "Go is not installed: install Go 1.25+ (https://go.dev/dl/) and run again."
  command -v gcc >/dev/null 2>&1 || die "gcc is missing: install a C compiler (Debian: apt-get install build-essential)."
}

# The shell linter (shellcheck) runs in the test command. Installed from Debian's packages when it is
# missing and this is root on a Debian-like machine (a fresh CI machine); otherwise the lint says how.
ensure_shellcheck() {
  command -v shellcheck >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "shellcheck (apt-get install shellcheck)"
    { apt-get install -y -qq shellcheck || { apt-get update -qq && apt-get install -y -qq shellcheck; }; } >/dev/null 2>&1 || true
  fi
  command -v shellcheck >/dev/null 2>&1
}

# The browser tests (test/integration/webapp.test.ts) drive the system Chromium with puppeteer-core.
# Installed from Debian's packages when it is missing and this is root on a Debian-like machine;
# otherwise the browser test says how (or set HDX_CHROMIUM to a Chromium or Chrome executable).
ensure_chromium() {
  [ -n "${HDX_CHROMIUM:-}" ] && return 0
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "chromium (apt-get install chromium, for the browser tests)"
    { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } >/dev/null 2>&1 || true
  fi
  command -v chromium >/dev/null 2>&1
}

# The PostgreSQL store's tests (gateway, HDX_TEST_STORE=postgres; test/integration/replicas.test.ts) start
# a cluster of their own with Debian's initdb and pg_ctl (/usr/lib/postgresql/<version>/bin). Installed
# from Debian's packages when missing and this is root on a Debian-like machine; otherwise say how (or
# set HDX_PG_BIN to the folder of initdb and pg_ctl).
ensure_postgres() {
  [ -n "${HDX_PG_BIN:-}" ] && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "postgresql (apt-get install postgresql, for the PostgreSQL store's tests)"
    # RUNLEVEL=1: the package's own cluster is not started (the tests run clusters of their own).
    { RUNLEVEL=1 apt-get install -y -qq postgresql || { apt-get update -qq && RUNLEVEL=1 apt-get install -y -qq postgresql; }; } >/dev/null 2>&1 || true
  fi
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

# Installs the npm dependencies from the lockfile when node_modules is missing or older than the lockfile.
ensure_node_modules() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "npm ci (dependencies from package-lock.json)"
    npm ci --no-audit --no-fund
  fi
}
