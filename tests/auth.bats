#!/usr/bin/env bats
# AUTH (RFC 4954): every well-formed credential is accepted and logged.

load helper

setup() {
	common_setup
}

teardown() {
	stop_activated
}

@test "AUTH PLAIN with an initial response is accepted and logged" {
	# authzid "", user alice, password s3cret
	smtp "EHLO x" "AUTH PLAIN AGFsaWNlAHMzY3JldA==" QUIT
	assert_line -n 13 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt mechanism)" = PLAIN ]
	[ "$(event_field auth_attempt username)" = alice ]
	[ "$(event_field auth_attempt password)" = s3cret ]
	[ "$(event_field auth_attempt result)" = accepted ]
}

@test "AUTH PLAIN without an initial response prompts with an empty 334" {
	# authzid admin, user bob, password hunter2
	smtp "EHLO x" "AUTH PLAIN" "$(printf 'admin\0bob\0hunter2' | base64)" QUIT
	assert_line -n 13 $'334 \r'
	assert_line -n 14 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt authzid)" = admin ]
	[ "$(event_field auth_attempt username)" = bob ]
	[ "$(event_field auth_attempt password)" = hunter2 ]
}

@test "AUTH LOGIN asks for the user name, then the password" {
	smtp "EHLO x" "AUTH LOGIN" "$(printf root | base64)" "$(printf toor | base64)" QUIT
	assert_line -n 13 $'334 VXNlcm5hbWU6\r'
	assert_line -n 14 $'334 UGFzc3dvcmQ6\r'
	assert_line -n 15 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt mechanism)" = LOGIN ]
	[ "$(event_field auth_attempt username)" = root ]
	[ "$(event_field auth_attempt password)" = toor ]
}

@test "AUTH LOGIN with the user name as initial response asks only for the password" {
	smtp "AUTH LOGIN YWxpY2U=" "czNjcmV0" QUIT
	assert_line -n 1 $'334 UGFzc3dvcmQ6\r'
	assert_line -n 2 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt username)" = alice ]
}

@test "cancel, bad base64, unknown mechanisms and a second AUTH get Postfix's replies" {
	smtp "EHLO x" "AUTH LOGIN" "*" "AUTH PLAIN" "!!!" "AUTH PLAIN *" "AUTH CRAM-MD5" AUTH \
	    "AUTH PLAIN =" "AUTH PLAIN AGFsaWNlAHMzY3JldA==" "AUTH PLAIN AGFsaWNlAHMzY3JldA==" QUIT
	assert_line -n 14 $'501 5.7.0 Authentication aborted\r'
	assert_line -n 16 $'535 5.7.8 Error: authentication failed: Invalid base64 data in continued response\r'
	assert_line -n 17 $'535 5.7.8 Error: authentication failed: Invalid base64 data in initial response\r'
	assert_line -n 18 $'535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r'
	assert_line -n 19 $'501 5.5.4 Syntax: AUTH mechanism\r'
	assert_line -n 20 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 21 $'235 2.7.0 Authentication successful\r'
	assert_line -n 22 $'503 5.5.1 Error: already authenticated\r'
	# before any user name, "*" and bad base64 are command events, not credentials
	[ "$(events auth_attempt | jq -r .result | xargs)" = "rejected accepted" ]
	[ "$(events command | jq -r 'select(.command == "AUTH") | .value' | head -2 | xargs)" = '* !!!' ]
}

@test "an AUTH LOGIN user name is kept when the dialogue is aborted or the client leaves" {
	smtp "AUTH LOGIN" "$(printf admin | base64)" "*" "AUTH LOGIN $(printf root | base64)"
	assert_line -n 3 $'501 5.7.0 Authentication aborted\r'
	assert_line -n 4 $'334 UGFzc3dvcmQ6\r'
	[ "$(events auth_attempt | jq -r '[.username, .result] | join(":")' | xargs)" = "admin:aborted root:incomplete" ]
	[ "$(event_field disconnect reason)" = eof ]
}

@test "an AUTH response up to smtpd_sasl_response_limit is taken whole" {
	pw=$(head -c 9213 /dev/zero | tr '\0' P)
	smtp "AUTH LOGIN" "$(printf admin | base64)" "$(printf '%s' "$pw" | base64 -w0)" QUIT
	assert_line -n 3 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt password)" = "$pw" ]
	[ "$(event_field auth_attempt raw | wc -c)" -eq $((9 + 12284 + 1)) ]
}

@test "AUTH inside a mail transaction is refused, before the already-authenticated check" {
	smtp "EHLO x" "MAIL FROM:<a@b.c>" "AUTH PLAIN AGFsaWNlAHMzY3JldA==" RSET \
	    "AUTH PLAIN AGFsaWNlAHMzY3JldA==" "MAIL FROM:<a@b.c>" "AUTH PLAIN AGFsaWNlAHMzY3JldA==" QUIT
	assert_line -n 14 $'503 5.5.1 Error: MAIL transaction in progress\r'
	assert_line -n 16 $'235 2.7.0 Authentication successful\r'
	assert_line -n 18 $'503 5.5.1 Error: MAIL transaction in progress\r'
	[ "$(events auth_attempt | wc -l)" -eq 1 ]
}

@test "a password with 8-bit bytes reaches the event intact" {
	smtp "AUTH PLAIN $(printf '\0u\0p\xe9\xff' | base64)" QUIT
	assert_line -n 1 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt password_base64)" = "$(printf 'p\xe9\xff' | base64)" ]
}

@test "a CRAM-MD5 answer without a 32-digit hex digest is malformed, and refused" {
	export SMTP_AUTH_MECHANISMS="CRAM-MD5"
	smtp "AUTH CRAM-MD5" "$(printf 'tim %s' "$(printf 'z%.0s' $(seq 32))" | base64 -w0)" \
	    "AUTH CRAM-MD5" "$(printf 'tim %s' "$(printf 'a%.0s' $(seq 31))" | base64 -w0)" \
	    "AUTH CRAM-MD5" "$(printf 'tim %s' "$(printf 'a%.0s' $(seq 32))" | base64 -w0)" QUIT
	assert_line -n 2 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 4 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 6 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt result 0)" = rejected ]
	[ "$(event_field auth_attempt digest 2)" = "$(printf 'a%.0s' $(seq 32))" ]
}

# plain CREDS... - "AUTH PLAIN" lines for user/password pairs given as user:password
plain() {
	local c
	for c in "$@"; do
		printf 'AUTH PLAIN %s\n' "$(printf '\0%s\0%s' "${c%%:*}" "${c#*:}" | base64 -w0)"
	done
}

@test "auth-policy weak refuses a random credential and takes what a badly run server would" {
	printf '# the operator'"'"'s\nsales2:Summer2026!\n' >"$BATS_TEST_TMPDIR/weak"
	export SMTP_AUTH_POLICY=weak SMTP_AUTH_WEAK_FILE=$BATS_TEST_TMPDIR/weak
	for c in k3j4h5:Zx9q2LmP admin:admin jdoe:jdoe sales2:Summer2026! sales2:summer2026!; do
		: >"$EVENTS"
		mapfile -t lines < <(plain "$c")
		smtp "EHLO x" "${lines[0]}" QUIT
		case $c in
		k3j4h5:*|*:summer2026!)
			assert_line -n 13 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
			[ "$(event_field auth_attempt result)" = rejected ] ;;
		*)
			assert_line -n 13 $'235 2.7.0 Authentication successful\r'
			[ "$(event_field auth_attempt result)" = accepted ] ;;
		esac
		[ "$(event_field auth_attempt username)" = "${c%%:*}" ]
		[ "$(event_field auth_attempt password)" = "${c#*:}" ]
	done
	# LOGIN and CRAM-MD5 (its digest checked against the weak passwords) alike
	smtp "EHLO x" "AUTH LOGIN" "$(printf root | base64)" "$(printf toor | base64)" QUIT
	assert_line -n 15 $'235 2.7.0 Authentication successful\r'
	: >"$EVENTS"
	export SMTP_AUTH_MECHANISMS="PLAIN LOGIN CRAM-MD5"
	run python3 - "$DECKY" "$EVENTS" <<'PY'
import base64, hmac, subprocess, sys
for user, pw in ((b"guest", b"guest"), (b"guest", b"nope")):
    p = subprocess.Popen([sys.argv[1], "--log=json:" + sys.argv[2]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    def line(b):
        p.stdin.write(b + b"\r\n"); p.stdin.flush()
    def reply():
        while True:
            l = p.stdout.readline()
            if l[3:4] != b"-":
                return l
    reply(); line(b"EHLO x"); reply()
    line(b"AUTH CRAM-MD5")
    chal = base64.b64decode(reply()[4:].strip())
    line(base64.b64encode(user + b" " + hmac.new(pw, chal, "md5").hexdigest().encode()))
    print(reply().decode().strip())
    line(b"QUIT"); reply(); p.wait()
PY
	assert_line -n 0 '235 2.7.0 Authentication successful'
	assert_line -n 1 '535 5.7.8 Error: authentication failed: (reason unavailable)'
	[ "$(events auth_attempt | jq -r '.mechanism + " " + .username + " " + .result' | xargs)" = "CRAM-MD5 guest accepted CRAM-MD5 guest rejected" ]
}

@test "auth-succeed-after lets the Nth credential of a session in, whatever it is" {
	export SMTP_AUTH_POLICY=reject SMTP_AUTH_SUCCEED_AFTER=3
	mapfile -t lines < <(plain a:1 b:2 c:3 d:4)
	smtp "EHLO x" "${lines[@]}" QUIT
	assert_line -n 13 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 14 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 15 $'235 2.7.0 Authentication successful\r'
	assert_line -n 16 $'503 5.5.1 Error: already authenticated\r'
	[ "$(events auth_attempt | jq -r '.username + "=" + .result' | xargs)" = "a=rejected b=rejected c=accepted" ]
}

# timed DELAY_MS CREDS... - one activated session; the seconds each AUTH PLAIN took
timed() {
	python3 - "$PORT" "$@" <<'PY'
import base64, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
reply(); s.sendall(b"EHLO x\r\n"); reply()
for c in sys.argv[2:]:
    u, p = c.split(":", 1)
    t = time.monotonic()
    s.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0" + u.encode() + b"\0" + p.encode()) + b"\r\n")
    r = reply()
    print("%.2f %s" % (time.monotonic() - t, r[:3].decode()))
PY
}

# took LINE LO HI CODE - LINE of timed ("SECONDS CODE") came after LO..HI s, with CODE
took() {
	awk -v t="${1% *}" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
	    fail "reply '$1': ${1% *} s is not within $2..$3 s"
	[ "${1#* }" = "$4" ] || fail "reply '$1': code ${1#* } is not $4"
}

@test "failures take Dovecot's time: the delay, a penalty that grows to 454, across connections" {
	SMTP_AUTH_POLICY=reject start_activated SMTP_AUTH_POLICY SMTP_AUTH_FAILURE_DELAY=1000
	# measured on the reference with its 2 s: 2, 6, 10, then 454 after 10 s
	run timed a:1 a:2 a:3 a:4
	assert_success
	mapfile -t t <<<"$output"
	[ "${#t[@]}" -eq 4 ] || fail "not four replies: $output"
	took "${t[0]}" 0.4 1.2 535
	took "${t[1]}" 4.4 5.2 535
	took "${t[2]}" 8.4 9.2 535
	took "${t[3]}" 9.9 10.5 454
	[ "$(events auth_attempt | jq -r .result | xargs)" = "rejected rejected rejected tempfail" ]
	stop_activated || true
	# a new connection from the same address after one failure meets the penalty
	rm -f "$SMTP_SPOOL/.penalty"
	SMTP_AUTH_POLICY=reject start_activated SMTP_AUTH_POLICY SMTP_AUTH_FAILURE_DELAY=1000
	run timed a:1
	assert_success
	took "$output" 0.4 1.2 535
	run timed b:2
	assert_success
	took "$output" 4.4 5.2 535
	[ -s "$SMTP_SPOOL/.penalty" ]
}

@test "a penalty table another process holds locked is waited for 200 ms, then the session's own record serves" {
	SMTP_AUTH_POLICY=reject start_activated SMTP_AUTH_POLICY SMTP_AUTH_FAILURE_DELAY=1000
	run timed a:1	# makes the table
	assert_success
	[ -s "$SMTP_SPOOL/.penalty" ]
	# a holder that never lets go (a stopped process, a hung disk)
	flock -o "$SMTP_SPOOL/.penalty" sleep 60 &
	holder=$!
	sleep 0.3
	run timed b:2
	pkill -P "$holder" sleep || true
	kill "$holder" 2>/dev/null || true
	assert_success
	echo "with the table locked: $output"
	# the delay of a first failure (the own record has no penalty), not the holder's 60 s
	awk -v t="${output% *}" 'BEGIN { exit !(t >= 0.4 && t <= 3) }'
	[ "${output#* }" = 535 ]
}
