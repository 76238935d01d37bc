#!/usr/bin/env bash
# testenv.sh CMD [ARGS...]: run CMD with a private Redis and ClickHouse.
#
# Installs Debian's redis-server, clickhouse-server and wfuzz (its wordlists feed the
# payload tests) when they are missing, starts both servers on spare loopback ports
# in a temp dir, exports their addresses to CMD and stops them afterwards, even when
# CMD fails. Exit status is CMD's.
#
# It also serves current ClickHouse (26.x) from chDB, ClickHouse's engine as a
# library: libchdb.so comes from the npm package @chdb/lib-linux-x64-gnu
# (~540 MB unpacked), fetched once with `npm pack` into a cache directory
# ($SMARTLAYER_CHDB_CACHE, default ~/.cache/smartlayer/chdb) that later runs
# and CI reuse, and internal/testenv/chdbhttp puts ClickHouse's HTTP interface
# in front of it. When it cannot be had, the address is not exported: tests
# needing it skip, or fail under CI=true.
#
# Exported to CMD:
#   SMARTLAYER_TEST_REDIS_ADDR       127.0.0.1:PORT
#   SMARTLAYER_TEST_CLICKHOUSE_ADDR  127.0.0.1:PORT (native protocol)
#   SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_NAME   a cluster of two more servers (one shard each;
#   SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_ADDRS  remote_servers in internal/testenv/clickhouse-cluster.xml),
#                                             and their addresses, comma-separated
#   SMARTLAYER_TEST_CHDB_ADDR        127.0.0.1:PORT (HTTP; ClickHouse 26.x as chDB)
#   SMARTLAYER_TEST_CHDB_LIB         path of libchdb.so
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)

ensure_packages() {
	local missing=()
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v redis-cli >/dev/null || missing+=(redis-tools)
	command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
	command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
	[ -d /usr/share/wfuzz/wordlist/Injections ] || missing+=(wfuzz)
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "testenv: missing ${missing[*]} and not root; install them with apt-get" >&2
		return 1
	fi
	echo "testenv: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The chDB build the 26.x tests run on; its ABI is the one chdb-go (go.mod)
# binds. Bump both together.
CHDB_LIB_VERSION=26.7.3-stable.1
chdb_cache=${SMARTLAYER_CHDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smartlayer/chdb}

# ensure_chdb prints the path of libchdb.so, fetching it into the cache once.
ensure_chdb() {
	local lib=$chdb_cache/$CHDB_LIB_VERSION/libchdb.so tmp
	if [ -f "$lib" ]; then
		echo "$lib"
		return 0
	fi
	if [ "$(uname -sm)" != "Linux x86_64" ]; then
		echo "testenv: chDB's npm build is for Linux x86_64 only" >&2
		return 1
	fi
	if ! command -v npm >/dev/null; then
		[ "$(id -u)" -eq 0 ] || { echo "testenv: chDB needs npm to fetch it; install npm" >&2; return 1; }
		echo "testenv: installing npm (fetches chDB)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2 || return 1
	fi
	mkdir -p "$chdb_cache"
	tmp=$(mktemp -d "$chdb_cache/fetch.XXXXXX")
	echo "testenv: fetching chDB $CHDB_LIB_VERSION (npm @chdb/lib-linux-x64-gnu, ~180 MB, once) into $chdb_cache" >&2
	# npm pack checks the tarball against the registry's integrity hash.
	if (cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_LIB_VERSION" >/dev/null) &&
		tar -xzf "$tmp"/chdb-lib-linux-x64-gnu-*.tgz -C "$tmp" package/libchdb.so &&
		mkdir -p "$(dirname "$lib")" && mv "$tmp/package/libchdb.so" "$lib"; then
		rm -rf "$tmp"
		echo "$lib"
		return 0
	fi
	rm -rf "$tmp"
	echo "testenv: could not fetch chDB" >&2
	return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for WHAT CMD...: poll CMD for up to 20 s
	local what=$1
	shift
	for _ in $(seq 1 200); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "testenv: $what did not become ready" >&2
	return 1
}

ensure_packages

dir=$(mktemp -d -t smartlayer-testenv.XXXXXX)
pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$rc" -ne 0 ]; then
		for f in "$dir"/clickhouse*/clickhouse-server.err.log; do
			[ -f "$f" ] && tail -n 20 "$f" >&2
		done
	fi
	rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port found free can be taken before the server binds it (other test
# runs share the machine), so each server gets a few tries on fresh ports.
start_redis() {
	redis_port=$(spare_port)
	mkdir -p "$dir/redis"
	redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" \
		--save '' --appendonly no --protected-mode no >"$dir/redis/out.log" 2>&1 &
	redis_pid=$!
	wait_for redis redis-cli -p "$redis_port" ping
}

start_clickhouse() {
	ch_port=$(spare_port)
	ch_http=$(spare_port)
	mkdir -p "$dir/clickhouse"
	sed -e "s#@DIR@#$dir/clickhouse#g" -e "s/@TCP_PORT@/$ch_port/" -e "s/@HTTP_PORT@/$ch_http/" \
		"$here/internal/testenv/clickhouse-config.xml" >"$dir/clickhouse/config.xml"
	cp "$here/internal/testenv/clickhouse-users.xml" "$dir/clickhouse/users.xml"
	clickhouse-server --config-file="$dir/clickhouse/config.xml" >"$dir/clickhouse/out.log" 2>&1 &
	ch_pid=$!
	wait_for clickhouse clickhouse-client --port "$ch_port" -q 'SELECT 1'
}

# The cluster: two servers, each the one replica of its shard, both listing
# both in remote_servers (config.d), each with its own {shard}/{replica} macros.
ch_cluster=smartlayer_test
start_clickhouse_node() { # start_clickhouse_node N PORT PORT1 PORT2: node N of the cluster on PORT
	local n=$1 port=$2 http nd
	http=$(spare_port)
	nd="$dir/clickhouse-node$n"
	mkdir -p "$nd/config.d"
	sed -e "s#@DIR@#$nd#g" -e "s/@TCP_PORT@/$port/" -e "s/@HTTP_PORT@/$http/" \
		"$here/internal/testenv/clickhouse-config.xml" >"$nd/config.xml"
	cp "$here/internal/testenv/clickhouse-users.xml" "$nd/users.xml"
	sed -e "s/@CLUSTER@/$ch_cluster/g" -e "s/@PORT1@/$3/" -e "s/@PORT2@/$4/" -e "s/@SHARD@/0$n/" -e "s/@REPLICA@/node$n/" \
		"$here/internal/testenv/clickhouse-cluster.xml" >"$nd/config.d/cluster.xml"
	clickhouse-server --config-file="$nd/config.xml" >"$nd/out.log" 2>&1 &
	node_pid=$!
}
start_cluster() {
	node_pids=()
	local p1 p2
	p1=$(spare_port)
	p2=$(spare_port)
	[ "$p1" != "$p2" ] || return 1
	start_clickhouse_node 1 "$p1" "$p1" "$p2"
	node_pids+=("$node_pid")
	start_clickhouse_node 2 "$p2" "$p1" "$p2"
	node_pids+=("$node_pid")
	cluster_addrs="127.0.0.1:$p1,127.0.0.1:$p2"
	wait_for "clickhouse cluster node 1" clickhouse-client --port "$p1" -q 'SELECT 1' &&
		wait_for "clickhouse cluster node 2" clickhouse-client --port "$p2" -q 'SELECT 1'
}

start_chdb() {
	chdb_port=$(spare_port)
	CHDB_LIB_PATH=$chdb_lib "$here/bin/testenv/chdbhttp" -addr "127.0.0.1:$chdb_port" -path "$dir/chdb/data" \
		>>"$dir/chdb/out.log" 2>&1 &
	chdb_pid=$!
	# Loading libchdb.so (540 MB) from a cold page cache on a busy machine can
	# take well over wait_for's 20 s: wait as long as the process lives.
	for _ in $(seq 1 1200); do
		port_open "$chdb_port" && return 0
		kill -0 "$chdb_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "testenv: chdb did not become ready" >&2
	return 1
}

for try in 1 2 3; do
	if start_redis; then pids+=("$redis_pid"); break; fi
	kill "$redis_pid" 2>/dev/null || true
	[ "$try" -lt 3 ] || exit 1
done
for try in 1 2 3; do
	if start_clickhouse; then pids+=("$ch_pid"); break; fi
	kill "$ch_pid" 2>/dev/null || true
	[ "$try" -lt 3 ] || exit 1
done

for try in 1 2 3; do
	if start_cluster; then pids+=("${node_pids[@]}"); break; fi
	kill "${node_pids[@]}" 2>/dev/null || true
	[ "$try" -lt 3 ] || exit 1
done

# chDB is loaded once, by one chdbhttp process, for every test package.
chdb_note="chdb unavailable"
if chdb_lib=$(ensure_chdb) && mkdir -p "$dir/chdb" &&
	# A fixed output path: go build skips the link when it is up to date (~1 s, not ~6 s).
	(cd "$here" && go build -o bin/testenv/chdbhttp ./internal/testenv/chdbhttp); then
	for try in 1 2 3; do
		if start_chdb; then
			pids+=("$chdb_pid")
			export SMARTLAYER_TEST_CHDB_ADDR="127.0.0.1:$chdb_port" SMARTLAYER_TEST_CHDB_LIB="$chdb_lib"
			chdb_note="chdb $CHDB_LIB_VERSION on $SMARTLAYER_TEST_CHDB_ADDR"
			break
		fi
		kill "$chdb_pid" 2>/dev/null || true
		[ "$try" -lt 3 ] || { tail -n 20 "$dir/chdb/out.log" >&2; }
	done
fi

export SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_NAME="$ch_cluster"
export SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_ADDRS="$cluster_addrs"
export SMARTLAYER_TEST_REDIS_ADDR="127.0.0.1:$redis_port"
export SMARTLAYER_TEST_CLICKHOUSE_ADDR="127.0.0.1:$ch_port"
echo "testenv: redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on $SMARTLAYER_TEST_REDIS_ADDR," \
	"clickhouse $(clickhouse-client --port "$ch_port" -q 'SELECT version()') on $SMARTLAYER_TEST_CLICKHOUSE_ADDR," \
	"cluster $ch_cluster on $cluster_addrs, $chdb_note" >&2

set +e
"$@"
