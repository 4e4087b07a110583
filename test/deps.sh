#!/bin/bash
# Installs the Debian packages voxrelay's build, tests and demo need, if
# any is missing.  Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(build-essential pkg-config ca-certificates
      libuv1-dev libwslay-dev libmbedtls-dev libjansson-dev libcurl4-openssl-dev
      libsqlite3-dev libpq-dev postgresql
      node-llhttp python3 python3-websockets python3-jsonschema python3-cryptography
      openssl tzdata
      espeak-ng sox
      prometheus chromium)
# prometheus: for promtool, which lints /metrics (test_metrics).  Its
# package also ships a server that its postinst would start where an init
# system runs; the policy below keeps it (and any other service) from being
# started by this install.  chromium: renders /dashboard (test_dashboard).
# tzdata: the zone files campaigns read (test_tz, test_campaigns).
# postgresql: the server test/store/pg.sh starts in a temporary directory
# for the PostgreSQL suite; its own cluster and service are not used.

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# invoke-rc.d and deb-systemd-invoke start no service while policy-rc.d
# exits 101 (Debian's policy-rc.d interface); a test machine needs none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	trap '$SUDO rm -f "$policy"' EXIT
	printf '#!/bin/sh\n# test/deps.sh: no service starts during its install\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 0755 "$policy"
fi
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
# The tests use promtool only: the server is not to start at boot either.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
	$SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
	fi
fi
