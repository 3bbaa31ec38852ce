# Shared set-up for ops/dev, ops/test and ops/bench: installs what is missing and
# finds (or starts) PostgreSQL. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${NOROSHI_DATA_DIR:-$ROOT/.noroshi}"
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "missing $*, and no apt-get to install it; install it and retry"; exit 1
  fi
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  command -v cargo >/dev/null || { log "cargo not found: install Rust (rustup) first"; exit 1; }
  local missing=()
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v psql >/dev/null || missing+=(postgresql-client)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# Headless Chromium and its WebDriver for the browser tests, and a Japanese font so that
# their screenshots are legible.
ensure_browser() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # The after-action report's PDF is checked page by page (pdfinfo, pdftoppm).
  command -v pdftoppm >/dev/null || missing+=(poppler-utils)
  fc-list 2>/dev/null | grep -qi 'ipagothic\|noto sans cjk' || missing+=(fonts-ipafont-gothic)
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  ensure_axe
}

# axe-core, the accessibility engine the browser tests run on every page (WCAG 2.1 AA),
# from the npm registry into $DATA/axe; NOROSHI_AXE_JS names its script for the tests.
AXE_VERSION="4.14.1"
ensure_axe() {
  local dir="$DATA/axe"
  local script="$dir/node_modules/axe-core/axe.min.js"
  if [ ! -f "$script" ] || ! grep -q "\"version\": \"$AXE_VERSION\"" "$dir/node_modules/axe-core/package.json" 2>/dev/null; then
    log "installing axe-core $AXE_VERSION into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --silent "axe-core@$AXE_VERSION" >/dev/null
  fi
  export NOROSHI_AXE_JS="$script"
}

# fhir.resources 6.1.0 (the FHIR R4 4.0.1 models, with pydantic 1): an implementation of
# FHIR R4 independent of noroshi, in a virtualenv under $DATA, that the FHIR tests validate
# noroshi's resources with. NOROSHI_FHIR_PYTHON names its interpreter.
FHIR_RESOURCES_VERSION="6.1.0"
ensure_fhir_validator() {
  local venv="$DATA/fhir-venv"
  if ! "$venv/bin/python" -c "import fhir.resources as f, sys; sys.exit(f.__version__ != '$FHIR_RESOURCES_VERSION')" 2>/dev/null; then
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    log "installing fhir.resources $FHIR_RESOURCES_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "fhir.resources==$FHIR_RESOURCES_VERSION" "pydantic>=1.10,<2" >/dev/null
  fi
  export NOROSHI_FHIR_PYTHON="$venv/bin/python"
}

# Exports NOROSHI_ADMIN_DATABASE_URL: a superuser connection to database `postgres`.
# Uses $NOROSHI_ADMIN_DATABASE_URL when set, else PostgreSQL on 127.0.0.1:5432 when it
# answers, else a private cluster under $DATA/pg.
ensure_postgres() {
  if [ -n "${NOROSHI_ADMIN_DATABASE_URL:-}" ]; then return; fi
  local local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if psql "$local_url" -qAtc 'select 1' >/dev/null 2>&1; then
    export NOROSHI_ADMIN_DATABASE_URL="$local_url"; return
  fi
  local port="${NOROSHI_PRIVATE_PG_PORT:-55432}"
  start_private_postgres "$DATA/pg" "$port"
  export NOROSHI_ADMIN_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# pg_tool NAME ARGS…: runs PostgreSQL's NAME (initdb, pg_ctl) of the newest version
# installed, as user postgres when root.
pg_tool() {
  local bin; bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  local tool="$1"; shift
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$bin/$tool" "$@"; else "$bin/$tool" "$@"; fi
}

# start_private_postgres DIR PORT: a PostgreSQL cluster of its own in DIR (made when
# missing), started on 127.0.0.1:PORT unless it runs.
start_private_postgres() {
  local dir="$1" port="$2"
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $dir"
    mkdir -p "$dir"; [ "$(id -u)" -ne 0 ] || chown -R postgres "$DATA" "$dir"
    pg_tool initdb -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! psql "postgres://postgres@127.0.0.1:$port/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    log "starting the private PostgreSQL on 127.0.0.1:$port"
    pg_tool pg_ctl -D "$dir" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null
  fi
}
