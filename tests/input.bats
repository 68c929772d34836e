#!/usr/bin/env bats
# Odd and hostile input: line ends, long lines, NUL and 8-bit bytes, EOF anywhere, size.

load helper

setup() {
	common_setup
}

@test "bare LF ends command lines and a bare-LF dot ends DATA" {
	smtp_raw 'EHLO x.com\nMAIL FROM:<a@b.c>\nRCPT TO:<x@y.z>\nDATA\nSubject: t\n\nhello\n.\nNOOP\nQUIT\n'
	assert_line -n 16 --regexp '^250 2.0.0 Ok: queued as '
	assert_line -n 17 $'250 2.0.0 Ok\r'
	assert_line -n 18 $'221 2.0.0 Bye\r'
	# the evidence keeps the client's own line ends
	cmp "$(event_field message_accepted spool_file)" <(printf 'Subject: t\n\nhello\n')
}

@test "a bare CR is white space in a command, and data in a body" {
	smtp_raw 'NOOP\rNOOP\r\nMAIL FROM:<a@b.c>\rx\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nhello\r.\r\nstill\r\n.\r\nQUIT\r\n'
	assert_line -n 1 $'250 2.0.0 Ok\r'
	assert_line -n 2 $'555 5.5.4 Unsupported option: x\r'
	assert_line -n 6 --regexp '^250 2.0.0 Ok: queued as '
	cmp "$(event_field message_accepted spool_file)" <(printf 'hello\r.\r\nstill\r\n')
}

@test "an over-long command line gets one reply and the session goes on" {
	long=$(head -c 5000 /dev/zero | tr '\0' A)
	smtp "NOOP $long" "XXXX$long" NOOP QUIT
	assert_success
	assert_line -n 1 $'250 2.0.0 Ok\r'
	assert_line -n 2 $'500 5.5.2 Error: command not recognized\r'
	assert_line -n 3 $'250 2.0.0 Ok\r'
	assert_line -n 4 $'221 2.0.0 Bye\r'
	[ "${#lines[@]}" -eq 5 ]
	# the event keeps what was read of the line, bounded
	v=$(event_field command value 1)
	[ "${#v}" -le 2048 ] && [ "${#v}" -ge 2000 ]
}

@test "long body lines are stored whole" {
	long=$(head -c 100000 /dev/zero | tr '\0' B)
	smtp "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "$long" ".$long" . QUIT
	assert_line -n 4 --regexp '^250 2.0.0 Ok: queued as '
	cmp "$(event_field message_accepted spool_file)" <(printf '%s\r\n%s\r\n' "$long" "$long")
}

@test "a NUL ends a command; 8-bit bytes are bad UTF-8 unless they are UTF-8" {
	smtp_raw 'NOOP\0x\r\n\0\r\nEHLO \xff\xfe\r\nMAIL FROM:<\xc3\xa9@b.c> SMTPUTF8\r\nQUIT\r\n'
	assert_line -n 1 $'250 2.0.0 Ok\r'
	assert_line -n 2 $'500 5.5.2 Error: bad syntax\r'
	assert_line -n 3 $'500 5.5.2 Error: bad UTF-8 syntax\r'
	assert_line -n 4 $'250 2.1.0 Ok\r'
	[ "$(event_field mail_from value)" = "$(printf '\xc3\xa9@b.c')" ]
	[ "$(event_field command value_base64 2)" = "$(printf 'EHLO \xff\xfe' | base64)" ]
}

@test "EOF in the middle of DATA ends the session with a disconnect event and no message" {
	smtp_raw 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: cut\r\npartial line'
	assert_success
	assert_line -n 15 $'354 End data with <CR><LF>.<CR><LF>\r'
	[ "$(event_field disconnect reason)" = eof ]
	[ "$(event_field disconnect in_message)" = 1 ]
	[ -z "$(events message_accepted)" ]
	[ -z "$(ls "$SMTP_SPOOL/new")" ] && [ -z "$(ls "$SMTP_SPOOL/tmp")" ]
}

@test "EOF in every state ends cleanly with one disconnect event" {
	for input in '' 'EHLO x' 'EHLO x\r\nMAIL FROM:<a@b.c>' 'AUTH LOGIN\r\n' 'AUTH LOGIN\r\nYQ==\r\n' \
	    'MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 100\r\nabc'; do
		: >"$EVENTS"
		smtp_raw "$input"
		assert_success
		[ "$(events disconnect | wc -l)" -eq 1 ]
		[ "$(event_field disconnect reason)" = eof ]
	done
}

@test "an idle client is cut off after the timeout with Postfix's 421" {
	SMTP_TIMEOUT=1 run bash -c 'sleep 2 | "$1" --log=json:"$2"' - "$DECKY" "$EVENTS"
	assert_success
	assert_line -n 1 $'421 4.4.2 omega-decky Error: timeout exceeded\r'
	[ "$(event_field disconnect reason)" = timeout ]
}

@test "a 50 MB message leaves peak memory where a 1 KB one leaves it" {
	[ -z "${DECKY_SANITIZED:-}" ] || skip "peak RSS of a sanitizer build is not the product's"
	gen() {	# a session with a body of $1 bytes in 1000-byte lines, some dot-stuffed
		printf 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n'
		python3 -c "
import sys
n = $1 // 1000
line = b'.' + b'x' * 997 + b'\r\n'
sys.stdout.buffer.write(line * n)"
		printf '.\r\nQUIT\r\n'
	}
	rss() { /usr/bin/time -f %M "$DECKY" --log=json:"$EVENTS" --size-limit=60000000 \
	    < <(gen "$1") 2>&1 >/dev/null | tail -1; }
	small=$(rss 1000)
	big=$(rss 50000000)
	echo "peak RSS: 1 KB body ${small} KiB, 50 MB body ${big} KiB"
	[ "$big" -le $((small + 512)) ]
	[ "$(event_field message_accepted body_bytes 1)" -eq 49950000 ]
}

@test "SIGTERM (a unit's RuntimeMaxSec=) ends the session with a disconnect event" {
	SMTP_TIMEOUT=30 "$DECKY" --log=json:"$EVENTS" < <(printf 'EHLO x\r\n'; sleep 30) >/dev/null &
	pid=$!
	wait_event ehlo
	kill -TERM "$pid"
	wait "$pid"
	[ "$(event_field disconnect reason)" = terminated ]
}
