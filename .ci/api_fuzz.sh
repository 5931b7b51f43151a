#!/usr/bin/env bash
# API fuzzing driven by the OpenAPI document: schemathesis (from PyPI, in a venv under
# target/) against a real `argent serve` on 127.0.0.1 with a throwaway SQLite database
# holding a sample portfolio and a queue. Fails on any 5xx and on any response that does
# not conform to the documented schema. Bounded by ARGENT_API_FUZZ_SECONDS (default 180).
#
# Usage: .ci/api_fuzz.sh [path/to/argent]   (default target/debug/argent)
set -euo pipefail
cd "$(dirname "$0")/.."

ARGENT="${1:-$PWD/target/debug/argent}"
SECONDS_BUDGET="${ARGENT_API_FUZZ_SECONDS:-180}"
SCHEMATHESIS_VERSION="4.32.5"
VENV="$PWD/target/api-fuzz-venv"

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

db="$work/fuzz.db"
now="2026-11-02T18:00:00Z"
"$ARGENT" demo-data --customers 40 --seed 11 --as-of 2026-11-01 --out "$work/portfolio.csv" >/dev/null
"$ARGENT" -d "$db" import "$work/portfolio.csv" >/dev/null
# A few runs so the queue, the audit trail and the documents have something in them.
for c in $(cut -d, -f1 "$work/portfolio.csv" | sed 1d | sort -u | head -8); do
    "$ARGENT" -d "$db" --now "$now" run --customer "$c" --step overdue_notice >/dev/null 2>&1 || true
done
printf 'a long fuzzing password\n' | "$ARGENT" -d "$db" users add fuzzer --role admin --password-stdin >/dev/null

"$ARGENT" -d "$db" --now "$now" serve --addr 127.0.0.1:0 --eval-filter tag:injection >"$work/serve.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -1 || true)"
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "argent serve did not start:"; cat "$work/serve.log"; exit 1; }
base="http://$addr"

token="$(curl -fsS -X POST "$base/api/login" -H 'content-type: application/json' \
    -d '{"name":"fuzzer","password":"a long fuzzing password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

echo "== schemathesis against $base for at most ${SECONDS_BUDGET}s"
# Logout is left out: it would revoke the token the rest of the run uses.
set +e
"$VENV/bin/schemathesis" run "$base/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
    --exclude-path /api/logout \
    --max-time "$SECONDS_BUDGET" \
    --workers 2 \
    --request-timeout 30 \
    --suppress-health-check all \
    --seed 20261201 \
    --warnings off \
    --no-color 2>&1 | tee "$work/st.log"
set -e
rc=0
# A failed check (a 5xx, a response off its schema, an undocumented status) fails CI.
# schemathesis' own errors (its generator crashing, a request timing out) are reported
# but do not, unless the server is gone or panicked: that is checked below.
if grep -qE '^=+ .*[0-9]+ failures? ' "$work/st.log"; then
    echo "schemathesis found failures (above)"; rc=1
fi
if ! kill -0 "$server_pid" 2>/dev/null || ! curl -fsS -o /dev/null "$base/openapi.json"; then
    echo "argent serve is no longer answering after the run:"; tail -50 "$work/serve.log"; rc=1
fi
if grep -q 'panicked' "$work/serve.log"; then
    echo "the server panicked:"; grep -n -A5 'panicked' "$work/serve.log"; rc=1
fi
if grep -qE '^=+ .*[0-9]+ errors? ' "$work/st.log"; then
    echo "note: schemathesis reported errors of its own (above); the server kept answering"
    grep -iE 'timed out|timeout|connection' "$work/serve.log" | tail -5 || true
fi
exit $rc
