#!/usr/bin/env bash
# End-to-end check of the webhook dispatcher against a running server:
# health check -> create webhook -> publish event -> wait for delivery -> show attempts -> delete webhook.
set -euo pipefail

# Fixed example secret: "whsec_" + base64 of 32 bytes. Start the example receiver with it.
DEFAULT_SECRET='whsec_YFh8P3ATLnJAb8Vd8OoF7VIHuURcjnWPjLWVd764P3g='

usage() {
    cat <<USAGE
Usage: $(basename "$0") [--help]

Runs the whole webhook flow against a running dispatcher:
  1. GET    \$BASE_URL/healthz
  2. POST   \$BASE_URL/api/webhooks                  (create a "claim/opened" webhook -> 201)
  3. POST   \$BASE_URL/api/inngest                   (publish a claim/opened event -> 202)
  4. GET    \$BASE_URL/api/webhooks/deliveries?...   (poll until the delivery succeeds)
  5. GET    \$BASE_URL/api/webhooks/deliveries/{id}  (show the attempts)
  6. DELETE \$BASE_URL/api/webhooks/{id}             (-> 204, skipped with KEEP_WEBHOOK=1)

Start a receiver first, e.g. the example one:
  cargo run --example webhook_receiver -- --secret '${DEFAULT_SECRET}' --listen 127.0.0.1:4000

Environment:
  BASE_URL        dispatcher base URL               (default: http://127.0.0.1:3000)
  TENANT          tenant id sent as X-Tenant-ID     (default: tenant-1)
  RECEIVER_URL    URL the webhook delivers to       (default: http://127.0.0.1:4000/)
  WEBHOOK_SECRET  webhook signing secret            (default: ${DEFAULT_SECRET})
  ADMIN_TOKEN     if set, "Authorization: Bearer" for the /api/webhooks endpoints
  EVENT_KEY       if set, "Authorization: Bearer" for POST /api/inngest
  KEEP_WEBHOOK=1  do not delete the webhook at the end (or on failure)

Requires curl and python3 (or jq).
USAGE
}

case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
    "") ;;
    *)
        echo "unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
esac

BASE_URL="${BASE_URL:-http://127.0.0.1:3000}"
BASE_URL="${BASE_URL%/}"
TENANT="${TENANT:-tenant-1}"
RECEIVER_URL="${RECEIVER_URL:-http://127.0.0.1:4000/}"
SECRET="${WEBHOOK_SECRET:-$DEFAULT_SECRET}"
ADMIN_TOKEN="${ADMIN_TOKEN:-}"
EVENT_KEY="${EVENT_KEY:-}"
KEEP_WEBHOOK="${KEEP_WEBHOOK:-0}"
POLL_ATTEMPTS=30
POLL_INTERVAL=0.5

die() {
    echo "ERROR: $*" >&2
    exit 1
}

step() {
    printf '\n==> %s\n' "$*"
}

command -v curl >/dev/null 2>&1 || die "curl is required"
if command -v python3 >/dev/null 2>&1; then
    JSON_TOOL=python3
elif command -v jq >/dev/null 2>&1; then
    JSON_TOOL=jq
else
    die "python3 or jq is required to parse JSON"
fi

# json_query <python-expression over d> <jq-filter> : evaluates against JSON on stdin and
# prints the result (strings raw, other values as compact JSON, nothing for null/missing).
json_query() {
    if [[ "$JSON_TOOL" == python3 ]]; then
        python3 -c '
import json, sys
d = json.load(sys.stdin)
def items(v):
    if isinstance(v, list):
        return v
    for k in ("deliveries", "data", "items", "results"):
        if isinstance(v, dict) and isinstance(v.get(k), list):
            return v[k]
    return []
def dig(v, key):
    if isinstance(v, dict):
        if key in v:
            return v[key]
        for k in ("data", "webhook", "delivery"):
            if isinstance(v.get(k), dict) and key in v[k]:
                return v[k][key]
    return None
r = eval(sys.argv[1])
if r is None:
    pass
elif isinstance(r, str):
    print(r)
else:
    print(json.dumps(r))
' "$1" "${3:-}"
    else
        jq -r "($2) // empty | if type == \"string\" then . else tojson end"
    fi
}

pretty() {
    if [[ "$JSON_TOOL" == python3 ]]; then
        python3 -c 'import json, sys
raw = sys.stdin.read()
try:
    print(json.dumps(json.loads(raw), indent=2))
except ValueError:
    print(raw)'
    else
        jq . 2>/dev/null || cat
    fi
}

urlencode() {
    if [[ "$JSON_TOOL" == python3 ]]; then
        python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
    else
        jq -rn --arg v "$1" '$v | @uri'
    fi
}

RESP_FILE="$(mktemp)"
WEBHOOK_ID=""
cleanup() {
    local rc=$?
    if [[ -n "$WEBHOOK_ID" && "$KEEP_WEBHOOK" != 1 && $rc -ne 0 ]]; then
        echo "Cleaning up: deleting webhook $WEBHOOK_ID" >&2
        curl -sS -o /dev/null -X DELETE ${ADMIN_AUTH[@]+"${ADMIN_AUTH[@]}"} -H "X-Tenant-ID: $TENANT" \
            "$BASE_URL/api/webhooks/$WEBHOOK_ID" || true
    fi
    rm -f "$RESP_FILE"
}
trap cleanup EXIT

ADMIN_AUTH=()
if [[ -n "$ADMIN_TOKEN" ]]; then
    ADMIN_AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN")
fi
EVENT_AUTH=()
if [[ -n "$EVENT_KEY" ]]; then
    EVENT_AUTH=(-H "Authorization: Bearer $EVENT_KEY")
fi

# request <expected-status> <method> <url> [curl args...] : body ends up in $BODY.
BODY=""
request() {
    local expected="$1" method="$2" url="$3" status
    shift 3
    if ! status="$(curl -sS -o "$RESP_FILE" -w '%{http_code}' -X "$method" "$@" "$url")"; then
        die "$method $url: request failed (is the server running?)"
    fi
    BODY="$(cat "$RESP_FILE")"
    if [[ "$status" != "$expected" ]]; then
        echo "Response body:" >&2
        printf '%s\n' "$BODY" >&2
        die "$method $url: expected HTTP $expected, got HTTP $status"
    fi
}

echo "Dispatcher:   $BASE_URL"
echo "Tenant:       $TENANT"
echo "Receiver URL: $RECEIVER_URL"
echo "Secret:       $SECRET"
echo "(start the receiver with: cargo run --example webhook_receiver -- --secret '$SECRET' --listen 127.0.0.1:4000)"

step "1. Health check: GET /healthz"
request 200 GET "$BASE_URL/healthz"
printf '%s\n' "$BODY"

step "2. Create webhook: POST /api/webhooks"
if [[ "$JSON_TOOL" == python3 ]]; then
    WEBHOOK_JSON="$(python3 -c 'import json, sys
print(json.dumps({"webhook_name": "Dispatch test", "event_type": "claim/opened",
                  "url": sys.argv[1], "secret": sys.argv[2]}))' "$RECEIVER_URL" "$SECRET")"
else
    WEBHOOK_JSON="$(jq -cn --arg url "$RECEIVER_URL" --arg secret "$SECRET" \
        '{webhook_name: "Dispatch test", event_type: "claim/opened", url: $url, secret: $secret}')"
fi
request 201 POST "$BASE_URL/api/webhooks" ${ADMIN_AUTH[@]+"${ADMIN_AUTH[@]}"} \
    -H "X-Tenant-ID: $TENANT" -H 'Content-Type: application/json' --data "$WEBHOOK_JSON"
printf '%s\n' "$BODY" | pretty
WEBHOOK_ID="$(printf '%s' "$BODY" | json_query 'dig(d, "webhook_id")' '.webhook_id // .data.webhook_id // .webhook.webhook_id')"
[[ -n "$WEBHOOK_ID" ]] || die "no webhook_id in the create response"
echo "webhook_id: $WEBHOOK_ID"

step "3. Publish event: POST /api/inngest"
if [[ "$JSON_TOOL" == python3 ]]; then
    EVENT_JSON="$(python3 -c 'import json, sys
print(json.dumps({"event": "claim/opened",
                  "data": {"claimNumber": "CLM-001", "claimAmount": 10000, "tenantId": sys.argv[1]},
                  "user": {"id": "user-123", "email": "test@example.com"}}))' "$TENANT")"
else
    EVENT_JSON="$(jq -cn --arg tenant "$TENANT" \
        '{event: "claim/opened", data: {claimNumber: "CLM-001", claimAmount: 10000, tenantId: $tenant},
          user: {id: "user-123", email: "test@example.com"}}')"
fi
request 202 POST "$BASE_URL/api/inngest" ${EVENT_AUTH[@]+"${EVENT_AUTH[@]}"} \
    -H "X-Tenant-ID: $TENANT" -H 'Content-Type: application/json' --data "$EVENT_JSON"
printf '%s\n' "$BODY" | pretty
EVENT_ID="$(printf '%s' "$BODY" | json_query '(d.get("ids") or [None])[0]' '.ids[0]')"
DELIVERY_COUNT="$(printf '%s' "$BODY" | json_query 'd.get("deliveries")' '.deliveries')"
[[ -n "$EVENT_ID" ]] || die "no event id in the publish response (expected {\"ids\":[...]})"
echo "event_id: $EVENT_ID (deliveries: ${DELIVERY_COUNT:-?})"
if [[ "${DELIVERY_COUNT:-}" == 0 ]]; then
    die "the event matched no webhooks (deliveries: 0)"
fi

step "4. Wait for the delivery: GET /api/webhooks/deliveries?webhook_id=$WEBHOOK_ID&event_id=$EVENT_ID"
LIST_URL="$BASE_URL/api/webhooks/deliveries?webhook_id=$(urlencode "$WEBHOOK_ID")&event_id=$(urlencode "$EVENT_ID")"
DELIVERY=""
STATUS=""
for ((i = 1; i <= POLL_ATTEMPTS; i++)); do
    request 200 GET "$LIST_URL" ${ADMIN_AUTH[@]+"${ADMIN_AUTH[@]}"} -H "X-Tenant-ID: $TENANT"
    DELIVERY="$(printf '%s' "$BODY" | json_query \
        'next((x for x in items(d) if str(x.get("event_id")) == sys.argv[2]), (items(d) or [None])[0])' \
        "(if type == \"array\" then . else (.deliveries // .data // .items // .results // []) end) | (map(select(.event_id == \"$EVENT_ID\")) | first) // first" \
        "$EVENT_ID")"
    STATUS=""
    [[ -n "$DELIVERY" ]] && STATUS="$(printf '%s' "$DELIVERY" | json_query 'd.get("status")' '.status')"
    echo "  poll $i/$POLL_ATTEMPTS: status=${STATUS:-<no delivery yet>}"
    case "$STATUS" in
        success) break ;;
        failed)
            printf '%s\n' "$DELIVERY" | pretty
            die "delivery failed"
            ;;
    esac
    sleep "$POLL_INTERVAL"
done
[[ "$STATUS" == success ]] || {
    [[ -n "$DELIVERY" ]] && printf '%s\n' "$DELIVERY" | pretty
    die "delivery did not succeed after $POLL_ATTEMPTS polls (last status: ${STATUS:-none})"
}
printf '%s\n' "$DELIVERY" | pretty
DELIVERY_ID="$(printf '%s' "$DELIVERY" | json_query 'd.get("delivery_id")' '.delivery_id')"
[[ -n "$DELIVERY_ID" ]] || die "no delivery_id in the delivery"

step "5. Delivery attempts: GET /api/webhooks/deliveries/$DELIVERY_ID"
request 200 GET "$BASE_URL/api/webhooks/deliveries/$(urlencode "$DELIVERY_ID")" ${ADMIN_AUTH[@]+"${ADMIN_AUTH[@]}"} \
    -H "X-Tenant-ID: $TENANT"
printf '%s\n' "$BODY" | pretty

if [[ "$KEEP_WEBHOOK" == 1 ]]; then
    step "6. Keeping webhook $WEBHOOK_ID (KEEP_WEBHOOK=1)"
else
    step "6. Delete webhook: DELETE /api/webhooks/$WEBHOOK_ID"
    request 204 DELETE "$BASE_URL/api/webhooks/$WEBHOOK_ID" ${ADMIN_AUTH[@]+"${ADMIN_AUTH[@]}"} -H "X-Tenant-ID: $TENANT"
    WEBHOOK_ID=""
    echo "deleted"
fi

printf '\nOK: webhook dispatch flow completed (delivery %s succeeded)\n' "$DELIVERY_ID"
