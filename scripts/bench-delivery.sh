#!/usr/bin/env bash
# Measures whether hookbay's delivery keeps pace with its ingest (issue 14's
# targets 1-3 and 5), for hookbay built from the working tree ("new") beside
# the previous release ("prev": PREV, default e37aa0c, main before the queue
# work), in the same run, so that both meet the same machine.
#
# Generator, hookbay and the downstream all run on one machine (2 shared
# cores here): every figure is what hookbay gets of those cores while the
# generator and the downstream take their share. That is why the targets are
# ratios measured in the same run, why the rounds interleave prev and new
# (prev, new, new, prev, ...), and why each figure is shown as min / median /
# max over ROUNDS: on a busy machine one run is noise. Each run starts its
# hookbay fresh on an empty data directory, with the default queue workers.
#
# tools/pace is the generator and the downstream (the sink) in one process:
# hookbay's forward action POSTs every urgent CreateDiscount4 hook to it,
# passing on the X-Request-ID in which pace put the send time. Phases:
#   drain  the sink held, BACKLOG hooks are sent as fast as CONNECTIONS
#          connections go (ingest req/s, hookbay's CPU per request), then the
#          sink is released and timed until all are delivered (deliveries/s,
#          CPU per delivery, new TCP connections per delivery). Targets (new):
#          deliveries/s >= 1.0x ingest req/s of the same run; CPU per delivery
#          <= 1.2x CPU per ingested request; new connections per delivery ~0.
#   e2e    the sink answering, an open loop at each of RATES req/s for
#          DURATION (a request is sent at its slot on the clock, whatever the
#          earlier ones' answers); a rate passes when the backlog at the end
#          is under one second of arrivals and accept->delivered p99 <= 100 ms.
#          Target: new's highest passing rate >= 3x prev's.
#   low    the open loop at LOW_RATE (500) req/s for DURATION: hookbay's CPU
#          per request, ingest and delivery together. Target: new <= 1/3 prev.
#          With LOW_BASELINES=1 (the default) each round also loads, at the
#          same rate and without delivery, new storing the hooks with no
#          action ("stored") and the one-row durable floor (tools/floor,
#          "floor"): what ingest alone costs at this rate, and what any
#          durable receiver pays for it on this machine.
#   batch  Bloomreach batches of 1000 customers (scripts/bench-bloomreach.lua
#          with wrk, as scripts/bench.sh runs it: BATCH_CONNECTIONS, Basic
#          auth, stored only). Target: new customers/s >= 1.5x prev.
#          BATCH_KEYS=scattered gives the customers item IDs that spread
#          over hookbay's key index (as customer IDs or UUIDs do) instead
#          of IDs in order (ordered, the default).
# The figures are hookbay's CPU time from /proc (user + system) and the
# clock; the last table lines are PASS/FAIL for the targets.
#
# Knobs: ROUNDS (3) DURATION (10s) BACKLOG (50000) RATES
# (500,1000,2000,4000,8000,12000) LOW_RATE (500) PHASES ("drain e2e low
# batch") PREV (e37aa0c; any git rev) CONNECTIONS (200) BATCH_CONNECTIONS (20)
# THREADS (2) WARMUP (3s, batch only) BATCH_KEYS (ordered) LOW_BASELINES (1);
# BENCH_STRICT=1
# exits non-zero when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
BACKLOG=${BACKLOG:-50000}
RATES=${RATES:-500,1000,2000,4000,8000,12000}
LOW_RATE=${LOW_RATE:-500}
LOW_BASELINES=${LOW_BASELINES:-1}
PHASES=${PHASES:-drain e2e low batch}
PREV=${PREV:-e37aa0c}
CONNECTIONS=${CONNECTIONS:-200}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-20}
BATCH_KEYS=${BATCH_KEYS:-ordered}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
HOOKBAY_ADDR=127.0.0.1:18081
SINK_ADDR=127.0.0.1:18090
URL_PATH=/bubblehouse/CreateDiscount4
RUN_ID="$$-$(date +%s)"

for phase in $PHASES; do
	case $phase in drain | e2e | low | batch) ;; *) echo "bench-delivery: PHASES: unknown phase $phase (drain e2e low batch)" >&2; exit 2 ;; esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-delivery: ROUNDS must be a positive number" >&2; exit 2; }
if [[ " $PHASES " == *" batch "* ]]; then
	command -v wrk >/dev/null || { echo "bench-delivery: wrk not found (apt-get install -y wrk)" >&2; exit 2; }
fi
prev_commit=$(git rev-parse --verify --quiet "$PREV^{commit}") || { echo "bench-delivery: PREV=$PREV is not a commit" >&2; exit 2; }
new_desc="working tree at $(git rev-parse --short HEAD)"
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then new_desc+=" with uncommitted changes"; fi
HZ=$(getconf CLK_TCK)

tmp=$(mktemp -d)
pids=()
worktree=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [[ -n $worktree ]]; then git worktree remove --force "$worktree" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building hookbay new ($new_desc), prev ($PREV = $(git rev-parse --short "$prev_commit")) and pace..."
go build -o "$tmp/hookbay-new" .
worktree="$tmp/prev"
git worktree add --quiet --detach "$worktree" "$prev_commit"
(cd "$worktree" && go build -o "$tmp/hookbay-prev" .)
go build -o "$tmp/pace" ./tools/pace
if [[ " $PHASES " == *" low "* && $LOW_BASELINES == 1 ]]; then go build -o "$tmp/floor" ./tools/floor; fi

# wait_up URL PID LOG [CURL_FLAGS]: polls URL for up to 20 s.
wait_up() {
	local url=$1 pid=$2 log=$3 flags=${4:--sS}
	for _ in $(seq 200); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-delivery: server exited; log tail:" >&2; tail -n 30 "$log" >&2; exit 1
		fi
		curl "$flags" -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-delivery: $url did not answer within 20 s; log tail:" >&2
	tail -n 30 "$log" >&2
	exit 1
}

# go_dur VALUE: a wrk duration as a Go one (wrk takes a bare number as seconds).
go_dur() { if [[ $1 =~ ^[0-9]+$ ]]; then echo "${1}s"; else echo "$1"; fi; }
PACE_DUR=$(go_dur "$DURATION")

# write_config NAME PHASE: hookbay's config for one run, with a data
# directory of its own. The forward timeout is long so that the deliveries
# held while the drain phase fills its backlog are not abandoned and retried.
write_config() {
	if [[ $2 == batch || $2 == stored ]]; then
		# As scripts/bench.sh's brhookbay: the hooks and batches are stored,
		# not forwarded.
		cat >"$tmp/hookbay-$1.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data-$1", tls: {mode: "off"}}
admin: {listen: "off"}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks:
    sms_batch:
      auth: {basic: {username: bench, password: bench-pw}}
      batch: {items: /messages}
      request_id: {header: X-Request-ID, item_id: /id}
      schema: {item: {type: object, required: [phone, text]}}
YAML
	else
		cat >"$tmp/hookbay-$1.yaml" <<YAML
server: {listen: "$HOOKBAY_ADDR", data_dir: "$tmp/data-$1", tls: {mode: "off"}}
admin: {listen: "off"}
bubblehouse:
  authorization: "Bearer bench-secret"
  hooks:
    CreateDiscount4:
      action: {forward: {url: "http://$SINK_ADDR/", timeout: 60s}}
YAML
	fi
}

# pace_run NAME CMD [FLAGS]: runs pace CMD against the running hookbay;
# leaves its figures in $tmp/NAME.pace.
pace_run() {
	local name=$1 cmd=$2; shift 2
	if ! "$tmp/pace" "$cmd" -url "http://$HOOKBAY_ADDR$URL_PATH" -auth "Bearer bench-secret" -sink "$SINK_ADDR" \
		-pid "$hb_pid" -hz "$HZ" "$@" >"$tmp/$name.pace" 2>"$tmp/$name.err"; then
		echo "bench-delivery: pace $cmd failed ($name):" >&2
		sed 's/^/  /' "$tmp/$name.err" >&2
		echo "hookbay's log tail:" >&2; tail -n 20 "$tmp/hookbay-$name.log" >&2
		exit 1
	fi
	if [[ -s $tmp/$name.err ]]; then sed "s/^/  $name: /" "$tmp/$name.err"; fi
}

# val FILE KEY: the value of "KEY: value" in FILE (empty when absent).
val() { awk -F': ' -v k="$2" '$1 == k {print $2; exit}' "$1"; }

# to_ms VALUE: wrk duration (850.00us, 1.20ms, 2.00s, 1.00m) in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
		printf "%.2f", n * f }'
}

# div A B: A/B to three places, 0 when B is 0.
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}'; }

mkdir "$tmp/res"
# keep PHASE METRIC VER VALUE: records one run's figure.
keep() { echo "$4" >>"$tmp/res/$1.$2.$3"; }

BR_AUTH="Basic $(printf %s bench:bench-pw | base64)"
BATCH_ITEMS=1000

# batch_run NAME: warm up, then measure Bloomreach batches as scripts/bench.sh
# does; leaves the wrk output in $tmp/NAME.wrk.
batch_run() {
	local name=$1 url="http://$HOOKBAY_ADDR/bloomreach/sms_batch"
	BR_MODE=batch BR_ITEMS=$BATCH_ITEMS BR_KEYS=$BATCH_KEYS BENCH_AUTH=$BR_AUTH BENCH_RUN="$RUN_ID-$name-warm" \
		wrk -t"$THREADS" -c"$BATCH_CONNECTIONS" -d"$WARMUP" --timeout 10s -s scripts/bench-bloomreach.lua "$url" >"$tmp/$name.warm"
	BR_MODE=batch BR_ITEMS=$BATCH_ITEMS BR_KEYS=$BATCH_KEYS BENCH_AUTH=$BR_AUTH BENCH_RUN="$RUN_ID-$name" \
		wrk -t"$THREADS" -c"$BATCH_CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s scripts/bench-bloomreach.lua "$url" >"$tmp/$name.wrk"
	if grep -q '^bench first failure:' "$tmp/$name.wrk"; then
		grep '^bench first failure:' "$tmp/$name.wrk" | cut -c1-300 | sed "s/^/  $name: /"
	fi
}

# run_one VER PHASE ROUND: one fresh hookbay, one phase; records its figures
# and prints a line about them.
run_one() {
	local ver=$1 phase=$2 round=$3 name="$1-$2-$3" f
	write_config "$name" "$phase"
	"$tmp/hookbay-$ver" serve --config "$tmp/hookbay-$name.yaml" >"$tmp/hookbay-$name.log" 2>&1 &
	hb_pid=$!; pids+=("$hb_pid")
	wait_up "http://$HOOKBAY_ADDR/healthz" "$hb_pid" "$tmp/hookbay-$name.log" -fsS
	f="$tmp/$name.pace"
	case $phase in
	drain)
		pace_run "$name" drain -backlog "$BACKLOG" -c "$CONNECTIONS"
		local in_rps in_cpu dps dcpu conns
		in_rps=$(val "$f" ingest_rps) in_cpu=$(val "$f" ingest_cpu_us_per_req)
		dps=$(val "$f" drain_dps) dcpu=$(val "$f" drain_cpu_us_per_delivery) conns=$(val "$f" drain_new_conns_per_delivery)
		keep drain ingest_rps "$ver" "$in_rps"
		keep drain ingest_cpu "$ver" "$in_cpu"
		keep drain dps "$ver" "$dps"
		keep drain dcpu "$ver" "$dcpu"
		keep drain conns "$ver" "$conns"
		keep drain dps_ratio "$ver" "$(div "$dps" "$in_rps")"
		keep drain cpu_ratio "$ver" "$(div "$dcpu" "$in_cpu")"
		printf '  %-4s drain: ingest %s req/s at %s us CPU/req (%s non-2xx, %s errors); %s deliveries/s at %s us CPU/delivery, %s new conns/delivery\n' \
			"$ver" "$in_rps" "$in_cpu" "$(val "$f" ingest_non2xx)" "$(val "$f" ingest_errors)" "$dps" "$dcpu" "$conns"
		;;
	e2e)
		pace_run "$name" e2e -rates "$RATES" -d "$PACE_DUR"
		keep e2e max_pass "$ver" "$(val "$f" max_pass_rate)"
		local line="" r
		for r in ${RATES//,/ }; do
			[[ -n $(val "$f" "r${r}_pass") ]] || continue
			line+=$(printf ' %s:%s(p99 %s ms, pending %s, late %s, unsent %s)' "$r" \
				"$([[ $(val "$f" "r${r}_pass") == true ]] && echo pass || echo fail)" "$(val "$f" "r${r}_p99_ms")" \
				"$(val "$f" "r${r}_pending_end")" "$(val "$f" "r${r}_late")" "$(val "$f" "r${r}_unsent")")
		done
		printf '  %-4s e2e: highest passing %s req/s;%s\n' "$ver" "$(val "$f" max_pass_rate)" "$line"
		;;
	low)
		pace_run "$name" low -rate "$LOW_RATE" -d "$PACE_DUR"
		keep low cpu "$ver" "$(val "$f" low_cpu_us_per_req)"
		keep low p99 "$ver" "$(val "$f" low_p99_ms)"
		keep low switches "$ver" "$(val "$f" low_switches_per_req)"
		printf '  %-4s low: %s req/s, %s us CPU/req, %s context switches/req, accept->delivered p99 %s ms (late %s, unsent %s)\n' "$ver" "$LOW_RATE" \
			"$(val "$f" low_cpu_us_per_req)" "$(val "$f" low_switches_per_req)" "$(val "$f" low_p99_ms)" "$(val "$f" low_late)" "$(val "$f" low_unsent)"
		;;
	batch)
		batch_run "$name"
		f="$tmp/$name.wrk"
		local rps cps p99 bad
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
		cps=$(awk -v r="$rps" -v k="$BATCH_ITEMS" 'BEGIN {printf "%.0f", r * k}')
		p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
		bad=$(awk '/^bench non-2xx:/ {n += $3} /^bench not-success:/ {n += $3} /^bench socket errors:/ {n += $4} END {print n + 0}' "$f")
		keep batch cps "$ver" "$cps"
		keep batch p99 "$ver" "$p99"
		printf '  %-4s batch: %s customers/s, p99 %s ms, %s failed\n' "$ver" "$cps" "$p99" "$bad"
		;;
	esac
	if ! kill -0 "$hb_pid" 2>/dev/null; then
		echo "bench-delivery: hookbay $ver exited during $phase; log tail:" >&2; tail -n 30 "$tmp/hookbay-$name.log" >&2; exit 1
	fi
	kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true
	rm -rf "$tmp/data-$name"
}

# low_baseline VER ROUND: one low-rate run without delivery, VER "stored"
# (hookbay new, the hook stored with no action) or "floor" (tools/floor,
# one row per request); records its CPU per request.
low_baseline() {
	local ver=$1 round=$2 name="$1-low-$2" f
	if [[ $ver == floor ]]; then
		"$tmp/floor" -listen "$HOOKBAY_ADDR" -db "$tmp/$name.db" -rows 1 >"$tmp/hookbay-$name.log" 2>&1 &
		hb_pid=$!; pids+=("$hb_pid")
		wait_up "http://$HOOKBAY_ADDR/" "$hb_pid" "$tmp/hookbay-$name.log"
	else
		write_config "$name" stored
		"$tmp/hookbay-new" serve --config "$tmp/hookbay-$name.yaml" >"$tmp/hookbay-$name.log" 2>&1 &
		hb_pid=$!; pids+=("$hb_pid")
		wait_up "http://$HOOKBAY_ADDR/healthz" "$hb_pid" "$tmp/hookbay-$name.log" -fsS
	fi
	pace_run "$name" load -rate "$LOW_RATE" -d "$PACE_DUR"
	f="$tmp/$name.pace"
	keep low cpu "$ver" "$(val "$f" cpu_us_per_req)"
	keep low switches "$ver" "$(val "$f" switches_per_req)"
	printf '  %-6s low: %s req/s, %s us CPU/req, %s context switches/req, answer p99 %s ms (%s non-2xx, %s errors, late %s, unsent %s)\n' "$ver" "$LOW_RATE" \
		"$(val "$f" cpu_us_per_req)" "$(val "$f" switches_per_req)" "$(val "$f" p99_ms)" "$(val "$f" non2xx)" "$(val "$f" errors)" "$(val "$f" late)" "$(val "$f" unsent)"
	if ! kill "$hb_pid" 2>/dev/null; then
		echo "bench-delivery: $ver exited during its low run; log tail:" >&2; tail -n 30 "$tmp/hookbay-$name.log" >&2; exit 1
	fi
	wait "$hb_pid" 2>/dev/null || true
	rm -rf "$tmp/data-$name" "$tmp/$name.db"*
}

echo "$ROUNDS rounds of: $PHASES (DURATION $DURATION, BACKLOG $BACKLOG, RATES $RATES, CONNECTIONS $CONNECTIONS)"
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS"
	if ((round % 2)); then order="prev new"; else order="new prev"; fi
	for phase in $PHASES; do
		for ver in $order; do run_one "$ver" "$phase" "$round"; done
		if [[ $phase == low && $LOW_BASELINES == 1 ]]; then
			if ((round % 2)); then base="stored floor"; else base="floor stored"; fi
			for ver in $base; do low_baseline "$ver" "$round"; done
		fi
	done
done

# stats FILE: "min median max" of FILE's values, "- - -" without any.
stats() {
	if [[ ! -s $1 ]]; then echo "- - -"; return; fi
	sort -g "$1" | awk '{v[NR] = $1} END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.2f %.2f %.2f\n", v[1], m, v[NR] }'
}
# median PHASE METRIC VER
median() { stats "$tmp/res/$1.$2.$3" | awk '{print $2}'; }

# table PHASE TITLE (METRIC LABEL)...: min / median / max of prev and new,
# and new's median over prev's.
table() {
	local phase=$1 title=$2; shift 2
	echo
	echo "$title ($ROUNDS rounds; prev $PREV, new $new_desc)"
	printf '%-30s %26s %26s %9s\n' "" "prev min / median / max" "new min / median / max" "new/prev"
	while (($#)); do
		local sp sn
		read -r -a sp <<<"$(stats "$tmp/res/$phase.$1.prev")"
		read -r -a sn <<<"$(stats "$tmp/res/$phase.$1.new")"
		printf '%-30s %8s %8s %8s %8s %8s %8s %9s\n' "$2" "${sp[@]}" "${sn[@]}" \
			"$(div "$(median "$phase" "$1" new)" "$(median "$phase" "$1" prev)")"
		shift 2
	done
}

fails=0
check() { # check LABEL AWK-CONDITION
	if awk "BEGIN {exit !($2)}"; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

for phase in $PHASES; do
	case $phase in
	drain)
		table drain "drain: $BACKLOG hooks queued with the sink held, then delivered" \
			ingest_rps "ingest req/s" ingest_cpu "ingest CPU us/req" dps "deliveries/s" dcpu "CPU us/delivery" \
			conns "new conns/delivery" dps_ratio "deliveries/s / ingest req/s" cpu_ratio "CPU/delivery / CPU/ingest"
		r=$(median drain dps_ratio new) c=$(median drain cpu_ratio new) k=$(median drain conns new)
		check "drain: new deliveries/s $r x ingest req/s of the same run (median) >= 1.0" "$r >= 1.0"
		check "drain: new CPU per delivery $c x CPU per ingested request (median) <= 1.2" "$c <= 1.2"
		check "drain: new connections per delivery $k (median) <= 0.01" "$k <= 0.01"
		;;
	e2e)
		table e2e "e2e: open loop at $RATES req/s, $DURATION each" max_pass "highest passing req/s"
		p=$(median e2e max_pass prev) n=$(median e2e max_pass new)
		if awk "BEGIN {exit !($p > 0)}"; then
			check "e2e: new highest passing rate $n >= 3x prev's $p" "$n >= 3 * $p"
		else
			check "e2e: new highest passing rate $n > 0 (prev passed none)" "$n > 0"
		fi
		;;
	low)
		table low "low: open loop at $LOW_RATE req/s, $DURATION" cpu "CPU us/req" switches "context switches/req" \
			p99 "accept->delivered p99 ms"
		p=$(median low cpu prev) n=$(median low cpu new)
		if [[ $LOW_BASELINES == 1 ]]; then
			echo
			echo "low, without delivery: new storing each hook (no action), and the one-row durable floor"
			printf '%-30s %26s %9s\n' "" "min / median / max" "new/this"
			for ver in stored floor; do
				read -r -a sb <<<"$(stats "$tmp/res/low.cpu.$ver")"
				printf '%-30s %8s %8s %8s %9s\n' "$ver CPU us/req" "${sb[@]}" "$(div "$n" "$(median low cpu "$ver")")"
				read -r -a sb <<<"$(stats "$tmp/res/low.switches.$ver")"
				printf '%-30s %8s %8s %8s\n' "$ver context switches/req" "${sb[@]}"
			done
			echo "(new/this: new's CPU per request, delivery included, over this one's at the medians)"
		fi
		check "low: new CPU per request $n us <= 1/3 of prev's $p us" "$n * 3 <= $p"
		;;
	batch)
		table batch "batch: Bloomreach, $BATCH_ITEMS customers a request, $BATCH_CONNECTIONS connections, $DURATION" \
			cps "customers/s" p99 "p99 ms"
		p=$(median batch cps prev) n=$(median batch cps new)
		check "batch: new customers/s $n >= 1.5x prev's $p" "$n >= 1.5 * $p"
		;;
	esac
done

if [[ ${BENCH_STRICT:-0} == 1 && $fails -gt 0 ]]; then exit 1; fi
exit 0
