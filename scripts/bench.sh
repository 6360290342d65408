#!/usr/bin/env bash
# Load-tests hookbay's urgent Bubblehouse hook path against a bare Echo server
# (scripts/bareecho) with wrk on loopback, and checks the issue's targets:
# throughput >= 0.6x bare Echo, p99 <= 50 ms, no non-2xx, peak RSS < 150 MB.
# Then the signed-event run: scripts/svixload (wrk's Lua cannot sign) sends
# Svix-signed events, each with a fresh svix-id, to hookbay's /svix/bloom and
# the same load unsigned to bare Echo; targets: no non-2xx, p99 <= 50 ms.
#
# Knobs: DURATION (10s) CONNECTIONS (200) THREADS (2) WARMUP (3s);
# BENCH_STRICT=1 exits non-zero when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-200}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
BARE_ADDR=127.0.0.1:18080
HOOKBAY_ADDR=127.0.0.1:18081
URL_PATH=/bubblehouse/CreateDiscount4
RUN_ID="$$-$(date +%s)"

command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install -y wrk)" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building hookbay, bareecho and svixload..."
go build -o "$tmp/hookbay" .
go build -o "$tmp/bareecho" ./scripts/bareecho
go build -o "$tmp/svixload" ./scripts/svixload

# wait_up URL PID LOG [CURL_FLAGS]: polls URL for up to 20 s.
wait_up() {
	local url=$1 pid=$2 log=$3 flags=${4:--sS}
	for _ in $(seq 200); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: server exited; log tail:" >&2; tail -n 30 "$log" >&2; exit 1
		fi
		curl "$flags" -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: $url did not answer within 20 s; log tail:" >&2
	tail -n 30 "$log" >&2
	exit 1
}

# load NAME ADDR AUTH: warm up, then measure; leaves wrk output in $tmp/NAME.wrk.
load() {
	local name=$1 url="http://$2$URL_PATH"
	BENCH_AUTH=$3 BENCH_RUN="$RUN_ID-$name-warm" \
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s scripts/bench.lua "$url" >"$tmp/$name.warm"
	BENCH_AUTH=$3 BENCH_RUN="$RUN_ID-$name" \
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench.lua "$url" >"$tmp/$name.wrk"
}

# to_ms VALUE: wrk duration (850.00us, 1.20ms, 2.00s, 1.00m) in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
		printf "%.2f", n * f }'
}

# parse NAME: sets rps, p50, p99, non2xx, sockerr from $tmp/NAME.wrk.
parse() {
	local f="$tmp/$1.wrk"
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	non2xx=$(awk '/^bench non-2xx:/ {print $3}' "$f")
	sockerr=$(awk '/^bench socket errors:/ {print $4}' "$f")
}

echo "bare echo: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
"$tmp/bareecho" -listen "$BARE_ADDR" >"$tmp/bareecho.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
wait_up "http://$BARE_ADDR/" "$bare_pid" "$tmp/bareecho.log"
load bare "$BARE_ADDR" ""
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
parse bare
b_rps=$rps b_p50=$p50 b_p99=$p99 b_non2xx=$non2xx b_sock=$sockerr

echo "hookbay: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
cat >"$tmp/hookbay.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data", tls: {mode: "off"}}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
"$tmp/hookbay" serve --config "$tmp/hookbay.yaml" >"$tmp/hookbay.log" 2>&1 &
hb_pid=$!; pids+=("$hb_pid")
wait_up "http://$HOOKBAY_ADDR/healthz" "$hb_pid" "$tmp/hookbay.log" -fsS
load hookbay "$HOOKBAY_ADDR" "Bearer bench-secret"
rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$hb_pid/status")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
parse hookbay
rss=$(awk -v k="$rss_kb" 'BEGIN {printf "%.1f", k / 1024}')

echo
printf '%-10s %10s %8s %8s %8s %9s %8s\n' server req/s "p50 ms" "p99 ms" non-2xx sock-err "RSS MB"
printf '%-10s %10s %8s %8s %8s %9s %8s\n' bare-echo "$b_rps" "$b_p50" "$b_p99" "$b_non2xx" "$b_sock" -
printf '%-10s %10s %8s %8s %8s %9s %8s\n' hookbay "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$rss"
ratio=$(awk -v a="$rps" -v b="$b_rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
echo "ratio (hookbay/bare): $ratio"

fails=0
check() { # check LABEL AWK-CONDITION
	if awk "BEGIN {exit !($2)}"; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
check "throughput ratio $ratio >= 0.6" "$ratio >= 0.6"
check "p99 $p99 ms <= 50 ms" "$p99 <= 50"
check "non-2xx $non2xx + socket errors $sockerr == 0" "$non2xx + $sockerr == 0"
check "peak RSS $rss MB < 150 MB" "$rss < 150"

# --- Signed events: svixload against bare Echo (unsigned) and hookbay's
# Svix receiver (signed), both at $CONNECTIONS connections. ---

# A fixed test secret (24 bytes), configured for the bench only.
SVIX_SECRET=whsec_kbUmc4+B0mj2tdefI9YtTTErBhLi5YWW

# go_dur VALUE: a wrk duration as a Go one (wrk takes a bare number as seconds).
go_dur() { if [[ $1 =~ ^[0-9]+$ ]]; then echo "${1}s"; else echo "$1"; fi; }

# svixrun NAME URL [SECRET]: warm up and measure; leaves the output in $tmp/NAME.svix.
svixrun() {
	if ! "$tmp/svixload" -url "$2" -c "$CONNECTIONS" -d "$(go_dur "$DURATION")" \
		-warmup "$(go_dur "$WARMUP")" -secret "${3:-}" -run "${RUN_ID//-/_}_$1" \
		>"$tmp/$1.svix" 2>"$tmp/$1.svix.err"; then
		echo "bench: svixload failed:" >&2; cat "$tmp/$1.svix.err" >&2; exit 1
	fi
	if [[ -s $tmp/$1.svix.err ]]; then sed 's/^/  /' "$tmp/$1.svix.err"; fi
}

# sparse NAME: sets s_rps, s_p50, s_p99, s_non2xx, s_err from $tmp/NAME.svix.
sparse() {
	local f="$tmp/$1.svix"
	s_rps=$(awk '$1 == "requests/sec:" {print $2}' "$f")
	s_p50=$(awk '$1 == "p50_ms:" {print $2}' "$f")
	s_p99=$(awk '$1 == "p99_ms:" {print $2}' "$f")
	s_non2xx=$(awk '$1 == "non2xx:" {print $2}' "$f")
	s_err=$(awk '$1 == "errors:" {print $2}' "$f")
}

echo
echo "bare echo: svixload -c$CONNECTIONS -d$DURATION unsigned (warm-up $WARMUP)..."
"$tmp/bareecho" -listen "$BARE_ADDR" >"$tmp/bareecho-svix.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
wait_up "http://$BARE_ADDR/" "$bare_pid" "$tmp/bareecho-svix.log"
svixrun bare "http://$BARE_ADDR/bubblehouse/svix"
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
sparse bare
sb_rps=$s_rps sb_p50=$s_p50 sb_p99=$s_p99 sb_non2xx=$s_non2xx sb_err=$s_err

echo "hookbay svix: svixload -c$CONNECTIONS -d$DURATION signed (warm-up $WARMUP)..."
# A fresh instance and data directory, so the Bubblehouse run's records do
# not weigh on this one.
cat >"$tmp/hookbay-svix.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data-svix", tls: {mode: "off"}}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
svix:
  endpoints:
    bloom: {secrets: ["$SVIX_SECRET"], events: {"*": {}}}
YAML
"$tmp/hookbay" serve --config "$tmp/hookbay-svix.yaml" >"$tmp/hookbay-svix.log" 2>&1 &
hb_pid=$!; pids+=("$hb_pid")
wait_up "http://$HOOKBAY_ADDR/healthz" "$hb_pid" "$tmp/hookbay-svix.log" -fsS
svixrun svix "http://$HOOKBAY_ADDR/svix/bloom" "$SVIX_SECRET"
s_rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$hb_pid/status")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
sparse svix
s_rss=$(awk -v k="$s_rss_kb" 'BEGIN {printf "%.1f", k / 1024}')

echo
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "server (client)" req/s "p50 ms" "p99 ms" non-2xx errors "RSS MB"
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "bare-echo (svixload)" "$sb_rps" "$sb_p50" "$sb_p99" "$sb_non2xx" "$sb_err" -
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "hookbay svix (svixload)" "$s_rps" "$s_p50" "$s_p99" "$s_non2xx" "$s_err" "$s_rss"
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "hookbay bh (wrk)" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$rss"
s_ratio=$(awk -v a="$s_rps" -v b="$sb_rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
echo "ratio (svix/bare, both svixload): $s_ratio  (Bubblehouse/bare, both wrk: $ratio)"

check "svix p99 $s_p99 ms <= 50 ms" "$s_p99 <= 50"
check "svix non-2xx $s_non2xx + errors $s_err == 0" "$s_non2xx + $s_err == 0"

if [[ ${BENCH_STRICT:-0} == 1 && $fails -gt 0 ]]; then exit 1; fi
exit 0
