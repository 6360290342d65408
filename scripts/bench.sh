#!/usr/bin/env bash
# Load-tests hookbay's urgent Bubblehouse hook path against a bare Echo server
# (tools/bareecho) with wrk on loopback, and checks the issue's targets:
# throughput >= 0.6x bare Echo, p99 <= 50 ms, no non-2xx, peak RSS < 150 MB.
# Then the signed-event run: tools/svixload (wrk's Lua cannot sign) sends
# Svix-signed events, each with a fresh svix-id, to hookbay's /svix/bloom and
# the same load unsigned to bare Echo; targets: no non-2xx, p99 <= 50 ms.
# Last, Bloomreach (scripts/bench-bloomreach.lua): ~400-byte per-customer
# requests at CONNECTIONS, and 1000-customer batches at BATCH_CONNECTIONS,
# to bare Echo and to hookbay's /bloomreach/sms and /bloomreach/sms_batch
# with Basic auth; targets: p99 < 1000 ms (Bloomreach's 1 s timeout), no
# non-2xx, no reply without "success":true.
#
# FLOOR=1 adds tools/floor to the Bubblehouse run: the least a durable
# receiver can do per request (read, check JSON, one SQLite row per request,
# or three with -rows 3 as hookbay writes, group-committed with fsync), as
# the ceiling any receiver with that durability reaches on this machine;
# and the one-row floor without fsync (-sync off, not durable), the ceiling
# of the stack itself when the disk costs nothing. Then hookbay and the
# one-row floor in FLOOR_ROUNDS (3) interleaved rounds, each fresh, with
# min / median / max of throughput, p99 and CPU per request; target:
# hookbay >= 0.85x the floor at the medians. FLOOR_PREV=REV (a git
# revision, e.g. e37aa0c, the release before issue 14's work) adds hookbay
# built from REV to those rounds, so that what changed is measured against
# the floor in the same run.
#
# PG=1 adds PostgreSQL to the Bubblehouse run, then stops (no Svix or
# Bloomreach runs): hookbay with store.postgres on PG_URL (default
# $HOOKBAY_TEST_DATABASE_URL; a role that may create schemas, each run in a
# fresh schema dropped afterwards), one replica and then two replicas on
# one database, each of the two loaded by its own wrk at CONNECTIONS/2;
# targets: one replica >= 0.5x hookbay on SQLite, p99 <= 50 ms, no non-2xx.
#
# OBSERVE=1 adds, after the Bubblehouse run, the cost of metrics and
# request logging: hookbay with both on and with both off, side by side
# under the same load; targets: throughput on >= 0.95x off, CPU time per
# request on <= 1.05x off.
#
# INSPECT=1 adds the cost of an open inspector: hookbay with a client on
# its live stream and without one, side by side under the same load;
# target: throughput with the stream >= 0.95x without.
#
# Knobs: DURATION (10s) CONNECTIONS (200) BATCH_CONNECTIONS (20) THREADS (2)
# WARMUP (3s) FLOOR (0) FLOOR_ROUNDS (3) FLOOR_PREV OBSERVE (0) OBSERVE_ROUNDS (3) INSPECT (0)
# INSPECT_ROUNDS (3) PG (0) PG_URL; BENCH_STRICT=1 exits non-zero when a
# target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-200}
# Batches of 1000 customers are ~160-175 KB each. On 2 cores 20 connections
# already saturate hookbay (~50-60 batches/s, 50-60k customers/s); past that,
# more connections only queue (mean latency ~ connections / throughput, so
# 40 would put p99 over 1 s) and measure the client's concurrency rather
# than the server. 20 keeps hookbay busy with p99 ~0.5-0.9 s (2 shared cores), under
# Bloomreach's 1 s, and ~3.5 MB of bodies in flight.
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-20}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
BARE_ADDR=127.0.0.1:18080
HOOKBAY_ADDR=127.0.0.1:18081
URL_PATH=/bubblehouse/CreateDiscount4
RUN_ID="$$-$(date +%s)"

command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install -y wrk)" >&2; exit 2; }
PG=${PG:-0}
PG_SCHEMA=""
if [[ $PG == 1 ]]; then
	PG_URL=${PG_URL:-${HOOKBAY_TEST_DATABASE_URL:-}}
	[[ -n $PG_URL ]] || { echo "bench: PG=1 needs PG_URL (or HOOKBAY_TEST_DATABASE_URL): a PostgreSQL URL" >&2; exit 2; }
	command -v psql >/dev/null || { echo "bench: PG=1 needs psql (apt-get install -y postgresql-client)" >&2; exit 2; }
	PG_SCHEMA="hookbay_bench_$$"
	psql -qX -v ON_ERROR_STOP=1 "$PG_URL" -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null
	# libpq's options parameter sets the search_path, for hookbay and psql alike.
	case $PG_URL in *\?*) HB_PG_URL="$PG_URL&options=-csearch_path%3D$PG_SCHEMA" ;; *) HB_PG_URL="$PG_URL?options=-csearch_path%3D$PG_SCHEMA" ;; esac
fi
FLOOR_PREV=${FLOOR_PREV:-}
if [[ -n $FLOOR_PREV ]]; then
	[[ ${FLOOR:-0} == 1 ]] || { echo "bench: FLOOR_PREV needs FLOOR=1" >&2; exit 2; }
	prev_commit=$(git rev-parse --verify --quiet "$FLOOR_PREV^{commit}") || { echo "bench: FLOOR_PREV=$FLOOR_PREV is not a commit" >&2; exit 2; }
fi
tmp=$(mktemp -d)
pids=()
worktree=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [[ -n $worktree ]]; then git worktree remove --force "$worktree" >/dev/null 2>&1 || true; fi
	if [[ -n $PG_SCHEMA ]]; then psql -qX "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building hookbay, bareecho and svixload..."
go build -o "$tmp/hookbay" .
go build -o "$tmp/bareecho" ./tools/bareecho
go build -o "$tmp/svixload" ./tools/svixload
if [[ ${FLOOR:-0} == 1 ]]; then go build -o "$tmp/floor" ./tools/floor; fi
if [[ -n $FLOOR_PREV ]]; then
	echo "building hookbay $FLOOR_PREV ($(git rev-parse --short "$prev_commit")) for the floor rounds..."
	worktree="$tmp/prev"
	git worktree add --quiet --detach "$worktree" "$prev_commit"
	(cd "$worktree" && go build -o "$tmp/hookbay-prev" .)
fi

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

# start_bare NAME: serves bare Echo, logging to $tmp/NAME.log, and waits
# until it answers; sets bare_pid.
start_bare() {
	"$tmp/bareecho" -listen "$BARE_ADDR" >"$tmp/$1.log" 2>&1 &
	bare_pid=$!; pids+=("$bare_pid")
	wait_up "http://$BARE_ADDR/" "$bare_pid" "$tmp/$1.log"
}

# start_hookbay NAME [ADDR [BIN]]: serves $tmp/hookbay-NAME.yaml (written
# by the caller) with BIN (default the build of the working tree), logging
# to $tmp/hookbay-NAME.log, and waits until it answers on ADDR (default
# HOOKBAY_ADDR); sets hb_pid.
start_hookbay() {
	"${3:-$tmp/hookbay}" serve --config "$tmp/hookbay-$1.yaml" >"$tmp/hookbay-$1.log" 2>&1 &
	hb_pid=$!; pids+=("$hb_pid")
	wait_up "http://${2:-$HOOKBAY_ADDR}/healthz" "$hb_pid" "$tmp/hookbay-$1.log" -fsS
}

# peak_rss PID: the process's peak RSS in MB.
peak_rss() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# cpu_ticks PID: the process's user + system CPU time, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# load NAME ADDR AUTH [PID]: warm up, then measure; leaves wrk output in
# $tmp/NAME.wrk and, given the server's PID, its CPU time (clock ticks)
# over the measured run in $tmp/NAME.ticks.
load() {
	local name=$1 url="http://$2$URL_PATH" pid=${4:-} c0
	BENCH_AUTH=$3 BENCH_RUN="$RUN_ID-$name-warm" \
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s scripts/bench.lua "$url" >"$tmp/$name.warm"
	if [[ -n $pid ]]; then c0=$(cpu_ticks "$pid"); fi
	BENCH_AUTH=$3 BENCH_RUN="$RUN_ID-$name" \
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench.lua "$url" >"$tmp/$name.wrk"
	if [[ -n $pid ]]; then echo $(($(cpu_ticks "$pid") - c0)) >"$tmp/$name.ticks"; fi
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
start_bare bareecho
load bare "$BARE_ADDR" ""
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
parse bare
b_rps=$rps b_p50=$p50 b_p99=$p99 b_non2xx=$non2xx b_sock=$sockerr

echo "hookbay: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
cat >"$tmp/hookbay-bh.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data", tls: {mode: "off"}}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
start_hookbay bh
load hookbay "$HOOKBAY_ADDR" "Bearer bench-secret"
rss=$(peak_rss "$hb_pid")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
parse hookbay

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

# half_wrk NAME ADDR DURATION: one of two instances' share of the load.
half_wrk() {
	BENCH_AUTH="Bearer bench-secret" BENCH_RUN="$RUN_ID-$1" \
		wrk -t1 -c"$((CONNECTIONS / 2))" -d"$3" --latency -s scripts/bench.lua "http://$2$URL_PATH" >"$tmp/$1.wrk"
}

# side_by_side A A_ADDR A_PID B B_ADDR B_PID ROUNDS: loads two running
# hookbay instances at the same time, each with its own wrk at
# CONNECTIONS/2, after a warm-up, for ROUNDS rounds, so that whatever else
# the machine does weighs on both alike. Prints each round; sets pair_rps
# (A's throughput over B's, summed over the rounds) and pair_cpu (A's CPU
# time per request over B's).
side_by_side() {
	local a=$1 a_addr=$2 a_pid=$3 b=$4 b_addr=$5 b_pid=$6 rounds=$7
	local hz round a0 a1 b0 b1 w1 w2 r_a r_b p_a p_b x_a x_b n_a n_b
	local a_n=0 b_n=0 a_cpu=0 b_cpu=0 a_rps=0 b_rps=0
	local saved=("$rps" "$p50" "$p99" "$non2xx" "$sockerr") # parse overwrites them
	half_wrk "$a-warm" "$a_addr" "$WARMUP" & w1=$!
	half_wrk "$b-warm" "$b_addr" "$WARMUP" & w2=$!
	wait "$w1" "$w2"
	hz=$(getconf CLK_TCK)
	for round in $(seq "$rounds"); do
		a0=$(cpu_ticks "$a_pid") b0=$(cpu_ticks "$b_pid")
		half_wrk "$a-$round" "$a_addr" "$DURATION" & w1=$!
		half_wrk "$b-$round" "$b_addr" "$DURATION" & w2=$!
		wait "$w1" "$w2"
		a1=$(cpu_ticks "$a_pid") b1=$(cpu_ticks "$b_pid")
		parse "$a-$round"; r_a=$rps p_a=$p99 x_a=$((non2xx + sockerr))
		parse "$b-$round"; r_b=$rps p_b=$p99 x_b=$((non2xx + sockerr))
		n_a=$(awk '/ requests in / {print $1}' "$tmp/$a-$round.wrk")
		n_b=$(awk '/ requests in / {print $1}' "$tmp/$b-$round.wrk")
		printf '  round %s: %s %9s req/s, p99 %7s ms, %6s us CPU/req, %s errors | %s %9s req/s, p99 %7s ms, %6s us CPU/req, %s errors\n' "$round" \
			"$a" "$r_a" "$p_a" "$(awk -v c=$((a1 - a0)) -v n="$n_a" -v hz="$hz" 'BEGIN {printf "%.1f", c / hz * 1e6 / n}')" "$x_a" \
			"$b" "$r_b" "$p_b" "$(awk -v c=$((b1 - b0)) -v n="$n_b" -v hz="$hz" 'BEGIN {printf "%.1f", c / hz * 1e6 / n}')" "$x_b"
		a_n=$((a_n + n_a)) b_n=$((b_n + n_b)) a_cpu=$((a_cpu + a1 - a0)) b_cpu=$((b_cpu + b1 - b0))
		a_rps=$(awk -v x="$a_rps" -v y="$r_a" 'BEGIN {print x + y}') b_rps=$(awk -v x="$b_rps" -v y="$r_b" 'BEGIN {print x + y}')
	done
	pair_rps=$(awk -v x="$a_rps" -v y="$b_rps" 'BEGIN {printf "%.3f", (y > 0) ? x / y : 0}')
	pair_cpu=$(awk -v x="$a_cpu" -v nx="$a_n" -v y="$b_cpu" -v ny="$b_n" 'BEGIN {printf "%.3f", (y > 0 && nx > 0) ? (x / nx) / (y / ny) : 0}')
	rps=${saved[0]} p50=${saved[1]} p99=${saved[2]} non2xx=${saved[3]} sockerr=${saved[4]}
}

# start_pair NAME ON_ADDR OFF_ADDR: starts hookbay with $tmp/hookbay-NAME-on.yaml
# and $tmp/hookbay-NAME-off.yaml (written by the caller), listening on
# ON_ADDR and OFF_ADDR, and waits until both answer; sets on_pid and off_pid.
start_pair() {
	local mode
	for mode in on off; do
		"$tmp/hookbay" serve --config "$tmp/hookbay-$1-$mode.yaml" >"$tmp/hookbay-$1-$mode.log" 2>&1 &
		pids+=("$!")
		if [[ $mode == on ]]; then on_pid=$!; else off_pid=$!; fi
	done
	wait_up "http://$2/healthz" "$on_pid" "$tmp/hookbay-$1-on.log" -fsS
	wait_up "http://$3/healthz" "$off_pid" "$tmp/hookbay-$1-off.log" -fsS
}

# --- OBSERVE=1: what metrics and request logging cost, in the same run:
# two hookbay instances side by side, one with both on (the admin listener
# serving /metrics, scraped every second, and a JSON log line per request
# written to a file) and one with both off (admin.listen off,
# log.requests false), each loaded at the same time by its own wrk at
# CONNECTIONS/2, so that whatever else the machine does weighs on both
# alike; OBSERVE_ROUNDS rounds (3). Two figures: throughput on/off, and
# hookbay's CPU time per request (user + system, from /proc) on/off.
# Targets: throughput on >= 0.95x off; CPU per request on <= 1.05x off. ---
if [[ ${OBSERVE:-0} == 1 ]]; then
	OBS_ON=127.0.0.1:18084 OBS_OFF=127.0.0.1:18085 OBS_ADMIN=127.0.0.1:18086
	cat >"$tmp/hookbay-obs-on.yaml" <<YAML
server: {listen: "$OBS_ON", data_dir: "$tmp/data-obs-on", tls: {mode: "off"}}
admin: {listen: "$OBS_ADMIN"}
log: {format: json, requests: true}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
	cat >"$tmp/hookbay-obs-off.yaml" <<YAML
server: {listen: "$OBS_OFF", data_dir: "$tmp/data-obs-off", tls: {mode: "off"}}
admin: {listen: "off"}
log: {format: json, requests: false}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
	start_pair obs "$OBS_ON" "$OBS_OFF"
	while kill -0 "$on_pid" 2>/dev/null; do curl -fsS -o /dev/null "http://$OBS_ADMIN/metrics" 2>/dev/null || true; sleep 1; done &
	scraper=$!
	pids+=("$scraper")
	echo "metrics and request log on and off, side by side: wrk -t1 -c$((CONNECTIONS / 2)) -d$DURATION each, ${OBSERVE_ROUNDS:-3} rounds (warm-up $WARMUP)..."
	side_by_side obs-on "$OBS_ON" "$on_pid" obs-off "$OBS_OFF" "$off_pid" "${OBSERVE_ROUNDS:-3}"
	obs_ratio=$pair_rps obs_cpu=$pair_cpu
	curl -fsS -o "$tmp/obs.metrics" "http://$OBS_ADMIN/metrics"
	kill "$on_pid" "$off_pid" "$scraper" 2>/dev/null || true
	wait "$on_pid" "$off_pid" "$scraper" 2>/dev/null || true
	grep -q '^hookbay_requests_total{.*status="202"' "$tmp/obs.metrics" || { echo "bench: /metrics did not count the requests" >&2; exit 1; }
	lines=$(grep -c '"msg":"request"' "$tmp/hookbay-obs-on.log" || true)
	echo "metrics and request log on/off: throughput $obs_ratio, CPU per request $obs_cpu ($lines request lines logged)"
	check "metrics and request log: throughput on/off $obs_ratio >= 0.95" "$obs_ratio >= 0.95"
	check "metrics and request log: CPU per request on/off $obs_cpu <= 1.05" "$obs_cpu <= 1.05"
fi

# --- INSPECT=1: what an open inspector costs ingest: two hookbay instances
# with the admin listener on, side by side under the same load, one with a
# client reading its live stream (/api/v1/stream, as the web UI does) and
# one without; INSPECT_ROUNDS rounds (3). Target: throughput with the
# stream >= 0.95x without. ---
if [[ ${INSPECT:-0} == 1 ]]; then
	INS_ON=127.0.0.1:18091 INS_OFF=127.0.0.1:18092 INS_ADMIN_ON=127.0.0.1:18093 INS_ADMIN_OFF=127.0.0.1:18094
	for mode in on off; do
		if [[ $mode == on ]]; then addr=$INS_ON admin=$INS_ADMIN_ON; else addr=$INS_OFF admin=$INS_ADMIN_OFF; fi
		cat >"$tmp/hookbay-ins-$mode.yaml" <<YAML
server: {listen: "$addr", data_dir: "$tmp/data-ins-$mode", tls: {mode: "off"}}
admin: {listen: "$admin"}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
	done
	start_pair ins "$INS_ON" "$INS_OFF"
	curl -sN "http://$INS_ADMIN_ON/api/v1/stream" >"$tmp/ins.sse" 2>/dev/null &
	streamer=$!
	pids+=("$streamer")
	echo "inspector stream open and none, side by side: wrk -t1 -c$((CONNECTIONS / 2)) -d$DURATION each, ${INSPECT_ROUNDS:-3} rounds (warm-up $WARMUP)..."
	side_by_side ins-stream "$INS_ON" "$on_pid" ins-none "$INS_OFF" "$off_pid" "${INSPECT_ROUNDS:-3}"
	kill "$on_pid" "$off_pid" "$streamer" 2>/dev/null || true
	wait "$on_pid" "$off_pid" "$streamer" 2>/dev/null || true
	shown=$(grep -c '^event: request' "$tmp/ins.sse" || true)
	[[ $shown -gt 0 ]] || { echo "bench: the live stream sent no request" >&2; exit 1; }
	echo "inspector stream open/none: throughput $pair_rps, CPU per request $pair_cpu ($shown requests sent on the stream)"
	check "inspector: throughput with a live stream / without $pair_rps >= 0.95" "$pair_rps >= 0.95"
fi

if [[ ${FLOOR:-0} == 1 ]]; then
	hb_figures=("$rps" "$p50" "$p99" "$non2xx" "$sockerr") # parse overwrites them
	echo
	# floorrun NAME ARGS...: loads tools/floor started with ARGS.
	floorrun() {
		local name=$1; shift
		echo "floor ($*): wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
		"$tmp/floor" -listen "$BARE_ADDR" -db "$tmp/floor.db" "$@" >"$tmp/$name.log" 2>&1 &
		floor_pid=$!; pids+=("$floor_pid")
		wait_up "http://$BARE_ADDR/" "$floor_pid" "$tmp/$name.log"
		load "$name" "$BARE_ADDR" "" "$floor_pid"
		if ! kill "$floor_pid" 2>/dev/null; then
			echo "bench: floor $* exited during its run; log tail:" >&2
			tail -n 20 "$tmp/$name.log" >&2
		fi
		wait "$floor_pid" 2>/dev/null || true
	}
	floorrun floor1 -rows 1
	floorrun floor3 -rows 3
	floorrun floor1-nosync -rows 1 -sync off
	printf '%-16s %10s %8s %8s %8s %9s %7s\n' server req/s "p50 ms" "p99 ms" non-2xx sock-err ratio
	for name in floor1 floor3 floor1-nosync; do
		parse "$name"
		printf '%-16s %10s %8s %8s %8s %9s %7s\n' "$name" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" \
			"$(awk -v a="$rps" -v b="$b_rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
	done
	echo "(floor1: one row per request; floor3: request, idempotency and job rows, as hookbay;"
	echo " floor1-nosync: floor1 without fsync, not durable: the stack's CPU ceiling; ratio to bare Echo)"

	# hookbay and the one-row floor again, in FLOOR_ROUNDS interleaved rounds
	# (hookbay first in odd rounds, the floor first in even ones), each on a
	# fresh database: one run of each, minutes apart, measures the machine's
	# drift as much as the servers. CPU per request is the server's own
	# (user + system, from /proc) over the measured run.
	echo
	FLOOR_ROUNDS=${FLOOR_ROUNDS:-3}
	kinds=(hookbay floor1)
	if [[ -n $FLOOR_PREV ]]; then kinds=(prev hookbay floor1); fi
	echo "${kinds[*]} interleaved, $FLOOR_ROUNDS rounds: wrk -t$THREADS -c$CONNECTIONS -d$DURATION each (warm-up $WARMUP)..."
	hz=$(getconf CLK_TCK)
	declare -A fr_rps fr_p99 fr_cpu
	for round in $(seq "$FLOOR_ROUNDS"); do
		order=("${kinds[@]}")
		if ((round % 2 == 0)); then order=(floor1 hookbay); if [[ -n $FLOOR_PREV ]]; then order+=(prev); fi; fi
		for kind in "${order[@]}"; do
			name="fr-$kind-$round"
			if [[ $kind == hookbay || $kind == prev ]]; then
				sed "s|$tmp/data\"|$tmp/data-$name\"|" "$tmp/hookbay-bh.yaml" >"$tmp/hookbay-$name.yaml"
				if [[ $kind == prev ]]; then start_hookbay "$name" "$HOOKBAY_ADDR" "$tmp/hookbay-prev"; else start_hookbay "$name"; fi
				load "$name" "$HOOKBAY_ADDR" "Bearer bench-secret" "$hb_pid"
				kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
			else
				floorrun "$name" -rows 1
			fi
			parse "$name"
			n=$(awk '/ requests in / {print $1}' "$tmp/$name.wrk")
			fr_rps[$kind]+="$rps " fr_p99[$kind]+="$p99 "
			fr_cpu[$kind]+="$(awk -v c="$(<"$tmp/$name.ticks")" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", c / hz * 1e6 / n}') "
			printf '  round %s %-8s %10s req/s, p99 %7s ms, %s errors\n' "$round" "$kind" "$rps" "$p99" "$((non2xx + sockerr))"
		done
	done
	# spread VALUES...: min / median / max.
	spread() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {printf "%s / %s / %s", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
	# median VALUES...
	median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
	printf '%-8s  %-32s  %-28s  %s\n' server "req/s min / median / max" "p99 ms" "CPU us/req"
	for kind in "${kinds[@]}"; do
		# shellcheck disable=SC2086 # word splitting wanted
		printf '%-8s  %-32s  %-28s  %s\n' "$kind" "$(spread ${fr_rps[$kind]})" "$(spread ${fr_p99[$kind]})" "$(spread ${fr_cpu[$kind]})"
	done
	# shellcheck disable=SC2086
	floor_ratio=$(awk -v a="$(median ${fr_rps[hookbay]})" -v b="$(median ${fr_rps[floor1]})" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
	# shellcheck disable=SC2086
	floor_cpu=$(awk -v a="$(median ${fr_cpu[hookbay]})" -v b="$(median ${fr_cpu[floor1]})" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
	echo "hookbay/floor1 at the medians: throughput $floor_ratio, CPU per request $floor_cpu"
	if [[ -n $FLOOR_PREV ]]; then
		# shellcheck disable=SC2086
		echo "prev ($FLOOR_PREV)/floor1 at the medians: throughput $(awk -v a="$(median ${fr_rps[prev]})" -v b="$(median ${fr_rps[floor1]})" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'), CPU per request $(awk -v a="$(median ${fr_cpu[prev]})" -v b="$(median ${fr_cpu[floor1]})" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
	fi
	check "hookbay throughput $floor_ratio x the one-row durable floor >= 0.85" "$floor_ratio >= 0.85"
	rps=${hb_figures[0]} p50=${hb_figures[1]} p99=${hb_figures[2]} non2xx=${hb_figures[3]} sockerr=${hb_figures[4]}
fi

# --- PostgreSQL (PG=1): the same load on hookbay with store.postgres, one
# replica, then two replicas on the one database. ---
if [[ $PG == 1 ]]; then
	HOOKBAY_ADDR2=127.0.0.1:18082
	# pg_yaml NAME ADDR: a replica's config, with a data directory of its own.
	pg_yaml() {
		cat >"$tmp/hookbay-$1.yaml" <<YAML
server: {listen: "$2", data_dir: "$tmp/data-$1", tls: {mode: "off"}}
admin: {listen: "off"}
store: {postgres: {url: "$HB_PG_URL"}}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
YAML
	}
	echo
	echo "hookbay on PostgreSQL, one replica: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
	pg_yaml pg1 "$HOOKBAY_ADDR"
	start_hookbay pg1
	load pg1 "$HOOKBAY_ADDR" "Bearer bench-secret"
	pg1_rss=$(peak_rss "$hb_pid")
	kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
	hb_figures=("$rps" "$p50" "$p99" "$non2xx" "$sockerr") # parse overwrites them
	parse pg1
	g1_rps=$rps g1_p50=$p50 g1_p99=$p99 g1_non2xx=$non2xx g1_sock=$sockerr

	half=$((CONNECTIONS / 2))
	echo "hookbay on PostgreSQL, two replicas: a wrk -t1 -c$half each, -d$DURATION (warm-up $WARMUP)..."
	pg_yaml pg2a "$HOOKBAY_ADDR"
	pg_yaml pg2b "$HOOKBAY_ADDR2"
	start_hookbay pg2a; pg2a_pid=$hb_pid
	start_hookbay pg2b "$HOOKBAY_ADDR2"; pg2b_pid=$hb_pid
	# Both replicas at once: two wrk processes, each on its own replica.
	(THREADS=1 CONNECTIONS=$half load pg2a "$HOOKBAY_ADDR" "Bearer bench-secret") &
	w1=$!
	(THREADS=1 CONNECTIONS=$half load pg2b "$HOOKBAY_ADDR2" "Bearer bench-secret") &
	w2=$!
	wait "$w1"; wait "$w2"
	pg2_rss="$(peak_rss "$pg2a_pid")+$(peak_rss "$pg2b_pid")"
	kill "$pg2a_pid" "$pg2b_pid"; wait "$pg2a_pid" 2>/dev/null || true; wait "$pg2b_pid" 2>/dev/null || true
	parse pg2a
	a_rps=$rps a_p50=$p50 a_p99=$p99 a_non2xx=$non2xx a_sock=$sockerr
	parse pg2b
	g2_rps=$(awk -v a="$a_rps" -v b="$rps" 'BEGIN {printf "%.2f", a + b}')
	g2_p50=$(awk -v a="$a_p50" -v b="$p50" 'BEGIN {printf "%.2f", (a > b) ? a : b}')
	g2_p99=$(awk -v a="$a_p99" -v b="$p99" 'BEGIN {printf "%.2f", (a > b) ? a : b}')
	g2_non2xx=$((a_non2xx + non2xx)) g2_sock=$((a_sock + sockerr))
	rps=${hb_figures[0]} p50=${hb_figures[1]} p99=${hb_figures[2]} non2xx=${hb_figures[3]} sockerr=${hb_figures[4]}

	echo
	echo "urgent Bubblehouse, $CONNECTIONS connections, one run (p50/p99 of two replicas: the higher of the two)"
	printf '%-22s %10s %8s %8s %8s %9s %10s %7s\n' server req/s "p50 ms" "p99 ms" non-2xx sock-err "RSS MB" "/sqlite"
	printf '%-22s %10s %8s %8s %8s %9s %10s %7s\n' bare-echo "$b_rps" "$b_p50" "$b_p99" "$b_non2xx" "$b_sock" - -
	printf '%-22s %10s %8s %8s %8s %9s %10s %7s\n' "hookbay sqlite" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$rss" 1.00
	printf '%-22s %10s %8s %8s %8s %9s %10s %7s\n' "hookbay postgres x1" "$g1_rps" "$g1_p50" "$g1_p99" "$g1_non2xx" "$g1_sock" "$pg1_rss" \
		"$(awk -v a="$g1_rps" -v b="$rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
	printf '%-22s %10s %8s %8s %8s %9s %10s %7s\n' "hookbay postgres x2" "$g2_rps" "$g2_p50" "$g2_p99" "$g2_non2xx" "$g2_sock" "$pg2_rss" \
		"$(awk -v a="$g2_rps" -v b="$rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
	pg_ratio=$(awk -v a="$g1_rps" -v b="$rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
	check "postgres x1 throughput $pg_ratio x hookbay on SQLite >= 0.5" "$pg_ratio >= 0.5"
	check "postgres x1 p99 $g1_p99 ms <= 50 ms" "$g1_p99 <= 50"
	check "postgres x1 non-2xx $g1_non2xx + socket errors $g1_sock == 0" "$g1_non2xx + $g1_sock == 0"
	check "postgres x2 p99 $g2_p99 ms <= 50 ms" "$g2_p99 <= 50"
	check "postgres x2 non-2xx $g2_non2xx + socket errors $g2_sock == 0" "$g2_non2xx + $g2_sock == 0"
	if [[ ${BENCH_STRICT:-0} == 1 && $fails -gt 0 ]]; then exit 1; fi
	exit 0
fi

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
start_bare bareecho-svix
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
start_hookbay svix
svixrun svix "http://$HOOKBAY_ADDR/svix/bloom" "$SVIX_SECRET"
s_rss=$(peak_rss "$hb_pid")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
sparse svix

echo
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "server (client)" req/s "p50 ms" "p99 ms" non-2xx errors "RSS MB"
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "bare-echo (svixload)" "$sb_rps" "$sb_p50" "$sb_p99" "$sb_non2xx" "$sb_err" -
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "hookbay svix (svixload)" "$s_rps" "$s_p50" "$s_p99" "$s_non2xx" "$s_err" "$s_rss"
printf '%-24s %10s %8s %8s %8s %9s %8s\n' "hookbay bh (wrk)" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$rss"
s_ratio=$(awk -v a="$s_rps" -v b="$sb_rps" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
echo "ratio (svix/bare, both svixload): $s_ratio  (Bubblehouse/bare, both wrk: $ratio)"

check "svix p99 $s_p99 ms <= 50 ms" "$s_p99 <= 50"
check "svix non-2xx $s_non2xx + errors $s_err == 0" "$s_non2xx + $s_err == 0"

# --- Bloomreach: per-customer requests at $CONNECTIONS connections and
# 1000-customer batches at $BATCH_CONNECTIONS, to bare Echo (no auth, trivial
# {"success":true} reply) and to hookbay with Basic auth. ---

BR_AUTH="Basic $(printf %s bench:bench-pw | base64)"
BATCH_ITEMS=1000 # Bloomreach's largest batch; ~160 KB, under the default 1 MiB server.max_body_bytes

# brload NAME URL MODE CONNS [AUTH]: warm up, then measure; leaves the wrk
# output in $tmp/NAME.wrk. --timeout 10s: a reply slower than wrk's default
# 2 s is then counted in the latency, not hidden among socket errors.
brload() {
	local name=$1 url=$2 mode=$3 conns=$4 auth=${5:-}
	BR_MODE=$mode BR_ITEMS=$BATCH_ITEMS BENCH_AUTH=$auth BENCH_RUN="$RUN_ID-$name-warm" \
		wrk -t"$THREADS" -c"$conns" -d"$WARMUP" --timeout 10s -s scripts/bench-bloomreach.lua "$url" >"$tmp/$name.warm"
	BR_MODE=$mode BR_ITEMS=$BATCH_ITEMS BENCH_AUTH=$auth BENCH_RUN="$RUN_ID-$name" \
		wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout 10s --latency -s scripts/bench-bloomreach.lua "$url" >"$tmp/$name.wrk"
	if grep -q '^bench first failure:' "$tmp/$name.wrk"; then
		grep '^bench first failure:' "$tmp/$name.wrk" | cut -c1-300 | sed "s/^/  $name: /"
	fi
}

# brparse NAME CUSTOMERS_PER_REQUEST: parse, plus notok and cps (customers/s).
brparse() {
	parse "$1"
	notok=$(awk '/^bench not-success:/ {print $3}' "$tmp/$1.wrk")
	cps=$(awk -v r="$rps" -v k="$2" 'BEGIN {printf "%.0f", r * k}')
}

# brhookbay NAME: starts a fresh hookbay instance with its own data directory,
# so that one run's records do not weigh on the next; sets hb_pid.
brhookbay() {
	cat >"$tmp/hookbay-$1.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data-$1", tls: {mode: "off"}}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks:
    sms:
      auth: {basic: {username: bench, password: bench-pw}}
      schema: {item: {type: object, required: [phone, text]}}
    sms_batch:
      auth: {basic: {username: bench, password: bench-pw}}
      batch: {items: /messages}
      request_id: {header: X-Request-ID, item_id: /id}
      schema: {item: {type: object, required: [phone, text]}}
YAML
	start_hookbay "$1"
}

echo
echo "bare echo: Bloomreach per-customer wrk -c$CONNECTIONS, batch of $BATCH_ITEMS wrk -c$BATCH_CONNECTIONS, -d$DURATION each (warm-up $WARMUP)..."
start_bare bareecho-br
brload brbare "http://$BARE_ADDR/bloomreach/sms" customer "$CONNECTIONS"
brload brbbare "http://$BARE_ADDR/bloomreach/sms_batch" batch "$BATCH_CONNECTIONS"
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true

echo "hookbay: Bloomreach per-customer /bloomreach/sms, wrk -c$CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
brhookbay br
brload brhb "http://$HOOKBAY_ADDR/bloomreach/sms" customer "$CONNECTIONS" "$BR_AUTH"
br_rss=$(peak_rss "$hb_pid")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true

echo "hookbay: Bloomreach batch of $BATCH_ITEMS /bloomreach/sms_batch, wrk -c$BATCH_CONNECTIONS -d$DURATION (warm-up $WARMUP)..."
brhookbay brb
brload brbhb "http://$HOOKBAY_ADDR/bloomreach/sms_batch" batch "$BATCH_CONNECTIONS" "$BR_AUTH"
brb_rss=$(peak_rss "$hb_pid")
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true

brparse brbare 1
c_b_rps=$rps c_b_cps=$cps c_b_p50=$p50 c_b_p99=$p99 c_b_non2xx=$non2xx c_b_notok=$notok c_b_sock=$sockerr
brparse brhb 1
c_h_rps=$rps c_h_cps=$cps c_h_p50=$p50 c_h_p99=$p99 c_h_non2xx=$non2xx c_h_notok=$notok c_h_sock=$sockerr
brparse brbbare "$BATCH_ITEMS"
t_b_rps=$rps t_b_cps=$cps t_b_p50=$p50 t_b_p99=$p99 t_b_non2xx=$non2xx t_b_notok=$notok t_b_sock=$sockerr
brparse brbhb "$BATCH_ITEMS"
t_h_rps=$rps t_h_cps=$cps t_h_p50=$p50 t_h_p99=$p99 t_h_non2xx=$non2xx t_h_notok=$notok t_h_sock=$sockerr
batch_kb=$(awk '/^bench body bytes:/ {printf "%.0f", $4 / 1024}' "$tmp/brbhb.wrk")

# div A B: A/B to two places, 0 when B is 0.
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

echo
echo "Bloomreach (per-customer: ~400 B, -c$CONNECTIONS; batch: $BATCH_ITEMS customers, ~$batch_kb KB, -c$BATCH_CONNECTIONS)"
row() { printf '%-22s %10s %12s %8s %8s %8s %8s %9s %8s\n' "$@"; }
row Bloomreach req/s customers/s "p50 ms" "p99 ms" non-2xx not-ok sock-err "RSS MB"
row "bare per-customer" "$c_b_rps" "$c_b_cps" "$c_b_p50" "$c_b_p99" "$c_b_non2xx" "$c_b_notok" "$c_b_sock" -
row "hookbay per-customer" "$c_h_rps" "$c_h_cps" "$c_h_p50" "$c_h_p99" "$c_h_non2xx" "$c_h_notok" "$c_h_sock" "$br_rss"
row "bare batch" "$t_b_rps" "$t_b_cps" "$t_b_p50" "$t_b_p99" "$t_b_non2xx" "$t_b_notok" "$t_b_sock" -
row "hookbay batch" "$t_h_rps" "$t_h_cps" "$t_h_p50" "$t_h_p99" "$t_h_non2xx" "$t_h_notok" "$t_h_sock" "$brb_rss"
c_ratio=$(div "$c_h_rps" "$c_b_rps")
t_ratio=$(div "$t_h_rps" "$t_b_rps")
row "hookbay/bare customer" "$c_ratio" "$c_ratio" "$(div "$c_h_p50" "$c_b_p50")" "$(div "$c_h_p99" "$c_b_p99")" - - - -
row "hookbay/bare batch" "$t_ratio" "$t_ratio" "$(div "$t_h_p50" "$t_b_p50")" "$(div "$t_h_p99" "$t_b_p99")" - - - -
echo "(latency ratios are hookbay's p50/p99 over bare Echo's: higher is slower)"

check "Bloomreach per-customer p99 $c_h_p99 ms < 1000 ms" "$c_h_p99 < 1000"
check "Bloomreach batch p99 $t_h_p99 ms < 1000 ms" "$t_h_p99 < 1000"
check "Bloomreach per-customer non-2xx $c_h_non2xx + not-success $c_h_notok + socket errors $c_h_sock == 0" \
	"$c_h_non2xx + $c_h_notok + $c_h_sock == 0"
check "Bloomreach batch non-2xx $t_h_non2xx + not-success $t_h_notok + socket errors $t_h_sock == 0" \
	"$t_h_non2xx + $t_h_notok + $t_h_sock == 0"

if [[ ${BENCH_STRICT:-0} == 1 && $fails -gt 0 ]]; then exit 1; fi
exit 0
