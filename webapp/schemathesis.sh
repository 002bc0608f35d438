#!/usr/bin/env bash
# Fuzzes the running API from its own /openapi.json with schemathesis and fails on any 5xx.
# Needs the local stack (`tests/stack/up`, `. .stack/env` for DATABASE_URL). Starts the binary
# (debug build by default, or $PLINTH_INGEST_BIN) on a free loopback port against a fresh
# database, runs schemathesis (in its own virtualenv under ~/.cache/plinth), stops the app with
# SIGTERM and drops the database. ST_MAX_EXAMPLES (default 100) sets the examples per operation.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
: "${DATABASE_URL:?DATABASE_URL is not set: start the stack: tests/stack/up, then . .stack/env}"

venv="${PLINTH_CACHE:-$HOME/.cache/plinth}/schemathesis-venv"
if [[ ! -x $venv/bin/st ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi

bin="${PLINTH_INGEST_BIN:-$target_dir/debug/plinth-ingest}"
if [[ -z ${PLINTH_INGEST_BIN:-} ]]; then
    (cd "$root" && cargo build -p plinth-ingest --bin plinth-ingest)
fi

# mysql://user:password@host:port
rest="${DATABASE_URL#mysql://}"
rest="${rest%/}"
auth="${rest%%@*}"
hostport="${rest#*@}"
user="${auth%%:*}"
password="${auth#*:}"
host="${hostport%%:*}"
port="${hostport##*:}"
[[ $port == "$hostport" ]] && port=3306
sql() { MYSQL_PWD="$password" mysql -h "$host" -P "$port" -u "$user" -e "$1"; }

db="plinth_st_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
key="st-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
app_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp -t plinth-ingest-st.XXXXXX.log)"
workdir="$(mktemp -d -t plinth-ingest-st.XXXXXX)"   # schemathesis writes .schemathesis/ here
sql "CREATE DATABASE \`$db\`"

app_pid=""
cleanup() {
    if [[ -n $app_pid ]]; then
        kill -TERM "$app_pid" 2>/dev/null || true
        wait "$app_pid" 2>/dev/null || true
    fi
    sql "DROP DATABASE IF EXISTS \`$db\`" || true
    rm -rf "$workdir"
}
trap cleanup EXIT

DATABASE_URL="${DATABASE_URL%/}/$db" PLINTH_LISTEN_ADDR=127.0.0.1 PLINTH_PORT="$app_port" \
    PLINTH_BOOTSTRAP_ADMIN_KEY="$key" PLINTH_RATE_LIMIT_PER_SEC=100000 PLINTH_RATE_LIMIT_BURST=100000 \
    "$bin" >"$log" 2>&1 &
app_pid=$!

for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$app_port/health" >/dev/null 2>&1 && break
    kill -0 "$app_pid" 2>/dev/null || { echo "plinth-ingest exited; log: $log" >&2; exit 1; }
    sleep 0.2
done

echo "schemathesis against http://127.0.0.1:$app_port (app log: $log)"
cd "$workdir"
"$venv/bin/st" run "http://127.0.0.1:$app_port/openapi.json" \
    -H "Authorization: Bearer $key" \
    --checks not_a_server_error \
    -n "${ST_MAX_EXAMPLES:-100}"
