#!/usr/bin/env bash
# Install the server binaries the tests start throwaway instances of, from Debian's packages, when
# missing: PostgreSQL (initdb and postgres, package postgresql), Redis (redis-server) and the
# headless browser of the page tests (/usr/bin/chromium, package chromium).
# Idempotent and silent when both are present. It starts nothing: the test setup (tests/pg.py)
# runs its own server on a free port and stops it, whatever the machine runs.
set -euo pipefail

have_postgres() {
  local bindir
  if command -v pg_config >/dev/null 2>&1; then
    bindir="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ]; then
      return 0
    fi
  fi
  for bindir in /usr/lib/postgresql/*/bin; do
    if [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ]; then
      return 0
    fi
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure_test_services: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_test_services: ${missing[*]} missing and no apt-get to install them;" \
    "install them, or set CHECKPOINT_TEST_POSTGRES_URL to a running PostgreSQL" >&2
  exit 1
fi

echo "ensure_test_services: installing ${missing[*]} from Debian's packages" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! timeout 300 "${sudo[@]}" apt-get update -qq >"$log" 2>&1 ||
  ! timeout 900 "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure_test_services: apt-get failed to install ${missing[*]}" >&2
  exit 1
fi

have_postgres || { echo "ensure_test_services: PostgreSQL binaries still missing" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || {
  echo "ensure_test_services: redis-server still missing" >&2
  exit 1
}
[ -x /usr/bin/chromium ] || { echo "ensure_test_services: chromium still missing" >&2; exit 1; }
