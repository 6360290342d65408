#!/usr/bin/env bash
# Sends one request of each sender to a running hookbay in dev mode, with the
# credentials from its data directory, and prints the answers: a first look.
#
#   scripts/send-samples.sh [BASE_URL]     (default https://localhost:8443)
#   DATA=hookbay-data scripts/send-samples.sh http://localhost:8080
set -euo pipefail
BASE=${1:-https://localhost:8443}
DATA=${DATA:-hookbay-data}
creds="$DATA/credentials.json"
[ -f "$creds" ] || { echo "no $creds: start 'go run . serve' first (dev mode writes it)" >&2; exit 1; }

field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$creds"; }
auth=$(field bubblehouse_authorization)
br_user=$(field bloomreach_user)
br_pass=$(field bloomreach_password)
whsec=$(field svix_secret)
tls=()
[ -f "$DATA/certs/ca.pem" ] && tls=(--cacert "$DATA/certs/ca.pem")
stamp=$(date +%s)

echo "== Bubblehouse Hello1"
curl -sS "${tls[@]}" -H "Authorization: $auth" -H 'Content-Type: application/json' \
	-H 'X-BH-Urgency: real-time' -H "X-Request-ID: sample-hello-$stamp" \
	-d '{"magic":"sample"}' "$BASE/bubblehouse/Hello1"; echo

echo "== Bubblehouse CreateDiscount4 (urgent)"
curl -sS "${tls[@]}" -H "Authorization: $auth" -H 'Content-Type: application/json' \
	-H 'X-BH-Urgency: urgent' -H "X-Request-ID: sample-discount-$stamp" \
	-d '{"code":"SAMPLE-10","title":"10% off","percentage":1000}' "$BASE/bubblehouse/CreateDiscount4"; echo

echo "== Bloomreach per-customer webhook"
curl -sS "${tls[@]}" -u "$br_user:$br_pass" -H 'Content-Type: application/json' \
	-H "X-Request-ID: sample-br-$stamp" \
	-d '{"phone":"+420123456789","text":"Hello from Bloomreach"}' "$BASE/bloomreach/sample"; echo

echo "== Svix-signed event (user.created)"
id="msg_sample_$stamp"
body='{"type":"user.created","data":{"user_id":"u_123"}}'
# The signature is HMAC-SHA256 over "id.timestamp.body" with the base64-decoded secret.
key_hex=$(printf '%s' "${whsec#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')
sig=$(printf '%s' "$id.$stamp.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
curl -sS "${tls[@]}" -H 'Content-Type: application/json' -H "svix-id: $id" -H "svix-timestamp: $stamp" \
	-H "svix-signature: v1,$sig" -d "$body" "$BASE/svix/bloom"; echo

echo
echo "See them with: go run . events list --data $DATA"
