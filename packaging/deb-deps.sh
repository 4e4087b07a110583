#!/bin/bash
# Installs what `make deb` needs when something is missing: dpkg-dev and
# debhelper, and the Build-Depends of packaging/debian/control (through
# apt-get build-dep on that directory).  Needs root (or sudo) only then, as
# test/deps.sh does for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v dpkg-checkbuilddeps >/dev/null 2>&1 &&
    dpkg-checkbuilddeps packaging/debian/control 2>/dev/null; then
	exit 0
fi
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "installing the build dependencies of packaging/debian/control"
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends build-essential dpkg-dev debhelper
$SUDO apt-get build-dep -y --no-install-recommends ./packaging
dpkg-checkbuilddeps packaging/debian/control
