#!/usr/bin/env bash
# Starts hookbay on plain HTTP for a tunnel and, when ngrok is installed,
# `ngrok http` to it; prints the public hook URLs for the three senders
# once the tunnel is up. ngrok terminates TLS, so senders still see HTTPS.
#
#   scripts/ngrok.sh [hookbay serve flags...]    (PORT=8080 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
DATA=${DATA:-hookbay-data}

go build -o "${TMPDIR:-/tmp}/hookbay-ngrok" .
"${TMPDIR:-/tmp}/hookbay-ngrok" serve --http --listen "127.0.0.1:$PORT" --data "$DATA" "$@" &
hookbay_pid=$!
pids=("$hookbay_pid")
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
	sleep 0.1
done

print_urls() {
	local base=$1
	echo
	echo "Hook URLs (give these to the senders):"
	echo "  Bubblehouse:  $base/bubblehouse/:name"
	echo "  Bloomreach:   $base/bloomreach/sample     (auth-test: $base/bloomreach/sample/auth-test)"
	echo "  Svix (Bloom): $base/svix/bloom"
	echo "Credentials are in $DATA/credentials.json and in the banner above."
}

if ! command -v ngrok >/dev/null; then
	echo
	echo "ngrok is not installed. Install it from https://ngrok.com/download (or 'brew install ngrok'),"
	echo "run 'ngrok config add-authtoken <token>' once, then run this script again."
	print_urls "http://localhost:$PORT"
	wait "$hookbay_pid"
	exit 0
fi

ngrok http "$PORT" --log stdout --log-format json >"${TMPDIR:-/tmp}/hookbay-ngrok.log" 2>&1 &
pids+=("$!")
public=""
for _ in $(seq 100); do
	# ngrok's local API lists the tunnel once it is up.
	public=$(curl -fsS http://127.0.0.1:4040/api/tunnels 2>/dev/null |
		sed -n 's/.*"public_url":"\(https:[^"]*\)".*/\1/p' | head -n 1) || true
	[ -n "$public" ] && break
	sleep 0.2
done
if [ -z "$public" ]; then
	echo "ngrok did not report a tunnel; see ${TMPDIR:-/tmp}/hookbay-ngrok.log" >&2
	exit 1
fi
print_urls "$public"
wait "$hookbay_pid"
