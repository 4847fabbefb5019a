#!/bin/sh
# run-units.sh BIN... - runs each Check unit-test binary and sums them up.
# Each binary prints Check's own "N%: Checks: C, Failures: F, Errors: E" line.
passed=0
failed=0
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	name=$(basename "$t")
	echo "$out" | grep -E "^[0-9]+%: Checks|:[EF]:" | sed "s|^|$name: |"
	line=$(echo "$out" | grep -E "^[0-9]+%: Checks" | tail -1)
	if [ -z "$line" ]; then
		echo "$name: did not report (exit $rc)"
		echo "$out" | tail -20
		failed=$((failed + 1))
		continue
	fi
	n=$(echo "$line" | sed 's/.*Checks: \([0-9]*\).*/\1/')
	f=$(echo "$line" | sed 's/.*Failures: \([0-9]*\).*/\1/')
	e=$(echo "$line" | sed 's/.*Errors: \([0-9]*\).*/\1/')
	passed=$((passed + n - f - e))
	failed=$((failed + f + e))
	if [ "$rc" -ne 0 ] && [ $((f + e)) -eq 0 ]; then
		failed=$((failed + 1))
	fi
done
echo "units: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
