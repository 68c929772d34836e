#!/usr/bin/env bats
# Over real TCP on loopback, under systemd-socket-activate --inetd -a, with real clients.

load helper

setup() {
	common_setup
	start_activated
}

teardown() {
	stop_activated
}

@test "swaks sends a message through it and every event names the peer" {
	run swaks --server 127.0.0.1 --port "$PORT" --from attacker@evil.example \
	    --to victim@bank.example --header "Subject: swaks test" --body "relay me" --timeout 10
	assert_success
	assert_output --partial '<-  220 omega-decky ESMTP Postfix (Debian/GNU)'
	assert_output --regexp '<-  250 2.0.0 Ok: queued as [0-9A-F]+'
	wait_event disconnect
	[ "$(event_field connect src)" = 127.0.0.1 ]
	[[ "$(event_field connect src_port)" =~ ^[0-9]+$ ]]
	[ "$(event_field connect dst_port)" = "$PORT" ]
	[ "$(event_field message_accepted mail_from)" = attacker@evil.example ]
	[ "$(event_field message_accepted rcpt_to)" = victim@bank.example ]
	grep -q '^Subject: swaks test' "$(event_field message_accepted spool_file)"
	# one connection, one session id
	[ "$(jq -r .session_id "$EVENTS" | sort -u | wc -l)" -eq 1 ]
}

@test "Python's smtplib logs in and sends to three recipients" {
	run python3 - "$PORT" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.ehlo("bot.example")
    s.login("admin", "password123")
    refused = s.sendmail("spam@bot.example", ["a@x.example", "b@y.example", "c@z.example"],
                         b"Subject: smtplib\r\n\r\nbuy now\r\n")
    print("refused:", refused)
PY
	assert_success
	assert_output 'refused: {}'
	wait_event disconnect
	[ "$(event_field auth_attempt username)" = admin ]
	[ "$(event_field auth_attempt password)" = password123 ]
	[ "$(events rcpt_to | wc -l)" -eq 3 ]
	[ "$(event_field disconnect reason)" = quit ]
}

@test "the seed's nc check ends with 354, queued as, and Bye" {
	run bash -c "printf 'EHLO test.com\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nSubject: hello\r\n\r\nBody line 1\r\nBody line 2\r\n.\r\nQUIT\r\n' | nc -q 5 127.0.0.1 $PORT"
	assert_success
	assert_line -n -3 $'354 End data with <CR><LF>.<CR><LF>\r'
	assert_line -n -2 --regexp $'^250 2.0.0 Ok: queued as [0-9A-F]+\r$'
	assert_line -n -1 $'221 2.0.0 Bye\r'
}

@test "pipelined commands in one write are answered in order" {
	probe $'!b"EHLO a\\r\\nMAIL FROM:<a@b.c>\\r\\nRCPT TO:<x@y.z>\\r\\nDATA\\r\\n"\n?4\n!b"Subject: p\\r\\n\\r\\nx\\r\\n.\\r\\nQUIT\\r\\n"\n?2'
	assert_success
	assert_line $'S: 250 2.1.0 Ok\r'
	assert_line $'S: 250 2.1.5 Ok\r'
	assert_line $'S: 354 End data with <CR><LF>.<CR><LF>\r'
	assert_line --regexp $'^S: 250 2.0.0 Ok: queued as [0-9A-F]+\r$'
	assert_line $'S: 221 2.0.0 Bye\r'
	# nothing answered out of order: Bye is the last reply
	[ "${lines[-1]}" = $'S: 221 2.0.0 Bye\r' ]
}

@test "a client that vanishes ends the session cleanly with a disconnect event" {
	python3 - "$PORT" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(100)
s.sendall(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nhalf a message\r\n")
# a reset, not a polite close
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
PY
	wait_event disconnect
	[[ "$(event_field disconnect reason)" =~ ^(eof|read_error|write_error)$ ]]
	[ "$(event_field disconnect in_message)" = 1 ]
	! grep -q 'AddressSanitizer\|runtime error' "$BATS_TEST_TMPDIR/activate.log"
}
