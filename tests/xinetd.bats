#!/usr/bin/env bats
# Under a real xinetd (in the foreground), where stderr is the connection itself.

load helper

setup() {
	common_setup
	command -v xinetd >/dev/null || skip "xinetd is not installed"
	PORT=$(free_port)
	conf=$BATS_TEST_TMPDIR/xinetd.conf
	cat >"$conf" <<CONF
service decky-smtpd-test
{
	type		= UNLISTED
	port		= $PORT
	bind		= 127.0.0.1
	socket_type	= stream
	protocol	= tcp
	wait		= no
	user		= root
	server		= $DECKY
	server_args	= --log=journal,json:$EVENTS
	env		= SMTP_HOSTNAME=omega-decky SMTP_SPOOL=$SMTP_SPOOL SMTP_ERROR_SLEEP=0
	instances	= 10
	per_source	= 5
	log_type	= FILE $BATS_TEST_TMPDIR/service.log
$(grep -E '^[[:space:]]*log_on_(success|failure)' "$TOP/units/decky-smtpd.xinetd")
}
CONF
}

# start_xinetd [WRAPPER...] - xinetd in the foreground, optionally under a wrapper
start_xinetd() {
	"$@" xinetd -dontfork -f "$conf" -pidfile "$BATS_TEST_TMPDIR/xinetd.pid" \
	    2>"$BATS_TEST_TMPDIR/xinetd.log" &
	XINETD=$!
	wait_port "$PORT"
}

# no_journal CMD... - run CMD with journald's socket hidden (a private mount namespace)
no_journal() {
	if [ -d /run/systemd/journal ]; then
		unshare -m sh -c 'mount -t tmpfs none /run/systemd/journal && exec "$@"' - "$@"
	else
		"$@"
	fi
}

# teardown - stop xinetd: by its pid file too, since under no_journal $XINETD is the
# subshell that runs it, and killing that alone left xinetd listening
teardown() {
	local pidfile=$BATS_TEST_TMPDIR/xinetd.pid

	[ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
	[ -n "${XINETD:-}" ] && kill "$XINETD" 2>/dev/null && wait "$XINETD" 2>/dev/null
	return 0
}

@test "a session under xinetd is answered and logged with the peer's address" {
	start_xinetd
	probe $'EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<x@y.z>\nDATA\n!b"hi\\r\\n.\\r\\n"\n?1\nQUIT'
	assert_success
	assert_line --index 0 $'S: 220 omega-decky ESMTP Postfix (Debian/GNU)\r'
	assert_line --regexp $'^S: 250 2.0.0 Ok: queued as [0-9A-F]+\r$'
	assert_line $'S: 221 2.0.0 Bye\r'
	wait_event disconnect
	[ "$(event_field connect src)" = 127.0.0.1 ]
	[ "$(event_field connect dst_port)" = "$PORT" ]
	[ "$(event_field message_accepted rcpt_to)" = x@y.z ]
}

@test "nothing but SMTP replies reaches the client, even when journald refuses events" {
	# journald is hidden from the session; under xinetd stderr is the socket, so the
	# refused events must go to the fallback file and never to the client
	[ "$(id -u)" -eq 0 ] || skip "hiding journald needs a mount namespace (root)"
	start_xinetd no_journal
	probe $'NOOP\nQUIT'
	assert_output "$(printf 'S: 220 omega-decky ESMTP Postfix (Debian/GNU)\r\nC: NOOP\nS: 250 2.0.0 Ok\r\nC: QUIT\nS: 221 2.0.0 Bye\r')"
	wait_event disconnect
	# the journal's copy went to the fallback file in the spool: connect, NOOP, QUIT, disconnect
	fallback=$SMTP_SPOOL/events.json
	[ "$(jq -r .event_type "$fallback" | tr '\n' ' ')" = "connect command command disconnect " ]
}

@test "xinetd's per_source cap refuses a burst beyond it" {
	start_xinetd
	run timeout 20 python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(5):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    held.append(s)
    time.sleep(0.2)
greeted = 0
for s in held:
    try:
        if s.recv(100).startswith(b"220 "):
            greeted += 1
    except OSError:
        pass
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(3)
try:
    refused = extra.recv(100) == b""
except OSError:
    refused = True
print("greeted", greeted, "refused", refused)
PY
	assert_success
	# per_source = 5: five sessions, and a sixth from the same source is closed at once
	assert_output 'greeted 5 refused True'
	# and xinetd, with the shipped entry's log_on_failure, records the refusal
	grep -E 'FAIL: decky-smtpd-test per_source_limit from=127\.0\.0\.1' "$BATS_TEST_TMPDIR/service.log"
	# which goes to syslog, the journal, in the shipped entry
	grep -Eq '^[[:space:]]*log_type[[:space:]]*=[[:space:]]*SYSLOG' "$TOP/units/decky-smtpd.xinetd"
}

@test "under xinetd the settings are its own environment and the env = line's, and connect says so" {
	# xinetd started from here inherits this variable and passes it on, beside env =
	# (xinetd.service under systemd starts with an empty environment)
	export SMTP_RELAY=deny
	start_xinetd
	probe $'EHLO x\nMAIL FROM:<a@b.c>\nRCPT TO:<v@example.org>\nQUIT'
	assert_line $'S: 454 4.7.1 <v@example.org>: Relay access denied\r'
	wait_event disconnect
	[ "$(event_field connect persona_sources)" = "hostname=env auth-failure-delay=env relay=env error-sleep=env greeting-delay=env spool=env log=option" ]
}
