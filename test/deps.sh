#!/bin/bash
# Installs the Debian packages voxrelay's build, tests and demo need, if
# any is missing.  Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(build-essential pkg-config ca-certificates
      libuv1-dev libwslay-dev libmbedtls-dev libjansson-dev libcurl4-openssl-dev
      node-llhttp python3 python3-websockets python3-jsonschema openssl
      espeak-ng sox)

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
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
