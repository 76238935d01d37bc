#!/usr/bin/env bash
# demo.sh: smartlayer end to end in about a minute, for a newcomer.
#
# Starts a private Redis and ClickHouse (scripts/testenv.sh), builds
# bin/authz and bin/reporter, runs authz with a demo configuration (Redis
# store, ClickHouse access log, demo quota plans), plays ~30 s of traffic
# through an Envoy stand-in (normal users and attackers, a progress line a
# second), stops authz with SIGTERM (it flushes the access log), then prints
# today's report (--no-llm: no LLM needed); it stays in bin/demo-report/.
#
#   scripts/demo.sh              # DEMO_DURATION=60s scripts/demo.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

under_testenv "$0" "$@"

DEMO_DURATION=${DEMO_DURATION:-30s}
work=$(mktemp -d -t smartlayer-demo.XXXXXX)
authz_pid=
cleanup() {
	if [ -n "$authz_pid" ]; then
		kill "$authz_pid" 2>/dev/null || true
		wait "$authz_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

port() { spare_port; } # a spare loopback port

echo "==> building bin/authz, bin/reporter and the traffic player"
go build -o bin/ ./cmd/...
go build -o "$work/demo" ./test/e2e/cmd/demo

cat >"$work/smartlayer.yaml" <<EOF
# The demo configuration: everything else is the built-in default.
server: {decision_budget: 200ms}   # generous: the demo shares the CPU with its traffic
log: {level: warn}
store:
  backend: redis
  redis: {addrs: ["$SMARTLAYER_TEST_REDIS_ADDR"], timeout: 50ms}
quota:
  plans:
    free:    {"/api/generate/": {per_minute: 2, per_day: 100}}
    premium: {"/api/generate/": {per_minute: 50}, "/api/analytics/": {per_minute: 100}}
accesslog:
  clickhouse: {addr: ["$SMARTLAYER_TEST_CLICKHOUSE_ADDR"], database: smartlayer_demo}
  flush_interval: 500ms
  spool_dir: $work/spool
report:
  out_dir: bin/demo-report
EOF

authz_addr=127.0.0.1:$(port)
als_addr=127.0.0.1:$(port)
admin_addr=127.0.0.1:$(port)
echo "==> starting authz: ext_authz $authz_addr, access log $als_addr, admin http://$admin_addr"
bin/authz serve --config "$work/smartlayer.yaml" --authz-addr "$authz_addr" --als-addr "$als_addr" \
	--admin-addr "$admin_addr" >"$work/authz.log" 2>&1 &
authz_pid=$!
for i in $(seq 1 100); do
	curl -fs "http://$admin_addr/readyz" >/dev/null 2>&1 && break
	if [ "$i" -eq 100 ] || ! kill -0 "$authz_pid" 2>/dev/null; then
		echo "authz did not become ready:" >&2
		cat "$work/authz.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "==> playing $DEMO_DURATION of traffic: 6 normal users, a scraper, an ID prober, a curl scanner,"
echo "    a bot without user agent, injections, a free-plan user over quota, a 404 collector"
"$work/demo" -authz "$authz_addr" -als "$als_addr" -duration "$DEMO_DURATION"

echo "==> a few of authz's metrics (http://$admin_addr/metrics)"
curl -fs "http://$admin_addr/metrics" | grep -E '^smartlayer_(checks_total|check_errors_total|accesslog_rows_written_total)' |
	grep -v ' 0$' | sort -t' ' -k2 -nr | head -12 || true

echo "==> stopping authz (SIGTERM: drains Checks, flushes the access log)"
kill -TERM "$authz_pid"
rc=0
wait "$authz_pid" || rc=$?
authz_pid=
if [ "$rc" -ne 0 ]; then
	echo "authz exited $rc:" >&2
	cat "$work/authz.log" >&2
	exit 1
fi

today=$(date -u +%F)
echo "==> the daily report for $today (bin/reporter --no-llm)"
echo
# The report files stay in bin/demo-report (Markdown and HTML).
bin/reporter --config "$work/smartlayer.yaml" --date "$today" --no-llm --out bin/demo-report
