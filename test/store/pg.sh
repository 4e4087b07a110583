#!/bin/bash
# The store's unit tests (test/unit/test_store.c) on a real PostgreSQL
# server that this script starts itself and stops by its pid at the end.
#
#   test/store/pg.sh [build/test_unit]   runs the suite (VR_TEST_SELECT:
#                                        other test names than "store")
#   test/store/pg.sh stop DIR | start DIR
#                                        the outage test's commands
#   test/store/pg.sh init DIR            a new server on DIR (empty,
#                                        0755), started, with a database
#                                        vrtest; prints its DATABASE_URL
#                                        (the integration tests': they
#                                        stop it with "stop DIR")
#
# Debian's postgresql package: initdb in a temporary directory, as an
# unprivileged user when run as root (initdb refuses root), listening on a
# unix socket in that directory only (no TCP port).  Every wait is bounded.
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "pg.sh: no PostgreSQL server in /usr/lib/postgresql (test/deps.sh" \
	    "installs the postgresql package)" >&2
	exit 1
fi
AS=()
[ "$(id -u)" -eq 0 ] && AS=(runuser -u nobody --)

# start DIR: the server on DIR/data, socket in DIR, ready when it returns
pg_start() {
	local dir=$1
	"${AS[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
	    -o "-k $dir -c listen_addresses= -c fsync=off" start >/dev/null
}

# stop DIR: a fast shutdown (SIGINT) of the postmaster by its pid, waited
# for (30 s at most), SIGKILL after that
pg_stop() {
	local dir=$1 pid i
	[ -f "$dir/data/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$dir/data/postmaster.pid")
	[ -n "$pid" ] || return 0
	kill -INT "$pid" 2>/dev/null || return 0
	for i in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "pg.sh: server $pid did not stop; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

# init DIR: initdb on DIR/data, the server started, database vrtest
pg_init() {
	local dir=$1
	mkdir "$dir/data"
	[ ${#AS[@]} -gt 0 ] && chown nobody "$dir" "$dir/data"
	(cd "$dir" && "${AS[@]}" "$PGBIN/initdb" -D "$dir/data" -U voxrelay \
	    --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1) || {
		cat "$dir/initdb.log" >&2
		return 1
	}
	pg_start "$dir" || { cat "$dir/server.log" >&2; return 1; }
	"${AS[@]}" "$PGBIN/createdb" -h "$dir" -U voxrelay vrtest
}

case "${1:-}" in
stop) pg_stop "$2"; exit 0 ;;
start) pg_start "$2"; exit 0 ;;
init)
	pg_init "$2" || { pg_stop "$2"; exit 1; }
	echo "postgresql://voxrelay@/vrtest?host=$2"
	exit 0 ;;
esac

BIN=${1:-build/test_unit}
DIR=$(mktemp -d /tmp/vrpg.XXXXXX)
chmod 0755 "$DIR"
cleanup() {
	pg_stop "$DIR"
	rm -rf "$DIR"
}
trap cleanup EXIT
pg_init "$DIR" || exit 1

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
export VR_TEST_DATABASE_URL="postgresql://voxrelay@/vrtest?host=$DIR"
export VR_TEST_PG_STOP="$self stop $DIR"
export VR_TEST_PG_START="$self start $DIR"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on $DIR"
"$BIN" ${VR_TEST_SELECT:-store}
