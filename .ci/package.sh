#!/bin/bash
# The Debian package, end to end, as root on a Debian 12 machine that does
# not have voxrelay installed (systemd need not run):
#
#   - installs the build tools and the package's Build-Depends;
#   - make deb, then lintian (no error, no warning that is not overridden);
#   - installs the .deb and checks what it put where, and with which owner;
#   - without TWILIO_AUTH_TOKEN: configtest, start and postinst's start
#     (with services allowed) refuse, naming the key, and dpkg does not
#     fail; with it set, postinst's start starts the daemon;
#   - configures it for loopback, then through /etc/init.d/voxrelay: start
#     (/health answers on the admin port, /healthz on the public one, the
#     operator's endpoints not there; master and workers run as voxrelay),
#     configtest, a reload and a restart refused on a broken configuration,
#     a reload
#     (generation 2), status, log rotation (SIGUSR1), restart, a start
#     after the master was killed, stop (no process left, by pid);
#   - apt-get purge, and checks that nothing of the package is left.
#
# Every wait is bounded.  The only processes it stops are the daemon's,
# which it started: it refuses to run where voxrelay was already installed
# or running, unless the installation is one this test made and could not
# purge (its run was cut short: MARK says so), which it purges first.  VR_KEEP_ON_FAILURE=1 leaves a failed run's installation in
# place to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
T0=$SECONDS
DAEMON=/usr/sbin/voxrelay
INIT=/etc/init.d/voxrelay
CONF=/etc/voxrelay/voxrelay.conf
PIDFILE=/run/voxrelay/voxrelay.pid
LOG=/var/log/voxrelay/voxrelay.log
INSTALLED=0
SEEN_PIDS=" "
# Written before this test installs the package, removed once it has
# purged it: its presence means the installation here is this test's.
MARK=/var/tmp/voxrelay-package-test.installed

step() { printf '\n==== %s (%d s)\n' "$*" $((SECONDS - T0)); }
fail() { echo "package.sh: FAIL: $*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...: the command must succeed
	local what=$1; shift
	"$@" || fail "$what"
	echo "ok: $what"
}

# VR_PIDS: the pids of every running process of the installed binary (a
# master, workers, a ledger writer), from /proc: procps need not be
# installed.  Each is remembered in SEEN_PIDS, so that a failed run can stop
# exactly those; call it in this shell, not in $(...), for that.
vr_scan() {
	local d exe
	VR_PIDS=""
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		case "$exe" in
		"$DAEMON"|"$DAEMON (deleted)")
			VR_PIDS="$VR_PIDS ${d#/proc/}"
			case "$SEEN_PIDS" in *" ${d#/proc/} "*) ;; *) SEEN_PIDS="$SEEN_PIDS${d#/proc/} ";; esac
			;;
		esac
	done
	VR_PIDS=${VR_PIDS# }
}
vr_pids() { vr_scan; echo "$VR_PIDS"; }
# A live process of the binary; a zombie not yet reaped (its master gone,
# and pid 1 slow to reap it) has no exe and does not count.
alive() { case "$(readlink "/proc/$1/exe" 2>/dev/null)" in "$DAEMON"|"$DAEMON (deleted)") return 0;; esac; return 1; }
none_alive() { local p; for p in "$@"; do ! alive "$p" || return 1; done; }
ppid_of() { awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null; }
owner_of() { stat -c %U "/proc/$1" 2>/dev/null; }

# wait_until SECONDS COMMAND...: polls every 0.2 s.
wait_until() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

# the operator's endpoints are on ADMIN_PORT; PORT has only /healthz
health() { curl -fsS --max-time 3 "http://127.0.0.1:$ADMIN_PORT/health"; }
healthz_ok() { [ "$(curl -fsS --max-time 3 "http://127.0.0.1:$PORT/healthz")" = '{"status":"ok"}' ]; }
public_404() { [ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$PORT$1")" = 404 ]; }
# hget EXPR: evaluates EXPR on the JSON read from stdin, as d.
hget() {
	python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"
}
health_is() { [ "$(health 2>/dev/null | hget "$1" 2>/dev/null)" = "$2" ]; }
no_daemon_left() { vr_scan; [ -z "$VR_PIDS" ]; }
master_pid() { cat "$PIDFILE" 2>/dev/null; }
workers_of() { # the workers (named voxrelay-wN) whose parent is $1
	local p out=""
	for p in $(vr_pids); do
		[ "$(ppid_of "$p")" = "$1" ] || continue
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		voxrelay-w*) out="$out $p" ;;
		esac
	done
	echo $out
}
system_user() { # voxrelay: a system uid, home /nonexistent, no login shell
	local uid home shell
	IFS=: read -r _ _ uid _ _ home shell < <(getent passwd voxrelay) || return 1
	[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ]
}
show_health() {
	health | python3 -c 'import json, sys
d = json.load(sys.stdin)
print("status %s, version %s, generation %s" % (d["status"], d["version"], d["generation"]))
for w in d["workers"]:
    print("  worker %s: pid %s, %s, generation %s" % (w["slot"], w["pid"], w["state"], w["generation"]))'
}

on_exit() {
	local rc=$? p
	rm -f "${ALLOW:-}"
	[ $rc -eq 0 ] && return 0
	echo "package.sh: failed after $((SECONDS - T0)) s" >&2
	[ $INSTALLED -eq 1 ] || return $rc
	echo "---- $LOG (end)" >&2
	tail -n 40 "$LOG" >&2 2>/dev/null || true
	if [ "${VR_KEEP_ON_FAILURE:-}" = 1 ]; then
		echo "VR_KEEP_ON_FAILURE=1: the package stays installed" >&2
		return $rc
	fi
	[ -x "$INIT" ] && timeout 120 "$INIT" stop >&2 || true
	vr_scan
	for p in $SEEN_PIDS; do
		! alive "$p" || kill -KILL "$p" 2>/dev/null || true
	done
	timeout 300 apt-get purge -y voxrelay >&2 && rm -f "$MARK" || true
	return $rc
}
trap on_exit EXIT

[ "$(id -u)" -eq 0 ] || fail "needs root"
VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
UPSTREAM=${VERSION%-*}
ARCH=$(dpkg --print-architecture)
DEB=build/voxrelay_${VERSION}_${ARCH}.deb

step "preconditions"
if [ -e "$MARK" ] && dpkg-query -W -f='${Status}' voxrelay 2>/dev/null | grep -qv 'not-installed'; then
	echo "a run of this test installed voxrelay and ended before its purge ($(cat "$MARK")): purging it"
	[ -x "$INIT" ] && timeout 120 "$INIT" stop || true
	vr_scan
	for p in $VR_PIDS; do
		kill -KILL "$p" 2>/dev/null || true
	done
	timeout 300 apt-get purge -y -q voxrelay || fail "could not purge the installation left by an earlier run"
fi
rm -f "$MARK"
if dpkg-query -W -f='${Status}' voxrelay 2>/dev/null | grep -qv 'not-installed'; then
	fail "voxrelay is installed here already; this test installs and purges it"
fi
getent passwd voxrelay >/dev/null && fail "a user voxrelay exists already"
getent group voxrelay >/dev/null && fail "a group voxrelay exists already"
no_daemon_left || fail "$DAEMON is running already"
echo "ok: no voxrelay here"

step "build tools and Build-Depends"
timeout 600 apt-get update -q
timeout 900 apt-get install -y -q --no-install-recommends \
	make dpkg-dev debhelper lintian curl python3 logrotate
timeout 900 apt-get build-dep -y -q ./packaging

step "make deb"
rm -f build/voxrelay_*.deb build/voxrelay-dbgsym_*.deb
timeout 900 make deb
check "$DEB built" test -s "$DEB"

step "lintian"
# Fails on an error or a warning; overrides carry their reasons in
# packaging/debian/voxrelay.lintian-overrides.
timeout 600 lintian --allow-root --fail-on error,warning --display-info "$DEB"
echo "ok: lintian"

step "install"
INSTALLED=1
echo "$DEB, $(date -u +%FT%TZ)" >"$MARK"
timeout 600 apt-get install -y -q "./$DEB"
check "voxrelay -v says $UPSTREAM" test "$($DAEMON -v)" = "voxrelay $UPSTREAM"
check "user voxrelay: system, no login, /nonexistent" system_user
check "group voxrelay" getent group voxrelay
check "$CONF root:voxrelay 640" test "$(stat -c '%U:%G %a' $CONF)" = "root:voxrelay 640"
for d in /var/lib/voxrelay /var/lib/voxrelay/transcripts /var/log/voxrelay; do
	check "$d voxrelay:voxrelay 750" test "$(stat -c '%U:%G %a' $d)" = "voxrelay:voxrelay 750"
done
for f in /etc/default/voxrelay /etc/logrotate.d/voxrelay \
    /etc/voxrelay/personas/default.json /lib/systemd/system/voxrelay.service \
    /usr/share/man/man8/voxrelay.8.gz; do
	check "$f installed" test -s "$f"
done
check "$INIT executable" test -x "$INIT"
if command -v systemd-analyze >/dev/null; then
	check "systemd unit verifies" systemd-analyze verify --man=no /lib/systemd/system/voxrelay.service
fi
check "rc2.d start link" sh -c 'ls /etc/rc2.d/S*voxrelay >/dev/null 2>&1'
CONFFILES=$(dpkg-query -W -f='${Conffiles}\n' voxrelay)
for f in $CONF /etc/voxrelay/personas/default.json /etc/default/voxrelay \
    $INIT /etc/logrotate.d/voxrelay; do
	check "$f is a conffile" grep -q " $f " <<<"$CONFFILES"
done
check "packaged BIND is loopback" grep -qx 'BIND=127.0.0.1' $CONF
check "packaged ADMIN_BIND is loopback (the default)" sh -c "! grep -q '^ADMIN_BIND=' $CONF"
check "packaged PID_FILE" grep -qx "PID_FILE=$PIDFILE" $CONF
check "packaged LOG_FILE" grep -qx "LOG_FILE=$LOG" $CONF

step "unconfigured: no TWILIO_AUTH_TOKEN yet"
# A fresh install cannot start: without the auth token nothing proves a
# webhook came from Twilio.  dpkg did not fail for that; -t, the init
# script and postinst's start say which key to set, and nothing runs.
check "dpkg configured the package" sh -c \
	"dpkg-query -W -f='\${Status}' voxrelay | grep -qx 'install ok installed'"
if out=$(timeout 30 $INIT configtest 2>&1); then
	echo "$out"; fail "configtest passed without TWILIO_AUTH_TOKEN"
fi
echo "$out"
check "configtest names the key" grep -q "$CONF: TWILIO_AUTH_TOKEN: not set" <<<"$out"
if out=$(timeout 60 $INIT start 2>&1); then
	echo "$out"; fail "start succeeded without TWILIO_AUTH_TOKEN"
fi
echo "$out"
check "start names the key" grep -q "TWILIO_AUTH_TOKEN: not set" <<<"$out"
check "nothing started" no_daemon_left
# postinst as on a machine whose policy lets it start services: this
# machine's policy-rc.d, if any, is replaced by one that allows everything
# in a mount namespace of the postinst's own.
ALLOW=$(mktemp)
printf '#!/bin/sh\nexit 0\n' >"$ALLOW"
chmod 0755 "$ALLOW"
postinst_configure() {
	if [ -e /usr/sbin/policy-rc.d ]; then
		timeout 120 unshare -m sh -c 'mount --bind "$0" /usr/sbin/policy-rc.d &&
		    exec /var/lib/dpkg/info/voxrelay.postinst configure' "$ALLOW"
	else
		timeout 120 /var/lib/dpkg/info/voxrelay.postinst configure
	fi
}
out=$(postinst_configure 2>&1) || { echo "$out"; fail "postinst failed without TWILIO_AUTH_TOKEN"; }
echo "$out"
check "postinst's start names the key" grep -q "TWILIO_AUTH_TOKEN: not set" <<<"$out"
check "still nothing started" no_daemon_left

step "configure for the test"
# postinst starts the daemon unless policy-rc.d forbids it (as in most
# containers): stop it, if so, before the configuration changes.
if ! no_daemon_left; then
	echo "postinst started the daemon; stopping it"
	timeout 120 $INIT stop
fi
wait_until 10 no_daemon_left || fail "daemon started by postinst did not stop"
PORT=
ADMIN_PORT=
for p in 15050 15051 15052 15053 15054 25050 25051 35050 35051; do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		if [ -z "$PORT" ]; then
			PORT=$p
		else
			ADMIN_PORT=$p
			break
		fi
	fi
done
[ -n "$PORT" ] && [ -n "$ADMIN_PORT" ] || fail "no free ports"
cat >>$CONF <<EOF

# .ci/package.sh
PORT=$PORT
ADMIN_PORT=$ADMIN_PORT
WORKERS=2
OPENAI_URL=ws://127.0.0.1:1/
DRAIN_TIMEOUT=5
TWILIO_AUTH_TOKEN=package-test-auth-token
EOF
echo "ok: port $PORT, admin port $ADMIN_PORT, 2 workers, an auth token"
check "configtest passes with the key set" timeout 30 $INIT configtest

step "postinst starts it once the key is set"
out=$(postinst_configure 2>&1) || { echo "$out"; fail "postinst with TWILIO_AUTH_TOKEN set"; }
rm -f "$ALLOW"
check "/health answers after postinst" wait_until 15 health_is 'd["status"]' ok
check "signatures on" health_is 'd["signature_validation"]' 1
timeout 120 $INIT stop
check "stopped again" wait_until 10 no_daemon_left

step "start"
timeout 60 $INIT start
check "/health answers on the admin port" wait_until 15 health_is 'd["status"]' ok
check "/healthz answers on the public port" healthz_ok
for p in /health /metrics /usage-data /dashboard; do
	check "$p is 404 on the public port" public_404 $p
done
show_health
check "generation 1" health_is 'd["generation"]' 1
check "2 workers ready" health_is 'sum(1 for w in d["workers"] if w["state"] == "ready")' 2
MASTER=$(master_pid)
vr_scan
check "pid file names a live master" kill -0 "$MASTER"
check "master runs as voxrelay" test "$(owner_of "$MASTER")" = voxrelay
WORKERS=$(workers_of "$MASTER")
check "2 worker processes" test "$(wc -w <<<"$WORKERS")" -eq 2
for w in $WORKERS; do
	check "worker $w runs as voxrelay" test "$(owner_of "$w")" = voxrelay
done
check "log file written" grep -q "listening on 127.0.0.1 port $PORT" $LOG
check "log file owned by voxrelay" test "$(stat -c %U $LOG)" = voxrelay
timeout 60 $INIT start
check "start again keeps the master" test "$(master_pid)" = "$MASTER"

step "configtest"
out=$(timeout 30 $INIT configtest 2>&1) || { echo "$out"; fail "configtest"; }
echo "$out"
check "configtest says ok" grep -q 'is ok' <<<"$out"

step "reload and restart refused on a broken configuration"
echo "WORKERS=many" >>$CONF
if out=$(timeout 30 $INIT configtest 2>&1); then fail "configtest passed a broken configuration"; fi
echo "$out"
check "configtest names the key" grep -q 'WORKERS' <<<"$out"
if timeout 30 $INIT reload; then fail "reload sent a broken configuration"; fi
if timeout 120 $INIT restart; then fail "restart went ahead with a broken configuration"; fi
check "still generation 1" health_is 'd["generation"]' 1
check "same master" test "$(master_pid)" = "$MASTER"
sed -i '/^WORKERS=many$/d' $CONF

step "reload"
timeout 30 $INIT reload
check "generation 2" wait_until 10 health_is 'd["generation"]' 2
check "2 workers of generation 2 ready" wait_until 10 health_is \
	'sum(1 for w in d["workers"] if w["state"] == "ready" and w["generation"] == 2)' 2
check "same master after reload" test "$(master_pid)" = "$MASTER"
check "old workers gone" wait_until 15 none_alive $WORKERS
check "2 worker processes" test "$(workers_of "$MASTER" | wc -w)" -eq 2
vr_scan
show_health

step "status"
timeout 30 $INIT status
check "status while running" timeout 30 $INIT status >/dev/null

step "log rotation"
timeout 60 logrotate -f /etc/logrotate.d/voxrelay
check "log rotated" test -s $LOG.1
check "daemon reopened its log (SIGUSR1)" wait_until 5 grep -q 'log file reopened' $LOG
check "rotated log not written to" sh -c "! grep -q 'log file reopened' $LOG.1"

step "restart"
vr_scan
OLD_PIDS=$VR_PIDS
timeout 120 $INIT restart
check "/health after restart" wait_until 15 health_is 'd["generation"]' 1
NEW_MASTER=$(master_pid)
vr_scan
check "a new master" test -n "$NEW_MASTER" -a "$NEW_MASTER" != "$MASTER"
check "old processes gone: $OLD_PIDS" none_alive $OLD_PIDS

step "start after a master killed with SIGKILL"
# Its workers follow it (SIGTERM on their parent's death); the pid file
# stays behind, stale.
kill -KILL "$NEW_MASTER"
check "workers followed the master" wait_until 15 no_daemon_left
check "stale pid file left" test -s $PIDFILE
timeout 60 $INIT start
check "/health after the start" wait_until 15 health_is 'd["status"]' ok
check "a new master again" test "$(master_pid)" != "$NEW_MASTER"
vr_scan

step "stop"
vr_scan
echo "running: $VR_PIDS"
timeout 120 $INIT stop
check "no voxrelay process left" wait_until 5 no_daemon_left
check "every pid seen is gone:$SEEN_PIDS" none_alive $SEEN_PIDS
check "pid file removed" test ! -e $PIDFILE
check "drained and stopped" grep -q 'stopped' $LOG
rc=0; timeout 30 $INIT status || rc=$?
check "status after stop is 3" test $rc -eq 3

step "purge"
timeout 300 apt-get purge -y -q voxrelay
INSTALLED=0
rm -f "$MARK"
check "package gone from dpkg" sh -c "! dpkg-query -W -f='\${Status}' voxrelay 2>/dev/null | grep -qv not-installed"
for f in /etc/voxrelay /var/lib/voxrelay /var/log/voxrelay /run/voxrelay \
    /etc/default/voxrelay $INIT /etc/logrotate.d/voxrelay $DAEMON \
    /lib/systemd/system/voxrelay.service /usr/share/man/man8/voxrelay.8.gz \
    /usr/share/doc/voxrelay; do
	check "$f removed" test ! -e "$f"
done
check "no rc.d links" sh -c '! ls /etc/rc?.d/*voxrelay >/dev/null 2>&1'
check "no systemd enablement left" sh -c '! ls /etc/systemd/system/*.wants/voxrelay.service \
	/var/lib/systemd/deb-systemd-helper-enabled/*voxrelay* >/dev/null 2>&1'
check "user removed" sh -c '! getent passwd voxrelay'
check "group removed" sh -c '! getent group voxrelay'
check "no statoverride left" sh -c '! dpkg-statoverride --list | grep -q voxrelay'
check "no voxrelay process" no_daemon_left

step "package.sh passed in $((SECONDS - T0)) s"
