#!/bin/bash
# run.sh SECONDS TARGET... - runs each libFuzzer target (build/fuzz/fuzz_T)
# for SECONDS: first over its regression inputs (tests/fuzz/regress/T/,
# every crash ever found, kept), then fuzzing from a corpus seeded with
# the project's test messages (tests/data/hl7v2, framed for mllp) plus
# those of $HL7Q_CORPUS when that directory exists, or deploy/*.conf
# (config).  Prints one line per target with runs and executions per
# second; exits non-zero on a finding (the input is in build/fuzz/artifacts/).
set -e
secs=$1
shift
cd "$(dirname "$0")/../.."
seeds=tests/data/hl7v2
corpus=${HL7Q_CORPUS:-../shared/corpus}
[ -d "$corpus/hl7v2" ] && seeds="$seeds $corpus/hl7v2"
fail=0
for t in "$@"; do
	bin=build/fuzz/fuzz_$t
	work=build/fuzz/corpus/$t
	art=build/fuzz/artifacts/$t/
	mkdir -p "$work" "$art" tests/fuzz/regress/$t
	if [ -z "$(ls -A "$work")" ]; then
		case $t in
		config) cp deploy/*.conf "$work"/ ;;
		mllp) for f in $(find $seeds -name '*.hl7' | head -300); do
			{ printf '\013'; cat "$f"; printf '\034\r'; } > "$work/$(basename "$f").mllp"; done ;;
		*) find $seeds -name '*.hl7' -exec cp {} "$work"/ \; ;;
		esac
	fi
	# regressions: each kept input once
	if [ -n "$(ls -A tests/fuzz/regress/$t)" ]; then
		"$bin" tests/fuzz/regress/$t/* > build/fuzz/$t.regress.log 2>&1 || { echo "fuzz $t: a regression input fails again (build/fuzz/$t.regress.log)"; fail=1; continue; }
	fi
	if "$bin" -max_total_time="$secs" -print_final_stats=1 -max_len=65536 -timeout=10 \
		-artifact_prefix="$art" "$work" > build/fuzz/$t.log 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$t.log)
		rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' build/fuzz/$t.log | tail -1)
		echo "fuzz $t: ${secs}s, $runs runs, $rate exec/s, no finding"
	else
		echo "fuzz $t: FINDING -- see build/fuzz/$t.log and $art"
		fail=1
	fi
done
exit $fail
