# shellcheck shell=bash
# lib.sh: helpers the scripts share (source it).

# spare_port prints a loopback TCP port nobody listens on.
spare_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "no spare loopback port" >&2
	return 1
}

# under_testenv moves to the repository root and, unless the test services
# are already up, runs the calling script again under scripts/testenv.sh
# (private Redis and ClickHouse). Call it as: under_testenv "$0" "$@"
under_testenv() {
	cd "$(dirname "$1")/.."
	if [ -z "${SMARTLAYER_TEST_REDIS_ADDR:-}" ]; then
		exec scripts/testenv.sh "$@"
	fi
}
