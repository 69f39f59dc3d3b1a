#!/usr/bin/env bash
# Fuzzes the live HTTP API with schemathesis, driven by the server's own OpenAPI document
# (GET /api/openapi.json). Fails when any request gets a 5xx, the server dies, or a request
# hangs or cannot be sent; schemathesis' own generator hiccups ("Runtime Error") are shown
# but do not fail the run.
#
# Builds nothing: CI runs `cargo build` first. Settings (environment):
#   BEEMA_BIN          server binary (default $CARGO_TARGET_DIR/debug/beema-webhooks, else
#                      target/debug/beema-webhooks)
#   ST_MAX_EXAMPLES    test cases per operation and phase (default 20)
#   ST_SEED            a fixed schemathesis seed, to replay a run (default: random)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BEEMA_BIN:-${CARGO_TARGET_DIR:-target}/debug/beema-webhooks}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-20}"
# Hard bound on the schemathesis run itself (the whole script stays under ~3 minutes).
ST_TIMEOUT=150

if [ ! -x "$BIN" ]; then
    echo "schemathesis.sh: no server binary at $BIN (run cargo build, or set BEEMA_BIN)" >&2
    exit 2
fi
if ! command -v st >/dev/null 2>&1; then
    pip install -q 'schemathesis>=4,<5'
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$WORK/server.log" ]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 40 "$WORK/server.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

# Open mode (no admin token or event key: allowed on loopback), a fresh SQLite database, and
# private targets allowed so that generated webhook URLs are accepted without DNS lookups.
env -u BEEMA_ADMIN_TOKEN -u BEEMA_EVENT_KEY -u BEEMA_SECRET_KEY RUST_LOG=warn \
    "$BIN" serve \
    --listen "127.0.0.1:$PORT" \
    --database-url "sqlite://$WORK/db.sqlite" \
    --allow-private-targets \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 1 60); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "schemathesis.sh: the server exited during startup" >&2
        exit 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$BASE/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
if [ -z "$ready" ]; then
    echo "schemathesis.sh: $BASE/readyz did not answer 200 within 30 s" >&2
    exit 1
fi

seed_args=()
if [ -n "${ST_SEED:-}" ]; then
    seed_args=(--seed "$ST_SEED")
fi

echo "schemathesis: $(st --version) against $BASE, $MAX_EXAMPLES examples per operation"
st_rc=0
timeout --kill-after=10 "$ST_TIMEOUT" \
    st run "$BASE/api/openapi.json" \
    --checks not_a_server_error \
    --max-examples "$MAX_EXAMPLES" \
    --workers 2 \
    --request-timeout 10 \
    --no-color \
    --report json \
    --report-json-path "$WORK/report.json" \
    "${seed_args[@]}" || st_rc=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "schemathesis.sh: FAILED: the server died during the run" >&2
    exit 1
fi
if ! curl -fsS -o /dev/null --max-time 5 "$BASE/healthz"; then
    echo "schemathesis.sh: FAILED: the server no longer answers /healthz" >&2
    exit 1
fi
if [ "$st_rc" -eq 124 ] || [ "$st_rc" -eq 137 ]; then
    echo "schemathesis.sh: FAILED: schemathesis did not finish within $ST_TIMEOUT s" >&2
    exit 1
fi
if [ ! -s "$WORK/report.json" ]; then
    echo "schemathesis.sh: FAILED: schemathesis exited $st_rc without a report" >&2
    exit 1
fi

# Only not_a_server_error is checked, so any failure is a 5xx. Errors that mean the server did
# not answer properly fail too; the rest are the generator's own and only reported.
python3 - "$WORK/report.json" <<'PY'
import json, sys

report = json.load(open(sys.argv[1]))
failures = report.get("failures") or []
errors = report.get("errors") or []
fatal_errors = {"Network Error", "Unresponsive Operation", "Unhealthy API", "Server Unavailable",
                "Schema Loading Error", "Schema Error"}
fatal = [e for e in errors if e.get("title") in fatal_errors]
tolerated = [e for e in errors if e.get("title") not in fatal_errors]
cases = report.get("test_cases", {})
print(f"schemathesis: {cases.get('generated', 0)} test cases, {len(failures)} server-error "
      f"failure kind(s), {len(fatal)} fatal error kind(s), {len(tolerated)} tolerated tool error kind(s); "
      f"seed {report.get('seed')}")
for e in tolerated:
    print(f"  tolerated: {e.get('title')} x{e.get('count')}")
if failures or fatal:
    for f in failures:
        print(f"  FAILURE: {json.dumps(f)[:500]}", file=sys.stderr)
    for e in fatal:
        print(f"  ERROR: {e.get('title')} x{e.get('count')}", file=sys.stderr)
    sys.exit(1)
if not report.get("complete", False) or cases.get("generated", 0) == 0:
    print("schemathesis run incomplete", file=sys.stderr)
    sys.exit(1)
PY
echo "schemathesis.sh: OK: no server errors, the server is alive"
