#!/usr/bin/env bats
# Real scanners agree: nmap's SMTP scripts, its TLS scripts (through STARTTLS) and version
# detection find on decky-smtpd what they find on Debian 12's Postfix
# (tests/nmap/postfix.expected, recorded with tests/nmap/scan against the reference with
# TLS on; `make fidelity-live` records it anew).

load helper

setup() {
	common_setup
	command -v nmap >/dev/null || skip "nmap is not installed"
	# the key and certificate ahead of time: making them in the scan's first STARTTLS
	# can outlast nmap's TLS timeouts under valgrind (make memcheck)
	"$DECKY" --make-cert >/dev/null
	start_activated
}

teardown() {
	stop_activated
}

@test "nmap -sV with smtp-commands, smtp-open-relay, smtp-enum-users, ssl-cert and ssl-enum-ciphers: the same findings as on Postfix" {
	run "$TESTS/nmap/scan" "$PORT"
	assert_success
	diff -u "$TESTS/nmap/postfix.expected" <(printf '%s\n' "$output")
}
