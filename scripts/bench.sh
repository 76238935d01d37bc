#!/usr/bin/env bash
# bench.sh: loopback load tests of the authz binary next to a no-op baseline,
# plus the key Go benchmarks; prints one table and writes bench/RESULTS.md.
#
#   scripts/bench.sh            # ~5-8 minutes on 2 cores
#   DURATION=5s scripts/bench.sh
#
# Load generator: ghz (github.com/bojand/ghz, installed with `go install`
# into a temp dir) over loopback gRPC, schema by server reflection. Each
# request comes from its own client IP (a realistic spread: no client is
# rate-limited, so every Check runs the whole pipeline and records state).
# Needs Redis and ClickHouse: the script runs itself under scripts/testenv.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ -z "${SMARTLAYER_TEST_REDIS_ADDR:-}" ]; then
	exec scripts/testenv.sh "$0" "$@"
fi

GHZ_VERSION=${GHZ_VERSION:-v0.120.0}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-"16 64"}
BENCHTIME=${BENCHTIME:-1s}
OUT=${OUT:-bench/RESULTS.md}

if ! command -v jq >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >&2
	else
		echo "bench: jq is missing; install it with apt-get" >&2
		exit 1
	fi
fi

load_before=$(uptime | sed 's/^ *//')
work=$(mktemp -d -t smartlayer-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building authz, noopauthz and ghz $GHZ_VERSION" >&2
go build -o "$work/" ./cmd/authz ./test/e2e/cmd/noopauthz
GOBIN="$work" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"

port() { # a spare loopback port
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# The CheckRequest Envoy sends for a browser GET (edge listener,
# use_remote_address); ghz fills the templates per call.
ip='198.18.{{mod (div .RequestNumber 250) 250}}.{{add1 (mod .RequestNumber 250)}}'
request() { # request METHOD PATH [RAW_BODY_BASE64]
	local extra="" hdr=""
	if [ -n "${3:-}" ]; then
		extra=",\"rawBody\":\"$3\",\"size\":\"$4\""
		hdr=",\"content-type\":\"application/json\",\"content-length\":\"$4\",\"x-envoy-auth-partial-body\":\"false\""
	fi
	cat <<EOF
{"attributes":{"source":{"address":{"socketAddress":{"address":"$ip","portValue":40000}}},
 "destination":{"address":{"socketAddress":{"address":"10.0.0.10","portValue":8080}}},
 "request":{"http":{"id":"req-{{.RequestNumber}}","method":"$1","path":"$2","host":"api.example.com",
  "scheme":"http","protocol":"HTTP/1.1"$extra,
  "headers":{":authority":"api.example.com",":method":"$1",":path":"$2",":scheme":"http",
   "user-agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
   "accept":"text/html,application/json","accept-language":"en-US,en;q=0.9","cookie":"session=3f2a9c0d1b; theme=dark",
   "x-forwarded-for":"$ip","x-forwarded-proto":"http","x-request-id":"req-{{.RequestNumber}}"$hdr}}}}}
EOF
}
request GET "/products/shoes?page=2&sort=price" >"$work/get.json"
# An 8 KiB benign JSON order, as Envoy packs it (with_request_body, pack_as_bytes).
prefix=$(
	printf '{"customer":"c-1042","items":['
	for i in $(seq 0 59); do
		[ "$i" -gt 0 ] && printf ','
		printf '{"sku":"SKU-%05d","name":"Trail running shoe, size %d","note":"Ships in 2-3 days; gift wrap","qty":%d}' \
			"$i" $((36 + i % 12)) $((i % 4 + 1))
	done
	printf '],"comment":"'
)
pad=$((8192 - ${#prefix} - 2))
body=$prefix$(set +o pipefail; yes 'Please leave the parcel at the back door. ' | tr -d '\n' | head -c "$pad")'"}'
blen=$(printf '%s' "$body" | wc -c)
request POST /api/orders "$(printf '%s' "$body" | base64 -w0)" "$blen" >"$work/body.json"

start_authz() { # start_authz NAME CONFIG: sets addr, admin
	local name=$1 cfg=$work/$1.yaml
	printf '%s\n' "$2" >"$cfg"
	addr=127.0.0.1:$(port)
	admin=127.0.0.1:$(port)
	"$work/authz" serve --config "$cfg" --authz-addr "$addr" --als-addr "127.0.0.1:$(port)" \
		--admin-addr "$admin" >"$work/$name.log" 2>&1 &
	pids+=($!)
	apid=$!
	for _ in $(seq 1 100); do
		curl -fs "http://$admin/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: authz ($name) did not become ready" >&2
	cat "$work/$name.log" >&2
	return 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

fail_answers() { # Checks answered by the fail mode so far: "stage budget parse"
	curl -fs "http://$admin/metrics" | awk '
		/^smartlayer_check_errors_total\{kind="stage"\}/ {s = $NF}
		/^smartlayer_check_errors_total\{kind="budget"\}/ {b = $NF}
		/^smartlayer_check_errors_total\{kind="parse"\}/ {p = $NF}
		END {printf "%d %d %d\n", s, b, p}'
}

rows=()
run_ghz() { # run_ghz TARGET DATAFILE CONCURRENCY
	local json=$work/ghz.json
	"$work/ghz" --insecure --call envoy.service.auth.v3.Authorization.Check -D "$2" \
		-c "$3" --connections 1 -z "$DURATION" --format json "$1" >"$json"
	jq -r '(.errorDistribution // {}) | to_entries[] | "bench:   error \(.value)x: \(.key)"' "$json" | cut -c1-160 >&2
	jq -r '[.count, .rps,
		((.latencyDistribution // []) | map(select(.percentage == 50)) | .[0].latency // 0),
		((.latencyDistribution // []) | map(select(.percentage == 99)) | .[0].latency // 0),
		((.statusCodeDistribution // {}) | to_entries | map(select(.key != "OK")) | map(.value) | add // 0)] | @tsv' "$json"
}

measure() { # measure LABEL TARGET DATAFILE [authz]
	local label=$1 c count rps p50 p99 errs s0 b0 p0 s1 b1 p1 n fails
	for c in $CONCURRENCY; do
		[ -n "${4:-}" ] && read -r s0 b0 p0 < <(fail_answers)
		read -r count rps p50 p99 errs < <(run_ghz "$2" "$3" "$c")
		fails="-"
		if [ -n "${4:-}" ]; then
			read -r s1 b1 p1 < <(fail_answers)
			n=$((s1 - s0 + b1 - b0 + p1 - p0))
			fails=$(awk -v n="$n" -v c="$count" -v s=$((s1 - s0)) -v b=$((b1 - b0)) \
				'BEGIN {printf "%d = %.1f%% (stage %d, budget %d)", n, c ? 100 * n / c : 0, s, b}')
		fi
		rows+=("$(printf '| %-34s | %3d | %9.0f | %8.3f | %8.3f | %6s | %s |' "$label" "$c" "$rps" \
			"$(echo "$p50" | awk '{print $1/1e6}')" "$(echo "$p99" | awk '{print $1/1e6}')" "$errs" "$fails")")
		echo "bench: ${rows[-1]}" >&2
	done
}

# (a) loopback gRPC.
noop_addr=127.0.0.1:$(port)
"$work/noopauthz" -addr "$noop_addr" >"$work/noop.log" 2>&1 &
pids+=($!)
noop_pid=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/${noop_addr%:*}/${noop_addr#*:}") 2>/dev/null && break; sleep 0.1; done
measure "no-op Check server (baseline)" "$noop_addr" "$work/get.json"
measure "no-op, 8 KiB JSON body" "$noop_addr" "$work/body.json"
stop_pid "$noop_pid"

start_authz memory 'store: {backend: memory}
log: {level: warn}'
measure "smartlayer, memory store" "$addr" "$work/get.json" authz
measure "smartlayer, memory, 8 KiB JSON body" "$addr" "$work/body.json" authz
stop_pid "$apid"

start_authz redis "store: {backend: redis, redis: {addr: \"$SMARTLAYER_TEST_REDIS_ADDR\"}}
log: {level: warn}"
measure "smartlayer, Redis store" "$addr" "$work/get.json" authz
measure "smartlayer, Redis, 8 KiB JSON body" "$addr" "$work/body.json" authz
stop_pid "$apid"

# (b) Go benchmarks.
echo "bench: go test -bench (benchtime $BENCHTIME)" >&2
gobench=$work/gobench.txt
{
	go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count 1 \
		./internal/authz ./internal/scoring ./internal/scoring/payload ./internal/quota
	go test -run '^$' -bench 'BenchmarkIngest' -benchmem -benchtime "$BENCHTIME" -count 1 ./internal/accesslog
} 2>&1 | tee "$work/gobench.log" | grep -E '^(Benchmark|pkg:|ok|FAIL|---)' >"$gobench" || true
if grep -q '^FAIL\|^--- FAIL' "$gobench"; then
	cat "$work/gobench.log" >&2
	echo "bench: a Go benchmark failed" >&2
	exit 1
fi

# The table.
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
header="| load (ghz $GHZ_VERSION, $DURATION each, 1 connection) | c | calls/s | p50 ms | p99 ms | errors | fail-mode answers (share of calls) |
|---|---:|---:|---:|---:|---:|---:|"
gotable=$(awk '
	/^pkg:/ {pkg = $2; sub(".*/internal/", "", pkg); next}
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		extra = ""
		for (i = 3; i < NF; i += 2) {
			if ($(i+1) == "ns/op") ns = $i
			else if ($(i+1) == "B/op") bop = $i
			else if ($(i+1) == "allocs/op") al = $i
			else extra = extra (extra == "" ? "" : ", ") $i " " $(i+1)
		}
		printf "| %s | %s | %s | %s | %s | %s |\n", pkg, name, ns, bop, al, extra
		ns = bop = al = ""
	}' "$gobench")

{
	echo "# Benchmark results"
	echo
	echo "Produced by \`scripts/bench.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "- Machine: $(nproc) CPU(s), ${cpu:-unknown CPU}; $(go version | awk '{print $3}'); $(uname -sr)"
	echo "- \`uptime\` before: \`$load_before\`; after: \`$(uptime | sed 's/^ *//')\`"
	echo "- ghz and the server share the same CPUs, and ghz (templating every request)"
	echo "  costs more CPU than a cheap server: on a small machine the no-op and memory-store"
	echo "  rows measure mostly the load generator; compare servers with the Go benchmark"
	echo "  BenchmarkCheckLoopback below. A shared machine with a high load average makes all"
	echo "  figures noisy."
	echo
	echo "## Check over loopback gRPC"
	echo
	echo "Every request has its own client IP, a browser user agent and cookie; the"
	echo "body variant POSTs an 8 KiB JSON order (with_request_body, pack_as_bytes)."
	echo "smartlayer runs with its defaults (decision_budget 50ms, fail_mode allow);"
	echo "\"fail-mode answers\" counts Checks answered by fail_mode (allow) instead of a"
	echo "decision: a stage error (store.redis.timeout, 5ms by default, expired) or the"
	echo "budget missed (smartlayer_check_errors_total by kind). Errors are non-OK gRPC"
	echo "statuses; at most c of them, when ghz cuts the in-flight calls at the deadline."
	echo
	echo "$header"
	printf '%s\n' "${rows[@]}"
	echo
	echo "## Go benchmarks (benchtime $BENCHTIME)"
	echo
	echo "| package | benchmark | ns/op | B/op | allocs/op | other |"
	echo "|---|---|---:|---:|---:|---|"
	echo "$gotable"
} >"$work/RESULTS.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/RESULTS.md" "$OUT"
echo
echo "$header"
printf '%s\n' "${rows[@]}"
echo
echo "Go benchmarks: see $OUT"
uptime
