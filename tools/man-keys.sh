#!/bin/sh
# man-keys.sh GENERATOR PAGE - replaces the key list of the man page PAGE
# (from its ".\" BEGIN KEYS" line to its ".\" END KEYS" line, both
# included) with what GENERATOR prints (build/*/tools/conf_keys: the
# config key tables).  `make man-keys` runs it; `make unit` fails while the
# committed page and the tables disagree.
set -e
gen=$1
page=$2
grep -q '^\.\\" BEGIN KEYS' "$page" || { echo "$page: no '.\\\" BEGIN KEYS' line" >&2; exit 1; }
grep -q '^\.\\" END KEYS' "$page" || { echo "$page: no '.\\\" END KEYS' line" >&2; exit 1; }
tmp=$(mktemp)
keys=$(mktemp)
trap 'rm -f "$tmp" "$keys"' EXIT
"$gen" > "$keys"
awk -v keys="$keys" '
	/^\.\\" BEGIN KEYS/ { while ((getline line < keys) > 0) print line; skip = 1; next }
	/^\.\\" END KEYS/ { skip = 0; next }
	!skip { print }
' "$page" > "$tmp"
if cmp -s "$tmp" "$page"; then
	echo "$page: key list up to date"
else
	cat "$tmp" > "$page"
	echo "$page: key list rewritten from the config tables"
fi
