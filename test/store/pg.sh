#!/bin/bash
# The store's unit tests (test/unit/test_store.c) on a real PostgreSQL
# server that this script starts itself and stops by its pid at the end.
#
#   test/store/pg.sh [build/test_unit]   runs the suite (VR_TEST_SELECT:
#                                        other test names than "store")
#   test/store/pg.sh stop DIR | start DIR
#                                        the outage test's commands
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

case "${1:-}" in
stop) pg_stop "$2"; exit 0 ;;
start) pg_start "$2"; exit 0 ;;
esac

BIN=${1:-build/test_unit}
DIR=$(mktemp -d /tmp/vrpg.XXXXXX)
chmod 0755 "$DIR"
cleanup() {
	pg_stop "$DIR"
	rm -rf "$DIR"
}
trap cleanup EXIT
mkdir "$DIR/data"
[ ${#AS[@]} -gt 0 ] && chown nobody "$DIR" "$DIR/data"
(cd "$DIR" && "${AS[@]}" "$PGBIN/initdb" -D "$DIR/data" -U voxrelay \
    --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1) || {
	cat "$DIR/initdb.log" >&2
	exit 1
}
pg_start "$DIR" || { cat "$DIR/server.log" >&2; exit 1; }
"${AS[@]}" "$PGBIN/createdb" -h "$DIR" -U voxrelay vrtest

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
export VR_TEST_DATABASE_URL="postgresql://voxrelay@/vrtest?host=$DIR"
export VR_TEST_PG_STOP="$self stop $DIR"
export VR_TEST_PG_START="$self start $DIR"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on $DIR"
"$BIN" ${VR_TEST_SELECT:-store}
