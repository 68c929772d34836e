#!/usr/bin/env bats
# Hostile input: each case must get Postfix's reply, log its event, end with exactly
# one disconnect, and never crash, hang or grow (peak RSS is bounded).

load helper

setup() {
	common_setup
	IN=$BATS_TEST_TMPDIR/in
	# a sanitizer build carries shadow memory; the product's own bound is the first
	if [ -n "${DECKY_SANITIZED:-}" ]; then RSS_MAX=400000; else RSS_MAX=16000; fi
}

teardown() {
	stop_activated
}

# attack REPLY EVENT - the session on $IN; REPLY is a whole reply line that must be
# among the answers (or empty), EVENT an event type that must have been logged
attack() {
	run timeout 60 /usr/bin/time -f 'peak-rss %M' "$DECKY" --log=json:"$EVENTS" <"$IN"
	[ "$status" -eq 0 ]
	refute_output --partial Sanitizer
	refute_output --partial 'runtime error'
	rss=$(sed -n 's/^peak-rss //p' <<<"$output")
	echo "peak RSS ${rss} KiB"
	[ "$rss" -le "$RSS_MAX" ]
	[ -z "$1" ] || assert_line "$1"$'\r'
	[ -z "$2" ] || [ -n "$(events "$2")" ]
	[ "$(events disconnect | wc -l)" -eq 1 ]
}

# metered - the sessions start_activated runs from now on run under /usr/bin/time
metered() {
	local w=$BATS_TEST_TMPDIR/metered
	printf '#!/bin/sh\nexec /usr/bin/time -a -o %s -f "peak-rss %%M" %s "$@"\n' \
	    "$BATS_TEST_TMPDIR/rss" "$DECKY" >"$w"
	chmod +x "$w"
	DECKY=$w
}

# served_ok - each metered session has ended within RSS_MAX, and no sanitizer spoke
served_ok() {
	local i r
	for i in $(seq 100); do
		[ -s "$BATS_TEST_TMPDIR/rss" ] && break
		sleep 0.05
	done
	if grep 'Sanitizer\|runtime error' "$BATS_TEST_TMPDIR/activate.log"; then
		fail "a sanitizer spoke (activate.log)"
	fi
	r=$(sed -n 's/^peak-rss //p' "$BATS_TEST_TMPDIR/rss")
	echo "peak RSS ${r} KiB"
	[ -n "$r" ] && [ "$r" -le "$RSS_MAX" ]
}

# gen PYTHON-EXPR - write the bytes of a Python expression to $IN
gen() {
	python3 -c "import sys; sys.stdout.buffer.write($1)" >"$IN"
}

@test "10 MB with no newline: no reply (the line never ended), its head logged, the rest skipped" {
	gen 'b"A" * 10_000_000'
	attack '' command
	[ "$(printf '%s' "$output" | grep -c '^[0-9][0-9][0-9] ')" -eq 1 ]	# the 220 alone
	[ "$(event_field command reason)" = unterminated ]
	[ "$(event_field command value | wc -c)" -eq $((2048 + 1)) ]
	[ "$(event_field disconnect reason)" = eof ]
}

@test "10 MB with no newline, then a line end: one reply for the cut line" {
	gen 'b"A" * 10_000_000 + b"\r\nQUIT\r\n"'
	attack '500 5.5.2 Error: command not recognized' command
	assert_line -n 1 $'500 5.5.2 Error: command not recognized\r'
	[ "$(event_field disconnect reason)" = quit ]
}

@test "10 MB with no newline inside DATA is kept as a partial message" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n" + b"B" * 10_000_000'
	attack '354 End data with <CR><LF>.<CR><LF>' message_partial
	[ "$(event_field message_partial body_bytes)" -eq 10000000 ]
}

@test "NUL bytes" {
	gen 'b"\0\0\0\r\nNO\0OP\r\nNOOP\0 x\r\nQUIT\r\n"'
	attack '500 5.5.2 Error: bad syntax' command
	# a NUL ends the command, as in Postfix's C strings
	assert_line -n 2 $'500 5.5.2 Error: command not recognized\r'
	assert_line -n 3 $'250 2.0.0 Ok\r'
}

@test "0xFF bytes" {
	gen 'b"\xff\xfe\xfd\r\nEHLO \xff\r\nQUIT\r\n"'
	attack '500 5.5.2 Error: bad UTF-8 syntax' command
	[ "$(event_field command value_base64)" = "$(printf '\xff\xfe\xfd' | base64)" ]
}

@test "a TLS ClientHello" {
	gen 'bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00\x20" + bytes(range(0xc0, 0xe0)) + b"\x01\x00\n"'
	attack '500 5.5.2 Error: bad UTF-8 syntax' command
}

@test "an HTTP GET with headers" {
	gen 'b"GET / HTTP/1.1\r\nHost: decky\r\nUser-Agent: masscan\r\n\r\n"'
	attack '221 2.7.0 Error: I can break rules, too. Goodbye.' command
	[ "$(event_field command command)" = NON_SMTP ]
	[ "$(event_field disconnect reason)" = non_smtp ]
}

@test "an HTTP POST" {
	gen 'b"POST /cgi-bin/x HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"'
	attack '221 2.7.0 Error: I can break rules, too. Goodbye.' command
}

@test "a proxy CONNECT probe" {
	gen 'b"CONNECT 10.0.0.1:25 HTTP/1.0\r\n\r\n"'
	attack '221 2.7.0 Error: I can break rules, too. Goodbye.' command
}

@test "format strings in HELO" {
	gen 'b"HELO %s%n%x%p%999999d\r\nQUIT\r\n"'
	attack '250 omega-decky' ehlo
	[ "$(event_field ehlo domain)" = '%s%n%x%p%999999d' ]
}

@test "format strings in MAIL and RCPT" {
	gen 'b"MAIL FROM:<%n@%s>\r\nMAIL FROM:<%n%s@x.y>\r\nRCPT TO:<%x%x@%n>\r\nQUIT\r\n"'
	attack '501 5.1.7 Bad sender address syntax' command
	assert_line -n 2 $'250 2.1.0 Ok\r'
	assert_line -n 3 $'501 5.1.3 Bad recipient address syntax\r'
	[ "$(event_field mail_from value)" = '%n%s@x.y' ]
}

@test "format strings in AUTH credentials" {
	gen 'b"AUTH PLAIN " + __import__("base64").b64encode(b"\0%s%n\0%x%p") + b"\r\nQUIT\r\n"'
	attack '235 2.7.0 Authentication successful' auth_attempt
	[ "$(event_field auth_attempt username)" = '%s%n' ]
}

@test "terminal escapes in HELO reach the event as bytes and the MESSAGE escaped" {
	gen 'b"HELO \x1b[2J\x1b]0;pwned\x07\r\nQUIT\r\n"'
	attack '250 omega-decky' ehlo
	[ "$(event_field ehlo domain)" = $'\e[2J\e]0;pwned\a' ]
	[[ "$(event_field ehlo message)" == *'\x1b[2J\x1b]0;pwned\x07'* ]]
}

@test "terminal escapes in an AUTH LOGIN user name" {
	gen 'b"AUTH LOGIN\r\n" + __import__("base64").b64encode(b"\x1b[31mroot") + b"\r\ncGFzcw==\r\nQUIT\r\n"'
	attack '235 2.7.0 Authentication successful' auth_attempt
	[ "$(event_field auth_attempt username)" = $'\e[31mroot' ]
}

@test "CR-only lines run together into one command" {
	gen 'b"EHLO x\rMAIL FROM:<a@b.c>\rRCPT TO:<x@y.z>\rQUIT\r"'
	# no LF ever came: like Postfix, no answer; the line is kept as evidence
	attack '' command
	[ "$(printf '%s' "$output" | grep -c '^[0-9][0-9][0-9] ')" -eq 1 ]
	[ "$(event_field command value)" = $'EHLO x\rMAIL FROM:<a@b.c>\rRCPT TO:<x@y.z>\rQUIT\r' ]
	[ "$(event_field command reason)" = unterminated ]
	[ "$(event_field disconnect reason)" = eof ]
}

@test "CR-only lines with a final LF run together into one command" {
	gen 'b"EHLO x\rMAIL FROM:<a@b.c>\rQUIT\r\n"'
	attack '250-omega-decky' ehlo
	[ "$(event_field disconnect reason)" = eof ]
}

@test "a huge SIZE=" {
	gen 'b"MAIL FROM:<a@b.c> SIZE=" + b"9" * 5000 + b"\r\nQUIT\r\n"'
	attack '' command
	# the line is cut at 2048 bytes, still all digits: more than any file holds
	assert_line -n 1 $'552 5.3.4 Message size exceeds file system imposed limit\r'
}

@test "a huge BDAT count hangs up as Postfix does" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 99999999999999999999999 LAST\r\nxyz"'
	attack '521 5.5.4 Syntax: BDAT count [LAST]' command
	[ "$(event_field disconnect reason)" = protocol_error ]
}

@test "a BDAT of a gigabyte that never comes" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 1000000000 LAST\r\n" + b"C" * 100000'
	attack '250 2.1.5 Ok' message_partial
	[ "$(event_field message_partial reason)" = eof ]
	[ "$(event_field message_partial body_bytes)" -eq 100000 ]
}

@test "BDAT past the size limit: 552, then 551 up to LAST, the bytes kept" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 200\r\n" + b"D" * 200 + b"BDAT 3\r\nabcBDAT 2 LAST\r\nokRCPT TO:<q@y.z>\r\nQUIT\r\n"'
	SMTP_SIZE_LIMIT=100 attack '552 5.3.4 Chunk exceeds message size limit' message_partial
	assert_line -n 4 $'551 5.0.0 Discarded 3 bytes after earlier error\r'
	assert_line -n 5 $'551 5.0.0 Discarded 2 bytes after earlier error\r'
	assert_line -n 6 $'503 5.5.1 Error: need MAIL command\r'
	[ "$(event_field message_partial reason)" = too_big ]
	[ "$(stat -c %s "$(event_field message_partial spool_file)")" -eq 205 ]
}

@test "20000 pipelined NOOPs reach the junk limit, then the error limit" {
	gen 'b"NOOP\r\n" * 20000'
	attack '421 4.7.0 omega-decky Error: too many errors' command
	[ "$(grep -c '^250 2.0.0 Ok' <<<"$output")" -eq 121 ]
}

@test "20000 pipelined RCPTs: 1000 taken, 1000 told 452, then 20 more that are errors and 421" {
	gen 'b"MAIL FROM:<a@b.c>\r\n" + b"RCPT TO:<x@y.z>\r\n" * 20000 + b"QUIT\r\n"'
	attack '421 4.7.0 omega-decky Error: too many errors' rcpt_to
	[ "$(grep -c '^452 4.5.3 Error: too many recipients' <<<"$output")" -eq 1020 ]
	[ "$(events rcpt_to | wc -l)" -eq 1000 ]
}

@test "a million bare LFs: 20 errors, then 421" {
	gen 'b"\n" * 1_000_000'
	attack '421 4.7.0 omega-decky Error: too many errors' command
}

@test "a line of 5000 spaces" {
	gen 'b" " * 5000 + b"\r\nQUIT\r\n"'
	attack '500 5.5.2 Error: bad syntax' command
}

@test "an over-long AUTH initial response" {
	gen 'b"AUTH PLAIN " + b"QUFB" * 1250 + b"\r\nQUIT\r\n"'
	attack '535 5.7.8 Error: authentication failed: Invalid base64 data in initial response' command
}

@test "an AUTH LOGIN answer over smtpd_sasl_response_limit gets 500, its first 12288 bytes logged" {
	gen 'b"AUTH LOGIN\r\nYWRtaW4=\r\n" + b"QUFB" * 5000 + b"\r\nNOOP\r\nQUIT\r\n"'
	attack '500 5.5.6 SASL response limit exceeded' auth_attempt
	assert_line -n 3 $'500 5.5.6 SASL response limit exceeded\r'
	assert_line -n 4 $'250 2.0.0 Ok\r'
	[ "$(event_field auth_attempt result)" = too_long ]
	[ "$(event_field auth_attempt username)" = admin ]
	[ "$(event_field auth_attempt raw)" = "YWRtaW4= $(printf 'QUFB%.0s' $(seq 3072))" ]
}

@test "AUTH PLAIN of padding only" {
	gen 'b"AUTH PLAIN " + b"=" * 100 + b"\r\nQUIT\r\n"'
	attack '535 5.7.8 Error: authentication failed: Invalid base64 data in initial response' command
}

@test "a 3000-byte sender" {
	gen 'b"MAIL FROM:<" + b"a" * 3000 + b"@b.c>\r\nQUIT\r\n"'
	attack '501 5.1.7 Bad sender address syntax' command
}

@test "a 3000-byte VRFY: the echo is bounded by the line limit, as Postfix's (fidelity 155)" {
	gen 'b"VRFY " + b"v" * 3000 + b"\r\nQUIT\r\n"'
	attack '' command
	# 2043 v's (2048 bytes of line less "VRFY "), framed as Postfix frames them
	[ "${lines[1]}" = "550 5.1.1 <$(printf 'v%.0s' $(seq 2043))>: Recipient address rejected: User unknown in local recipient table"$'\r' ]
}

@test "NUL and bare CR inside a message are stored as sent" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\na\0b\rc\r\n.\r\nQUIT\r\n"'
	attack '221 2.0.0 Bye' message_accepted
	cmp "$(event_field message_accepted spool_file)" <(printf 'a\0b\rc\r\n')
}

@test "a NUL in an address" {
	gen 'b"MAIL FROM:<a\0@b.c>\r\nQUIT\r\n"'
	attack '501 5.1.7 Bad sender address syntax' command
}

@test "a header line instead of a command" {
	gen 'b"Subject: free money\r\nFrom: x\r\n"'
	attack '221 2.7.0 Error: I can break rules, too. Goodbye.' command
}

@test "AUTH, RSET and VRFY with 8-bit and control bytes together" {
	gen 'b"VRFY \x01\x02\r\nRSET \x7f\r\nETRN \x1b\r\nAUTH \x00PLAIN\r\nQUIT\r\n"'
	attack '221 2.0.0 Bye' command
}

@test "a client that never reads its replies is cut off" {
	metered
	SMTP_TIMEOUT=2 start_activated SMTP_TIMEOUT
	run timeout 30 python3 - "$PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(1)
# EHLO is a junk command: a message accepted every 100 clears the count, as Postfix
block = b"EHLO never.reads\r\n" * 100 + \
    b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n.\r\n"
sent = 0
try:
    while sent < 20_000_000:
        sent += s.send(block * 10)
except (socket.timeout, OSError):
    pass
time.sleep(5)
print("sent", sent)
PY
	assert_success
	wait_event disconnect
	[[ "$(event_field disconnect reason)" =~ ^(timeout|write_error)$ ]]
	# it was answered as long as it read: the first EHLOs were, and none was refused
	[ "$(events command | jq -r '.reply // empty' | grep -c '^[45]')" -eq 0 ]
	[ "$(events ehlo | wc -l)" -ge 1 ]
	served_ok
}

@test "a slow client, a byte a second, meets the session's wall time" {
	metered
	SMTP_TIMEOUT=2 SMTP_SESSION_TIME=3 start_activated SMTP_TIMEOUT SMTP_SESSION_TIME
	run timeout 30 python3 - "$PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
got = b""
for c in b"EHLO slow.example\r\n" * 10:
    try:
        s.send(bytes([c]))
    except OSError:
        break
    time.sleep(1)
    s.setblocking(False)
    try:
        got += s.recv(65536)
    except BlockingIOError:
        pass
    except OSError:
        break
    s.setblocking(True)
    if b"421" in got:
        break
print(got.decode(errors="replace"))
PY
	assert_success
	assert_output --partial '421 4.4.2 omega-decky Error: timeout exceeded'
	wait_event disconnect
	[ "$(event_field disconnect reason)" = session_time ]
	served_ok
}

@test "failed logins count as errors: the 20th ends the session" {
	gen 'b"AUTH PLAIN AAAA\r\n" * 25'
	attack '421 4.7.0 omega-decky Error: too many errors' auth_attempt
	[ "$(grep -c '^535 ' <<<"$output")" -eq 20 ]
	[ "$(events auth_attempt | wc -l)" -eq 20 ]
	[ "$(event_field disconnect reason)" = too_many_errors ]
}

@test "a client that sends more than session-bytes is cut off" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n" + b"E" * 200000'
	SMTP_SESSION_BYTES=100000 attack '421 4.4.2 omega-decky Error: timeout exceeded' message_partial
	[ "$(event_field disconnect reason)" = session_bytes ]
	[ "$(event_field message_partial reason)" = session_bytes ]
}

@test "a spool write past the file size limit (RLIMIT_FSIZE) is Postfix's 451, not a crash" {
	gen 'b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n" + b"y" * 200000 + b"\r\n.\r\nQUIT\r\n"'
	run bash -c 'ulimit -f 50; "$0" --log=json:"$1" <"$2"' "$DECKY" "$EVENTS" "$IN"
	assert_success
	assert_line $'451 4.3.0 Error: queue file write error\r'
	[ "$(event_field message_partial reason)" = write_error ]
	[ "$(event_field disconnect reason)" = quit ]
}
