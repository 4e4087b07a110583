#!/bin/sh
# test/fuzz/run.sh — runs fuzz targets, each on a copy of its corpus, for
# a fixed time, and prints one line per target (the numbers of the
# README's "Fuzzing" table).  make fuzz-run calls it:
#
#   test/fuzz/run.sh BUILD_DIR SECONDS JOBS TARGET...
#
# BUILD_DIR holds fuzz_<target> (make fuzz).  Each run works in
# BUILD_DIR/run/<target>/: corpus/ (a fresh copy of test/fuzz/corpus/
# <target>/, so the repository's corpus changes only by make fuzz-merge),
# log, and any crash-*, leak-*, timeout-* or oom-* input.  JOBS targets run
# at once, each one process (-jobs=1).  Exit status 1 if any target found
# something.
set -u

[ $# -ge 4 ] || { echo "usage: $0 BUILD_DIR SECONDS JOBS TARGET..." >&2; exit 2; }
B=$1 SECONDS_EACH=$2 JOBS=$3
shift 3

run_one() {
	t=$1 d=$B/run/$1
	rm -rf "$d"
	mkdir -p "$d"
	cp -R "test/fuzz/corpus/$t" "$d/corpus"
	dict=
	[ -f "test/fuzz/$t.dict" ] && dict="-dict=test/fuzz/$t.dict"
	# -rss_limit_mb: the default 2 GB is shared by two runs at once
	"$B/fuzz_$t" "$d/corpus" -max_total_time="$SECONDS_EACH" -timeout=10 \
	    -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$d/" \
	    $dict >"$d/log" 2>&1
	echo $? >"$d/rc"
}

# one line from a finished run's log
report() {
	t=$1 d=$B/run/$1
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$d/log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	found=$(cd "$d" && ls crash-* leak-* timeout-* oom-* 2>/dev/null | tr '\n' ' ')
	if [ "$(cat "$d/rc")" = 0 ] && [ -z "$found" ]; then
		result=none
	else
		result="FOUND ${found:-rc=$(cat "$d/rc")} (see $d/log)"
	fi
	printf '%-10s %8ss %12s %8s %10s %6s %7s  %s\n' "$t" "$SECONDS_EACH" \
	    "${execs:-?}" "${rate:-?}" "${corp:-?}" "${cov:-?}" "${ft:-?}" \
	    "$result"
	[ "$result" = none ]
}

printf '%-10s %9s %12s %8s %10s %6s %7s  %s\n' target time executions \
    exec/s corpus cov ft findings
status=0
set -- "$@"
while [ $# -gt 0 ]; do
	batch=
	i=0
	while [ $# -gt 0 ] && [ $i -lt "$JOBS" ]; do
		run_one "$1" &
		batch="$batch $1"
		i=$((i + 1))
		shift
	done
	wait
	for t in $batch; do
		report "$t" || status=1
	done
done
exit $status
