#!/usr/bin/env bats
# Reply-for-reply fidelity: every probe in tests/fidelity/probes, run against decky-smtpd
# behind systemd-socket-activate, gets the transcript Debian 12's Postfix 3.7 gave
# (tests/fidelity/expected), byte for byte after masking queue ids and dates.  None may
# be excused: tests/fidelity/KNOWN-DIFFS is for work in progress, and must be empty
# here.  tests/fidelity/README.

load helper

@test "every fidelity probe gets the reference Postfix's transcript" {
	run "$TESTS/fidelity/compare" "$DECKY"
	assert_success
	assert_line --regexp '^compare: [0-9]+ probes: [0-9]+ ok, 0 differ, 0 known diffs, 0 listed but fixed$'
}
