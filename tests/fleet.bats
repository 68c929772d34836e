#!/usr/bin/env bats
# A fleet: two deckies, each with its own journald (its own mount and UTS namespace),
# ship their journals with systemd-journal-upload over HTTPS to one collector,
# systemd-journal-remote, all inside a network namespace the test makes (loopback only).

load helper

setup() {
	common_setup
	[ "$(id -u)" -eq 0 ] || skip "namespaces need root"
	[ -x /lib/systemd/systemd-journal-remote ] || skip "systemd-journal-remote is not installed"
	W=$BATS_TEST_TMPDIR/fleet
	REPORT=$(dirname "$DECKY")/decky-smtpd-report
	[ -x "$REPORT" ] || REPORT=$TOP/decky-smtpd-report
	mkdir -p "$W"
	"$TESTS/fleet/certs" "$W" collector decky-a decky-b
}

teardown() {
	local p
	touch "$W/stop" 2>/dev/null
	for p in "$W"/*.pid; do [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	return 0
}

@test "every event of two deckies reaches the collector byte for byte, and a collector stopped in a burst loses none" {
	# hostile values: NUL, Latin-1 and ESC in a password, Latin-1 in a Subject, and a
	# password over 4096 bytes
	for n in decky-a decky-b; do
		printf 'EHLO %s\r\nAUTH PLAIN %s\r\nMAIL FROM:<x@y.z>\r\nRCPT TO:<v@example.org>\r\nDATA\r\nSubject: \xe9t\xe9 %s\r\n\r\nbody\r\n.\r\nQUIT\r\n' \
	    "$n-bot" "$(printf '\0r\x00ot\0p\xe4ss\x1b[2J' | base64 -w0)" "$n" >"$W/$n.in1"
		printf 'EHLO %s\r\nAUTH LOGIN\r\n%s\r\n%s\r\nQUIT\r\n' "$n" "$(printf u | base64)" \
		    "$(head -c 5000 /dev/zero | tr '\0' A | base64 -w0)" >"$W/$n.in2"
	done
	run timeout 180 unshare -n "$TESTS/fleet/run" "$W" "$DECKY" 150
	if [ "$status" -ne 0 ]; then	# what each part said
		echo "$output" | tail -20
		tail -n 20 "$W"/*.log 2>/dev/null || true
		ls -la "$W"
	fi
	assert_success
	cat "$W/run.log"
	grep -q 'collector stopped after' "$W/run.log"
	# both deckies in one file of the collector (split by the sender's address)
	ls "$W/collector"/*.journal
	[ "$(journalctl --no-pager -D "$W/collector" -t decky-smtpd -o cat --output-fields=_HOSTNAME -F _HOSTNAME | sort | tr '\n' ' ')" = "decky-a decky-b " ]
	[ "$(journalctl --no-pager -D "$W/collector" -F PERSONA_HOSTNAME | sort | tr '\n' ' ')" = "decky-a.example decky-b.example " ]
	# every entry of each decky's journal, field for field and byte for byte, in the
	# collector; at most one of each sent twice, identical (see decky-smtpd(8), CAVEATS)
	run "$TESTS/fleet/compare" --doubles=1 "$W/collector" "$W/decky-a.journal" "$W/decky-b.journal"
	echo "$output"
	assert_success
	# each decky: 2 sessions, then 150 of the burst (connect, ehlo, mail_from, command, disconnect)
	for n in decky-a decky-b; do
		[ "$(journalctl --no-pager -D "$W/$n.journal" -t decky-smtpd EVENT_TYPE=connect -o cat | wc -l)" -eq 152 ]
		[ "$(journalctl --no-pager -D "$W/collector" -t decky-smtpd _HOSTNAME=$n EVENT_TYPE=disconnect -o export |
		    grep -c '^SESSION_ID=')" -ge 152 ]
	done
	# the report on the collector's journal: every decky, each as its own journal tells it
	# (an entry journal-upload sent twice is counted once), and no raw byte on a terminal
	run "$REPORT" --directory "$W/collector" --json
	assert_success
	c=$output
	[ "$(jq -r '.deckies.top | map(.persona_hostname + "/" + .hostname + "=" + (.sessions | tostring)) | sort | join(" ")' <<<"$c")" = \
	    "decky-a.example/decky-a=152 decky-b.example/decky-b=152" ]
	[ "$(jq .sessions <<<"$c")" -eq 304 ]
	[ "$(jq .credentials <<<"$c")" -eq 4 ]
	[ "$(jq .messages <<<"$c")" -eq 2 ]
	for n in decky-a decky-b; do
		"$REPORT" --directory "$W/$n.journal" --json | jq -S 'del(.resent)' >"$W/$n.report"
		"$REPORT" --directory "$W/collector" --decky $n --json | jq -S 'del(.resent)' >"$W/$n.collected"
		diff "$W/$n.report" "$W/$n.collected"
	done
	"$REPORT" --directory "$W/collector" >"$W/report.txt"
	grep -q 'decky-a.example / decky-a' "$W/report.txt"
	grep -q 'decky-b.example / decky-b' "$W/report.txt"
	"$TESTS/no-control" <"$W/report.txt"
	# the hostile values, as sent
	journalctl --no-pager -D "$W/collector" _HOSTNAME=decky-a EVENT_TYPE=auth_attempt -o export |
	    python3 -c 'import sys, struct
d = sys.stdin.buffer.read()
def field(name, value):	# a binary field of the export format
    return b"\n" + name + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
assert b"\nUSERNAME=r\n" in d, "USERNAME"
assert field(b"PASSWORD", b"ot\0p\xe4ss\x1b[2J") in d, "PASSWORD"'
	[ "$(journalctl --no-pager -D "$W/collector" _HOSTNAME=decky-b EVENT_TYPE=auth_attempt USERNAME=u -o export |
	    grep -a -c "^PASSWORD=$(printf 'A%.0s' $(seq 5000))\$")" -eq 1 ]
}
