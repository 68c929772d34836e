#!/usr/bin/env bats
# Events in a real journald, queried with journalctl.

load helper

setup() {
	common_setup
	ensure_journald
}

# wait_journal SID - until the session's disconnect is in the journal (5 s at most)
wait_journal() {
	local i
	for i in $(seq 50); do
		[ "$(session_entries "$1" | jq -r .EVENT_TYPE | tail -1)" = disconnect ] && return 0
		sleep 0.1
	done
	return 1
}

# session_entries SID - the journal entries of one session
session_entries() {
	journalctl --no-pager -o json SESSION_ID="$1" 2>/dev/null
}

@test "every event of a session is in the journal with its fields" {
	run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'EHLO test.com\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@b.c> BODY=8BITMIME\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: j\r\n\r\nbody\r\n.\r\nFOO bar\r\nQUIT\r\n')
	assert_success
	sid=$(event_field connect session_id)
	wait_journal "$sid"
	entries=$(session_entries "$sid")
	[ "$(jq -r .EVENT_TYPE <<<"$entries" | tr '\n' ' ')" = \
	    "connect ehlo auth_attempt mail_from rcpt_to command message_accepted command command disconnect " ]
	# common fields on every entry
	[ "$(jq -r 'select(.SYSLOG_IDENTIFIER == "decky-smtpd" and .SRC == "unknown" and .SRC_PORT == "0"
	    and .DST == "unknown" and .PERSONA_HOSTNAME == "omega-decky" and (.MESSAGE_ID | length) == 32
	    and (.PRIORITY | length) == 1 and (.MESSAGE | length) > 0) | .EVENT_TYPE' <<<"$entries" | wc -l)" -eq 10 ]
	[ "$(jq -r 'select(.EVENT_TYPE == "ehlo") | .DOMAIN' <<<"$entries")" = test.com ]
	[ "$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .USERNAME + ":" + .PASSWORD + ":" + .MECHANISM' <<<"$entries")" = alice:s3cret:PLAIN ]
	[ "$(jq -r 'select(.EVENT_TYPE == "mail_from") | .VALUE + " " + .PARAMS' <<<"$entries")" = "a@b.c BODY=8BITMIME" ]
	[ "$(jq -r 'select(.EVENT_TYPE == "rcpt_to") | .VALUE' <<<"$entries")" = x@y.z ]
	m=$(jq -c 'select(.EVENT_TYPE == "message_accepted")' <<<"$entries")
	[ "$(jq -r .MAIL_FROM <<<"$m")" = a@b.c ]
	[ "$(jq -r .RCPT_TO <<<"$m")" = x@y.z ]
	[ "$(jq -r .BODY_BYTES <<<"$m")" = 20 ]
	[[ "$(jq -r .MSG_ID <<<"$m")" =~ ^[0-9A-F]+$ ]]
	[ -f "$(jq -r .SPOOL_FILE <<<"$m")" ]
	[ -f "$(jq -r .META_FILE <<<"$m")" ]
	[ "$(jq -r .RCPT_COUNT <<<"$m")" = 1 ]
	[ "$(jq -r .HDR_SUBJECT <<<"$m")" = j ]
	[ "$(jq -r .SHA256 <<<"$m")" = "$(sha256sum <"$(jq -r .SPOOL_FILE <<<"$m")" | cut -c1-64)" ]
	[ "$(jq -r '.DST_PORT' <<<"$m")" = 0 ]
	[ "$(jq -r 'select(.EVENT_TYPE == "command" and .COMMAND == "FOO") | .VALUE + "/" + .REPLY' <<<"$entries")" = "FOO bar/500" ]
	[ "$(jq -r 'select(.EVENT_TYPE == "disconnect") | .REASON' <<<"$entries")" = quit ]
}

@test "client bytes cannot forge journal fields or lines" {
	run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'EHLO evil\nEVENT_TYPE=forged\r\nQUIT\r\n')
	assert_success
	sid=$(event_field connect session_id)
	[ -n "$sid" ]
	wait_journal "$sid"
	[ -z "$(journalctl --no-pager -o json EVENT_TYPE=forged)" ]
	# the bare LF ended the EHLO line; the second line is an unknown command, logged as such
	[ "$(session_entries "$sid" | jq -r 'select(.EVENT_TYPE == "command") | .VALUE' | head -1)" = "EVENT_TYPE=forged" ]
}

@test "when journald cannot be reached, events go to the fallback JSON on stderr" {
	[ -d /run/systemd/journal ] || skip "no journald to hide"
	run unshare -m sh -c 'mount -t tmpfs none /run/systemd/journal && exec "$1" --log=journal 2>"$2" <"$3"' - \
	    "$DECKY" "$BATS_TEST_TMPDIR/stderr" <(printf 'EHLO x\r\nQUIT\r\n')
	assert_success
	[ "$(jq -r .event_type "$BATS_TEST_TMPDIR/stderr" | tr '\n' ' ')" = "connect ehlo command disconnect " ]
}

@test "a socket left by a dead journald refuses events, and they go to the fallback JSON" {
	[ -d /run/systemd/journal ] || skip "no journald to hide"
	# bind a datagram socket where journald's would be, then close it: the file stays, nobody reads
	run unshare -m sh -c 'mount -t tmpfs none /run/systemd/journal &&
	    python3 -c "import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(\"/run/systemd/journal/socket\"); s.close()" &&
	    test -S /run/systemd/journal/socket &&
	    exec "$1" --log=journal 2>"$2" <"$3"' - \
	    "$DECKY" "$BATS_TEST_TMPDIR/stderr" <(printf 'EHLO x\r\nQUIT\r\n')
	assert_success
	assert_line -n 0 --partial '220 omega-decky ESMTP'
	[ "$(jq -r .event_type "$BATS_TEST_TMPDIR/stderr" | tr '\n' ' ')" = "connect ehlo command disconnect " ]
}

# catalog_x CATALOG SID - journalctl -x over one session, with CATALOG as the only catalog,
# in a private mount namespace: the machine's catalog database is not touched
catalog_x() {
	mkdir -p "$BATS_TEST_TMPDIR/catalog"
	cp "$1" "$BATS_TEST_TMPDIR/catalog/decky-smtpd.catalog"
	unshare -m sh -c 'mkdir -p /var/lib/systemd/catalog &&
	    mount -t tmpfs none /var/lib/systemd/catalog &&
	    mount --bind "$1" /usr/lib/systemd/catalog &&
	    journalctl --update-catalog &&
	    journalctl --no-pager -x SESSION_ID="$2"' - "$BATS_TEST_TMPDIR/catalog" "$2"
}

@test "journalctl -x with the catalog shows no raw control byte of an ESC-laden credential" {
	[ "$(id -u)" -eq 0 ] || skip "needs root for a private mount namespace"
	user=$(printf '\033[31mevil\033]0;owned\007' | base64 -w0)
	pass=$(printf '\0\033[2J\033[31mred\r\n' | base64 -w0)
	plain=$(printf 'authz\033[1m\0u\033[5mx\0p\033[7m\x9b2J' | base64 -w0)
	run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'EHLO x\033[1my\r\nAUTH LOGIN\r\n%s\r\n%s\r\nAUTH PLAIN %s\r\nMAIL FROM:<\033[31m@x>\r\nQUIT\r\n' "$user" "$pass" "$plain")
	assert_success
	sid=$(event_field connect session_id)
	wait_journal "$sid"
	# the credential is in the journal with its ESC
	[ "$(journalctl -o export SESSION_ID="$sid" EVENT_TYPE=auth_attempt | grep -ac $'\033')" -ge 1 ]
	run catalog_x "$TOP/man/decky-smtpd.catalog" "$sid"
	assert_success
	assert_output --partial 'presented a credential with AUTH'
	assert_output --partial "SESSION_ID=$sid"
	printf '%s' "$output" | "$TESTS/no-control"
	# the check can fail: the catalog that substituted @USERNAME@ let the ESC through
	git -C "$TOP" show aa1bae7:man/decky-smtpd.catalog >"$BATS_TEST_TMPDIR/old.catalog" 2>/dev/null ||
	    skip "no old catalog in this checkout"
	run catalog_x "$BATS_TEST_TMPDIR/old.catalog" "$sid"
	assert_success
	run "$TESTS/no-control" <<<"$output"
	assert_failure
}

@test "the catalog substitutes only fields decky-smtpd makes itself" {
	# a client controls every other field; journalctl -x would write its bytes raw
	run sh -c "grep -v '^#' '$TOP/man/decky-smtpd.catalog' | grep -o '@[A-Z0-9_]*@' | sort -u | tr -d @ | tr '\n' ' '"
	assert_success
	for f in $output; do
		case $f in
		SRC | SRC_PORT | DST | DST_PORT | SESSION_ID | MSG_ID | SHA256 | BODY_BYTES | \
		    RCPT_COUNT | RESULT | REASON | TLS_RESULT | JA3_HASH | JA4) ;;
		*) echo "catalog substitutes $f" >&2; return 1 ;;
		esac
	done
	[ -n "$output" ]
}
