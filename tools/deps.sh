#!/bin/sh
# deps.sh PKG... - installs the Debian packages among PKG that are missing
# (apt-get update first, once).  Used by the Makefile's deps targets so that
# `make demo` and `make check` work on a fresh Debian 12 machine.
set -e
missing=""
for p in "$@"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
