# selftest: exercises /init's KTAP machinery itself, for testing a harness's parser.
# Boot with zcnic.suite=selftest zcnic.timeout=3. Expected, in order:
#   ok 1 passes
#   ok 2 skips # SKIP on purpose
#   not ok 3 fails                       (with diagnostics)
#   not ok 4 hangs # TIMEOUT after 3s
#   ok 5 no-leftovers                    (what "hangs" started was killed with it)
ZCNIC_TESTS="passes skips fails hangs no-leftovers"

test_passes() {
	diag "a diagnostic line" "and a second one"
	metric selftest_value 42
	echo "this goes to the console, not to KTAP"
}

test_skips() {
	skip "on purpose"
}

test_fails() {
	fail "failing on purpose"
}

test_hangs() {
	sleep 3600 &
	sleep 3600
}

test_no_leftovers() {
	left=$(ps -o pid,args | grep '[s]leep 3600')
	[ -z "$left" ] || fail "processes survived their test: $left"
}
