#!/usr/bin/env bats
# STARTTLS (issue 7) with real clients: swaks, openssl s_client, Python's smtplib and
# ClientHellos built byte by byte, over loopback under systemd-socket-activate.  JA3 and
# JA4 are checked against values computed here (tests/tls/hello.py) and against the
# example of FoxIO's JA4 specification, never against decky-smtpd's own output.

load helper

HELLO=$BATS_TEST_DIRNAME/tls/hello.py
TPROBE=$BATS_TEST_DIRNAME/tls/probe

# The JA4 specification's example (technical_details/JA4.md): a Chrome ClientHello
SPEC_JA4=t13d1516h2_8daaf6152771_e5627efa2ab1
SPEC_JA4_R=t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601

# hex TEXT: TEXT as lower-case hex digits, as the hello builder takes ALPN names
hex() {
	printf %s "$1" | od -An -v -tx1 | tr -d ' \n'
}

setup_file() {
	# one operator certificate for the tests that do not look at certificates: a
	# key generation per test would cost more than the test
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=omega-decky -days 3650 \
	    -keyout "$BATS_FILE_TMPDIR/key.pem" -out "$BATS_FILE_TMPDIR/cert.pem" 2>/dev/null
}

setup() {
	common_setup
	export SMTP_TLS_CERT=$BATS_FILE_TMPDIR/cert.pem SMTP_TLS_KEY=$BATS_FILE_TMPDIR/key.pem
	unset SMTP_TIMEOUT
	LOG=json:$EVENTS
}

teardown() {
	stop_activated
	# no sanitizer report from any session
	! grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$BATS_TEST_TMPDIR/activate.log" 2>/dev/null
}

# serve [ENV...] - start_activated with the TLS settings that are set, and --log=$LOG
serve() {
	local envs=() e
	PORT=$(free_port)
	for e in SMTP_HOSTNAME SMTP_SPOOL SMTP_ERROR_SLEEP SMTP_GREETING_DELAY \
	    ${SMTP_TLS_CERT+SMTP_TLS_CERT} ${SMTP_TLS_KEY+SMTP_TLS_KEY} "$@"; do
		case $e in
		*=*) envs+=(-E "$e") ;;
		*) envs+=(-E "$e=${!e}") ;;
		esac
	done
	systemd-socket-activate --inetd -a -l "127.0.0.1:$PORT" "${envs[@]}" \
	    "$DECKY" --log="$LOG" 2>>"$BATS_TEST_TMPDIR/activate.log" &
	ACTIVATOR=$!
	wait_port "$PORT"
}

# tprobe SCRIPT - tests/tls/probe against the server
tprobe() {
	# under valgrind (make memcheck) making an RSA key takes many seconds
	if [ -n "${DECKY_VALGRIND:-}" ]; then
		run timeout 240 "$TPROBE" 127.0.0.1 "$PORT" 60 <<<"$1"
	else
		run timeout 30 "$TPROBE" 127.0.0.1 "$PORT" 5 <<<"$1"
	fi
}

# tls_marks - one tls event; every event from it on carries "tls":"1", none before it
tls_marks() {
	jq -s -e '(map(.event_type) | indices("tls")) as $t | ($t | length) == 1 and
	    ([.[:$t[0]][] | has("tls")] | any | not) and ([.[$t[0]:][] | .tls == "1"] | all)' "$EVENTS"
}

# fingerprints_ok N - the Nth tls event has a JA3, its MD5 and a JA4 of the right shape
fingerprints_ok() {
	local ja3 ja4
	ja3=$(event_field tls ja3 "${1:-0}")
	ja4=$(event_field tls ja4 "${1:-0}")
	echo "ja3=$ja3 ja4=$ja4"
	[[ "$ja3" =~ ^[0-9]+,[0-9-]*,[0-9-]*,[0-9-]*,[0-9-]*$ ]]
	[ "$(event_field tls ja3_hash "${1:-0}")" = "$(printf '%s' "$ja3" | md5sum | cut -c1-32)" ]
	[[ "$ja4" =~ ^t1[0-3][di][0-9]{2}[0-9]{2}[a-z0-9]{2}_[0-9a-f]{12}_[0-9a-f]{12}$ ]]
}

# der_fp CERT - SHA-256 of a PEM certificate's DER, as tls/probe prints it
der_fp() {
	openssl x509 -in "$1" -outform DER | sha256sum | cut -c1-64
}

# snakeoil CERT KEY HOST - what Debian's make-ssl-cert makes: RSA 2048, self-signed,
# sha256, 3650 days, CN and SAN the host name; the key matches and is private
snakeoil() {
	local text nb na
	text=$(openssl x509 -noout -text -in "$1")
	echo "$text"
	grep -q "Subject: CN = $3\$" <<<"$text"
	grep -q "Issuer: CN = $3\$" <<<"$text"
	grep -q 'Public Key Algorithm: rsaEncryption' <<<"$text"
	grep -q 'Public-Key: (2048 bit)' <<<"$text"
	grep -q 'Signature Algorithm: sha256WithRSAEncryption' <<<"$text"
	grep -q "DNS:$3\$" <<<"$text"
	nb=$(openssl x509 -noout -startdate -in "$1" | cut -d= -f2)
	na=$(openssl x509 -noout -enddate -in "$1" | cut -d= -f2)
	[ $(( ($(date -d "$na" +%s) - $(date -d "$nb" +%s)) / 86400 )) -eq 3650 ]
	openssl rsa -in "$2" -check -noout
	[ "$(openssl x509 -noout -modulus -in "$1")" = "$(openssl rsa -noout -modulus -in "$2")" ]
	[ "$(stat -c %a "$2")" = 600 ]
}

@test "swaks: STARTTLS, AUTH PLAIN and LOGIN, DATA; the message byte for byte; events marked tls" {
	serve
	data=$BATS_TEST_TMPDIR/data
	# swaks ends the data with CRLF . CRLF: the message is the file and a CRLF
	printf 'From: a@evil.example\r\nTo: v@bank.example\r\nSubject: over tls\r\n\r\nline one\r\n%s\r\nlast line' \
	    "$(head -c 900 /dev/zero | tr '\0' x)" >"$data"
	{ cat "$data"; printf '\r\n'; } >"$data.sent"
	for mech in PLAIN LOGIN; do
		: >"$EVENTS"
		run timeout 30 swaks --server 127.0.0.1 --port "$PORT" --tls --auth "$mech" \
		    --auth-user admin --auth-password "hunter2-$mech" --from a@evil.example \
		    --to v@bank.example --data "$data" --timeout 10
		assert_success
		assert_output --partial '<-  220 2.0.0 Ready to start TLS'
		assert_output --partial '=== TLS started with cipher'
		assert_output --partial '<~  235 2.7.0 Authentication successful'
		assert_output --regexp '<~  250 2.0.0 Ok: queued as [0-9A-F]+'
		assert_output --partial '<~  221 2.0.0 Bye'
		wait_event disconnect
		[ "$(event_field tls tls_result)" = ok ]
		[[ "$(event_field tls tls_version)" =~ ^TLSv1\.[23]$ ]]
		[ -n "$(event_field tls tls_cipher)" ]
		fingerprints_ok
		tls_marks
		# what came after the handshake, all marked
		[ "$(jq -r 'select(.tls == "1") | .event_type' "$EVENTS" | tr '\n' ' ')" = \
		    "tls ehlo auth_attempt mail_from rcpt_to command message_accepted command disconnect " ]
		[ "$(event_field auth_attempt mechanism)" = "$mech" ]
		[ "$(event_field auth_attempt password)" = "hunter2-$mech" ]
		[ "$(event_field disconnect reason)" = quit ]
		cmp "$data.sent" "$(event_field message_accepted spool_file)"
		# the sidecar says the message came inside TLS, and from which client
		jq -e --arg ja4 "$(event_field tls ja4)" --arg ja3 "$(event_field tls ja3_hash)" \
		    --arg v "$(event_field tls tls_version)" --arg c "$(event_field tls tls_cipher)" \
		    '.tls == true and .ja4 == $ja4 and .ja3_hash == $ja3 and .tls_version == $v and .tls_cipher == $c' \
		    "$(event_field message_accepted meta_file)"
	done
}

@test "openssl s_client: the snakeoil it is served is created, and its JA3 is stable and what the ClientHello says" {
	unset SMTP_TLS_CERT SMTP_TLS_KEY	# the default: <spool>/tls/
	serve
	# the first session makes an RSA key: far slower under valgrind (make memcheck)
	t=20; [ -z "${DECKY_VALGRIND:-}" ] || t=300
	for i in 1 2; do
		printf 'EHLO sclient.example\nQUIT\n' | timeout $t openssl s_client -starttls smtp \
		    -name sclient.example -connect "127.0.0.1:$PORT" -crlf -ign_eof -msg \
		    -msgfile "$BATS_TEST_TMPDIR/msg$i" >"$BATS_TEST_TMPDIR/out$i" 2>&1 || true
		grep -q '^221 2.0.0 Bye' "$BATS_TEST_TMPDIR/out$i"
	done
	wait_event disconnect
	# the certificate served is the one created under the spool, Debian's snakeoil
	openssl x509 -in "$BATS_TEST_TMPDIR/out1" -outform DER | sha256sum | cut -c1-64 >"$BATS_TEST_TMPDIR/served"
	[ "$(cat "$BATS_TEST_TMPDIR/served")" = "$(der_fp "$SMTP_SPOOL/tls/cert.pem")" ]
	snakeoil "$SMTP_SPOOL/tls/cert.pem" "$SMTP_SPOOL/tls/key.pem" omega-decky
	# the JA3 of the same client twice, and as computed here from its ClientHello bytes
	for i in 0 1; do
		[ "$(event_field tls tls_result $i)" = ok ]
		fingerprints_ok $i
	done
	[ "$(event_field tls ja3_hash 0)" = "$(event_field tls ja3_hash 1)" ]
	"$HELLO" msg "$BATS_TEST_TMPDIR/msg1" >"$BATS_TEST_TMPDIR/mine"
	cat "$BATS_TEST_TMPDIR/mine"
	[ "$(sed -n 's/^ja3=//p' "$BATS_TEST_TMPDIR/mine")" = "$(event_field tls ja3)" ]
	[ "$(sed -n 's/^ja3_hash=//p' "$BATS_TEST_TMPDIR/mine")" = "$(event_field tls ja3_hash)" ]
	[ "$(sed -n 's/^ja4=//p' "$BATS_TEST_TMPDIR/mine")" = "$(event_field tls ja4)" ]
	[ "$(sed -n 's/^ja4_r=//p' "$BATS_TEST_TMPDIR/mine")" = "$(event_field tls ja4_r)" ]
	[ "$(event_field ehlo domain 1)" = sclient.example ]
}

@test "Python's smtplib: starttls, login and sendmail; events and spool" {
	serve
	run timeout 30 python3 - "$PORT" <<'PY'
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.ehlo("bot.example")
    print("starttls offered:", s.has_extn("starttls"))
    print(s.starttls(context=ctx))
    print("version", s.sock.version())
    print("cipher", s.sock.cipher()[0])
    s.ehlo("bot.example")
    print("starttls offered after:", s.has_extn("starttls"))
    s.login("admin", "password123")
    print("refused:", s.sendmail("spam@bot.example", ["a@x.example", "b@y.example"],
                                 b"Subject: smtplib over tls\r\n\r\nbuy now\r\n"))
PY
	assert_success
	assert_line 'starttls offered: True'
	assert_line "(220, b'2.0.0 Ready to start TLS')"
	assert_line 'starttls offered after: False'
	assert_line 'refused: {}'
	wait_event disconnect
	[ "$(event_field tls tls_result)" = ok ]
	[ "$(event_field tls tls_version)" = "$(sed -n 's/^version //p' <<<"$output")" ]
	[ "$(event_field tls tls_cipher)" = "$(sed -n 's/^cipher //p' <<<"$output")" ]
	fingerprints_ok
	tls_marks
	[ "$(event_field auth_attempt username)" = admin ]
	[ "$(event_field auth_attempt password)" = password123 ]
	[ "$(events rcpt_to | wc -l)" -eq 2 ]
	[ "$(event_field ehlo domain 1)" = bot.example ]
	[ "$(event_field disconnect reason)" = quit ]
	[ "$(cat "$(event_field message_accepted spool_file)")" = "$(printf 'Subject: smtplib over tls\r\n\r\nbuy now\r')" ]
}

@test "the tls event, and TLS=1 on the entries after it, are in journald" {
	ensure_journald
	LOG=journal,json:$EVENTS
	serve
	run timeout 30 python3 - "$PORT" <<'PY'
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.starttls(context=ctx)
    s.login("journal", "pw")
PY
	assert_success
	wait_event disconnect
	sid=$(event_field connect session_id)
	for i in $(seq 50); do
		[ "$(journalctl --no-pager -o json SESSION_ID="$sid" | jq -r .EVENT_TYPE | tail -1)" = disconnect ] && break
		sleep 0.1
	done
	t=$(journalctl --no-pager -o json SESSION_ID="$sid" EVENT_TYPE=tls)
	[ "$(jq -r .TLS_RESULT <<<"$t")" = ok ]
	[ "$(jq -r .JA3_HASH <<<"$t")" = "$(event_field tls ja3_hash)" ]
	[ "$(jq -r .JA3 <<<"$t")" = "$(event_field tls ja3)" ]
	[ "$(jq -r .JA4 <<<"$t")" = "$(event_field tls ja4)" ]
	[ "$(jq -r .TLS_VERSION <<<"$t")" = "$(event_field tls tls_version)" ]
	[ "$(jq -r .TLS <<<"$t")" = 1 ]
	# before the handshake no TLS field, after it TLS=1 on every entry
	marks=$(journalctl --no-pager -o json SESSION_ID="$sid" | jq -r '.EVENT_TYPE + ":" + (.TLS // "-")' | tr '\n' ' ')
	echo "$marks"
	[[ "$marks" =~ ^"connect:- ehlo:- "("command:- ")?"tls:1 ehlo:1 auth_attempt:1 command:1 disconnect:1 "$ ]]
}

@test "a crafted ClientHello as the JA4 specification's example gets the specification's JA4" {
	serve
	run timeout 30 "$HELLO" craft "$PORT" chrome www.example.test "$(hex h2),$(hex http/1.1)"
	assert_success
	assert_line 'starttls=220 2.0.0 Ready to start TLS'
	# our computation agrees with the specification's, from the same lists
	assert_line "ja4=$SPEC_JA4"
	assert_line "ja4_r=$SPEC_JA4_R"
	wait_event tls
	[[ "$(event_field tls tls_result)" =~ ^(ok|failed)$ ]]
	[ "$(event_field tls ja4)" = "$SPEC_JA4" ]
	[ "$(event_field tls ja4_r)" = "$SPEC_JA4_R" ]
	[ "$(event_field tls ja3)" = "$(sed -n 's/^ja3=//p' <<<"$output")" ]
	[ "$(event_field tls ja3_hash)" = "$(sed -n 's/^ja3_hash=//p' <<<"$output")" ]
	[ "$(event_field tls tls_sni)" = www.example.test ]
	[ "$(event_field tls tls_alpn)" = h2,http/1.1 ]
}

@test "a ClientHello without SNI and ALPN: i and 00 in the JA4, no SNI or ALPN field" {
	serve
	run timeout 30 "$HELLO" craft "$PORT" chrome
	assert_success
	assert_line 'ja4=t13i151400_8daaf6152771_e5627efa2ab1'
	wait_event tls
	[ "$(event_field tls ja4 | cut -c4,9-10)" = i00 ]
	[ "$(event_field tls ja4)" = t13i151400_8daaf6152771_e5627efa2ab1 ]
	[ "$(event_field tls ja3)" = "$(sed -n 's/^ja3=//p' <<<"$output")" ]
	[ -z "$(event_field tls tls_sni)" ]
	[ -z "$(event_field tls tls_alpn)" ]
}

@test "an ALPN value that starts or ends with a non-alphanumeric byte: the specification's five examples" {
	serve
	n=0
	# JA4.md: 0xAB -> ab, 0xAB 0xCD -> ad, 0x30 0xAB -> 3b, 0x30 0x31 0xAB 0xCD -> 3d,
	# 0x30 0xAB 0xCD 0x31 -> 01
	for c in ab:ab abcd:ad 30ab:3b 3031abcd:3d 30abcd31:01; do
		run timeout 30 "$HELLO" craft "$PORT" chrome alpn.example "${c%:*},6832"
		assert_success
		assert_line "ja4=t13d1516${c#*:}_8daaf6152771_e5627efa2ab1"
		for i in $(seq 100); do
			[ "$(events tls | wc -l)" -gt "$n" ] && break
			sleep 0.05
		done
		ja4=$(event_field tls ja4 $n)
		echo "${c%:*}: $ja4"
		[ "${ja4:8:2}" = "${c#*:}" ]
		n=$((n + 1))
	done
	[ "$ja4" = t13d151601_8daaf6152771_e5627efa2ab1 ]
}

@test "a hello with only extensions OpenSSL knows: JA3 and JA4 as computed here" {
	serve
	run timeout 30 "$HELLO" craft "$PORT" known www.example.test "$(hex h2)"
	assert_success
	wait_event tls
	for f in ja3 ja3_hash ja4 ja4_r; do
		[ "$(event_field tls $f)" = "$(sed -n "s/^$f=//p" <<<"$output")" ]
	done
	[ "$(event_field tls ja4)" = t13d1514h2_8daaf6152771_827b515c4f52 ]
}

@test "plaintext after the 220 ends the session: tls failed, disconnect tls, nothing executed, exit 0" {
	run timeout 30 python3 - "$DECKY" "$EVENTS" "$BATS_TEST_TMPDIR/activate.log" <<'PY'
import socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "--log=json:" + sys.argv[2]], stdin=b, stdout=b,
                     stderr=open(sys.argv[3], "ab"))
b.close()
a.settimeout(10)
def reply():
    got = b""
    while not got.endswith(b"\r\n") or got.split(b"\r\n")[-2][3:4] == b"-":
        d = a.recv(4096)
        if not d:
            break
        got += d
    return got
print(reply())
a.sendall(b"EHLO x\r\n"); print(reply())
a.sendall(b"STARTTLS\r\n"); print(reply().decode().strip())
a.sendall(b"EHLO y\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n")
rest = b""
try:
    while True:
        d = a.recv(4096)
        if not d:
            break
        rest += d
except OSError as e:
    print("error", e)
print("after:", rest.hex())
print("exit", p.wait(timeout=10))
PY
	assert_success
	assert_line '220 2.0.0 Ready to start TLS'
	assert_line 'exit 0'
	# at most a TLS alert came back, no SMTP reply
	assert_line --regexp '^after: (15[0-9a-f]*)?$'
	[ "$(event_field tls tls_result)" = failed ]
	[ -n "$(event_field tls tls_error)" ]
	[ -z "$(event_field tls ja3)" ]
	[ "$(event_field disconnect reason)" = tls ]
	# after the tls event only the disconnect, and nothing marked tls
	[ "$(jq -r .event_type "$EVENTS" | sed -n '/^tls$/,$p' | tr '\n' ' ')" = "tls disconnect " ]
	[ "$(events ehlo | wc -l)" -eq 1 ]
	[ -z "$(events mail_from)$(events rcpt_to)" ]
	[ -z "$(jq -c 'select(has("tls"))' "$EVENTS")" ]
}

@test "commands pipelined after STARTTLS are discarded, not answered, and kept in the tls event" {
	serve
	tprobe $'EHLO p.example\n!b"STARTTLS\\r\\nRSET\\r\\nMAIL FROM:<x@y>\\r\\n"\n?1\n~tls\n~quiet 1\nEHLO after.example\nQUIT'
	assert_success
	assert_line $'S: 220 2.0.0 Ready to start TLS\r'
	assert_line --regexp '^T: TLSv1\.[23] '
	refute_line --partial 'unread before the handshake'
	assert_line 'Q: <quiet>'
	# the first reply in TLS is the EHLO's
	[ "$(grep -A1 '^C: EHLO after.example' <<<"$output" | tail -1)" = $'S: 250-omega-decky\r' ]
	assert_line $'S: 221 2.0.0 Bye\r'
	wait_event disconnect
	[ "$(event_field tls tls_result)" = ok ]
	jq -e -s '[.[] | select(.event_type == "tls")][0].discarded == "RSET\r\nMAIL FROM:<x@y>\r\n"' "$EVENTS"
	[ -z "$(events mail_from)" ]
	[ -z "$(jq -c 'select(.event_type == "command" and (.command == "RSET" or .command == "MAIL"))' "$EVENTS")" ]
	[ "$(event_field ehlo domain 1)" = after.example ]
	tls_marks
}

@test "EHLO offers STARTTLS in Postfix's place before TLS, not after; STARTTLS twice is refused" {
	serve
	tprobe $'EHLO a.example\nSTARTTLS\n~tls\nEHLO b.example\nSTARTTLS\nNOOP\nQUIT'
	assert_success
	ehlo1=$(sed -n '/^C: EHLO a.example/,/^C: /p' <<<"$output" | grep '^S: \|^250' | tr -d '\r' | sed 's/^S: //' | tr '\n' '|')
	[ "$ehlo1" = '250-omega-decky|250-PIPELINING|250-SIZE 10240000|250-VRFY|250-ETRN|250-STARTTLS|250-AUTH PLAIN LOGIN|250-ENHANCEDSTATUSCODES|250-8BITMIME|250-DSN|250-SMTPUTF8|250 CHUNKING|' ]
	ehlo2=$(sed -n '/^C: EHLO b.example/,/^C: /p' <<<"$output" | grep '^S: \|^250' | tr -d '\r' | sed 's/^S: //' | tr '\n' '|')
	[ "$ehlo2" = '250-omega-decky|250-PIPELINING|250-SIZE 10240000|250-VRFY|250-ETRN|250-AUTH PLAIN LOGIN|250-ENHANCEDSTATUSCODES|250-8BITMIME|250-DSN|250-SMTPUTF8|250 CHUNKING|' ]
	assert_line $'S: 554 5.5.1 Error: TLS already active\r'
	assert_line $'S: 250 2.0.0 Ok\r'
	assert_line $'S: 221 2.0.0 Bye\r'
	wait_event disconnect
	[ "$(events tls | wc -l)" -eq 1 ]
	tls_marks
}

@test "QUIT in TLS: 221, then a close_notify before the close, as Postfix's tls_session_stop" {
	serve
	tprobe $'STARTTLS\n~tls\nQUIT\n~eof'
	assert_success
	assert_line $'S: 221 2.0.0 Bye\r'
	assert_line 'E: close_notify'
}

@test "a client silent after STARTTLS meets the idle timeout" {
	SMTP_TIMEOUT=2 serve SMTP_TIMEOUT
	run timeout 30 python3 - "$PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
s.recv(1000)
s.sendall(b"STARTTLS\r\n")
print(s.recv(1000))
t = time.monotonic()
try:
    print("got", s.recv(1000))
except OSError as e:
    print("error", e)
print("closed after %.1f s" % (time.monotonic() - t))
PY
	assert_success
	echo "$output"
	assert_output --partial 'Ready to start TLS'
	s=$(sed -n 's/^closed after \([0-9]*\)\..*/\1/p' <<<"$output")
	[ "$s" -ge 1 ]
	[ "$s" -lt 10 ]
	wait_event disconnect
	[ "$(event_field disconnect reason)" = timeout ]
	# whatever the tls event says, the handshake did not succeed
	[ "$(event_field tls tls_result)" != ok ]
}

@test "missing certificate files are created at the first STARTTLS and reused after" {
	mkdir "$BATS_TEST_TMPDIR/certs"
	export SMTP_TLS_CERT=$BATS_TEST_TMPDIR/certs/cert.pem SMTP_TLS_KEY=$BATS_TEST_TMPDIR/certs/key.pem
	serve
	tprobe $'EHLO x\nSTARTTLS\n~tls\nQUIT'
	assert_success
	first=$(sed -n 's/^T: .* sha256=//p' <<<"$output")
	[ -n "$first" ]
	snakeoil "$SMTP_TLS_CERT" "$SMTP_TLS_KEY" omega-decky
	[ "$first" = "$(der_fp "$SMTP_TLS_CERT")" ]
	before=$(stat -c %Y.%i "$SMTP_TLS_CERT" "$SMTP_TLS_KEY")
	tprobe $'EHLO x\nSTARTTLS\n~tls\nQUIT'
	assert_success
	[ "$(sed -n 's/^T: .* sha256=//p' <<<"$output")" = "$first" ]
	[ "$(stat -c %Y.%i "$SMTP_TLS_CERT" "$SMTP_TLS_KEY")" = "$before" ]
}

@test "ten concurrent first STARTTLS make one valid certificate and key, served to all" {
	mkdir "$BATS_TEST_TMPDIR/certs"
	export SMTP_TLS_CERT=$BATS_TEST_TMPDIR/certs/cert.pem SMTP_TLS_KEY=$BATS_TEST_TMPDIR/certs/key.pem
	serve
	# ten sessions under valgrind (make memcheck) wait long for one RSA key
	wait_s=30
	[ -n "${DECKY_VALGRIND:-}" ] && wait_s=400
	run timeout $((wait_s * 2)) python3 - "$PORT" "$wait_s" <<'PY'
import hashlib, smtplib, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
go = threading.Barrier(10, timeout=20)
res = []
def one():
    try:
        with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=int(sys.argv[2])) as s:
            s.ehlo("c.example")
            go.wait()
            s.starttls(context=ctx)
            res.append("served " + hashlib.sha256(s.sock.getpeercert(True)).hexdigest())
    except Exception as e:
        res.append("error %r" % e)
ts = [threading.Thread(target=one) for _ in range(10)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(res))
PY
	echo "$output"
	assert_success
	refute_line --partial error
	[ "$(grep -c '^served ' <<<"$output")" -eq 10 ]
	snakeoil "$SMTP_TLS_CERT" "$SMTP_TLS_KEY" omega-decky
	[ "$(sed -n 's/^served //p' <<<"$output" | sort -u)" = "$(der_fp "$SMTP_TLS_CERT")" ]
	# nothing half-written left behind (a lock file may stay)
	[ "$(ls -A "$BATS_TEST_TMPDIR/certs" | grep -v -x 'cert.pem\|key.pem\|key.pem.lock\|cert.pem.lock')" = "" ]
}

@test "a persona's operator certificate is served as it is" {
	d=$BATS_TEST_TMPDIR/op
	mkdir "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mail.example.test -days 30 \
	    -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
	sum=$(cat "$d"/*.pem | sha256sum)
	unset SMTP_TLS_CERT SMTP_TLS_KEY
	printf '{"tls-cert": "%s", "tls-key": "%s"}\n' "$d/cert.pem" "$d/key.pem" >"$BATS_TEST_TMPDIR/persona.json"
	export SMTP_PERSONA=$BATS_TEST_TMPDIR/persona.json
	serve SMTP_PERSONA
	tprobe $'EHLO x\nSTARTTLS\n~tls\nQUIT'
	assert_success
	[ "$(sed -n 's/^T: .* sha256=//p' <<<"$output")" = "$(der_fp "$d/cert.pem")" ]
	[ "$(cat "$d"/*.pem | sha256sum)" = "$sum" ]
	[ ! -e "$SMTP_SPOOL/tls" ]
}

@test "an unusable certificate: 454 at STARTTLS, the session goes on in plaintext, files untouched" {
	d=$BATS_TEST_TMPDIR/bad
	mkdir "$d"
	export SMTP_TLS_CERT=$d/cert.pem SMTP_TLS_KEY=$d/key.pem
	printf 'not a certificate\n' >"$SMTP_TLS_CERT"
	printf -- '-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n' >"$SMTP_TLS_KEY"
	serve
	tprobe $'EHLO x\nSTARTTLS\nMAIL FROM:<a@b.c>\nRCPT TO:<x@y.z>\nQUIT'
	assert_success
	assert_line $'250-STARTTLS\r'
	assert_line $'S: 454 4.7.0 TLS not available due to local problem\r'
	assert_line $'S: 250 2.1.0 Ok\r'
	assert_line $'S: 250 2.1.5 Ok\r'
	assert_line $'S: 221 2.0.0 Bye\r'
	wait_event disconnect
	[ "$(event_field disconnect reason)" = quit ]
	grep -qx 'not a certificate' "$SMTP_TLS_CERT"
	grep -qx garbage "$SMTP_TLS_KEY"
	[ -z "$(jq -c 'select(has("tls") or .tls_result == "ok")' "$EVENTS")" ]
	# a certificate without its key: not replaced, no key made
	rm "$SMTP_TLS_KEY"
	cp "$BATS_FILE_TMPDIR/cert.pem" "$SMTP_TLS_CERT"
	tprobe $'EHLO x\nSTARTTLS\nQUIT'
	assert_line $'S: 454 4.7.0 TLS not available due to local problem\r'
	assert_line $'S: 221 2.0.0 Bye\r'
	cmp "$BATS_FILE_TMPDIR/cert.pem" "$SMTP_TLS_CERT"
	[ ! -e "$SMTP_TLS_KEY" ]
}

@test "--make-cert makes the snakeoil ahead of time for the persona's host name" {
	export SMTP_TLS_CERT=$BATS_TEST_TMPDIR/m/cert.pem SMTP_TLS_KEY=$BATS_TEST_TMPDIR/m/key.pem
	mkdir "$BATS_TEST_TMPDIR/m"
	SMTP_HOSTNAME=x.example run "$DECKY" --make-cert
	assert_success
	snakeoil "$SMTP_TLS_CERT" "$SMTP_TLS_KEY" x.example
	# and, by default, under the spool
	unset SMTP_TLS_CERT SMTP_TLS_KEY
	SMTP_HOSTNAME=x.example run "$DECKY" --make-cert
	assert_success
	snakeoil "$SMTP_SPOOL/tls/cert.pem" "$SMTP_SPOOL/tls/key.pem" x.example
}

@test "without STARTTLS in ehlo-keywords: no keyword, and STARTTLS is not implemented" {
	SMTP_EHLO_KEYWORDS="PIPELINING SIZE VRFY ETRN AUTH ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING" \
	    smtp "EHLO x" STARTTLS "MAIL FROM:<a@b.c>" QUIT
	assert_success
	refute_line --partial STARTTLS
	assert_line -n 6 $'250-AUTH PLAIN LOGIN\r'
	assert_line -n 12 $'502 5.5.1 Error: command not implemented\r'
	assert_line -n 13 $'250 2.1.0 Ok\r'
	[ -z "$(events tls)" ]
	# and the default offers it
	smtp "EHLO x" QUIT
	assert_line -n 6 $'250-STARTTLS\r'
}

@test "a host name over 64 bytes: its first label as CN (X.509's cap), the whole name in subjectAltName" {
	long=$(printf 'm%.0s' $(seq 70)).example.org
	unset SMTP_TLS_CERT SMTP_TLS_KEY
	run "$DECKY" --make-cert --hostname="$long" --spool="$BATS_TEST_TMPDIR/long"
	assert_success
	run openssl x509 -in "$BATS_TEST_TMPDIR/long/tls/cert.pem" -noout -subject -ext subjectAltName
	assert_line "subject=CN = $(printf 'm%.0s' $(seq 64))"
	assert_line --partial "DNS:$long"
}

# sess ARGS... - one openssl s_client session over TLS 1.2; "New" or "Reused"
sess() {
	printf 'EHLO x\r\nQUIT\r\n' | timeout 20 openssl s_client -starttls smtp \
	    -connect "127.0.0.1:$PORT" -tls1_2 -ign_eof "$@" 2>&1 | sed -n 's/^\(New\|Reused\), TLSv.*/\1/p'
}

# key_name SESSION - the first 16 bytes of its ticket (the key name), in hex
key_name() {
	openssl sess_id -in "$1" -text -noout | sed -n '/TLS session ticket:$/{n;p}' |
	    sed 's/^ *0000 - //; s/   .*//; s/[- ]//g'
}

# now - the wall clock, in seconds to the nanosecond (the clock time(3) reads)
now() {
	date +%s.%N
}

# next_key PREV FILE - new sessions, FILE's ticket from each, until its key name is not
# PREV, which the session started at $SEEN got; sets KEY to the new name, SEEN to the
# start of the session that got it, and UNTIL to a time before which KEY is surely
# still current: its period began after $SEEN, the last start of a session that got PREV
next_key() {
	local i t
	for i in $(seq 60); do
		t=$(now)
		[ "$(sess -sess_out "$2")" = New ] || fail "${2##*/}: no new session"
		KEY=$(key_name "$2")
		if [ "$KEY" != "$1" ]; then
			UNTIL=$(awk -v t="$SEEN" -v p="$PERIOD" 'BEGIN { printf "%.3f", t + p }')
			SEEN=$t
			echo "${2##*/}: key $KEY, current until $UNTIL at least"
			return 0
		fi
		SEEN=$t
		sleep 0.2
	done
	fail "${2##*/}: no key name but $1 in 60 sessions"
}

# resumed FILE WANT - a session from FILE's ticket is WANT (New or Reused).  When it is
# not, but ended past $UNTIL, the period the check needs may have ended first (a slow,
# loaded machine): that sets LATE instead of failing
resumed() {
	local got
	got=$(sess -sess_in "$1")
	[ "$got" != "$2" ] || return 0
	if awk -v t="$(now)" -v u="$UNTIL" 'BEGIN { exit !(t >= u) }'; then
		echo "${1##*/}: $got, not $2, but past $UNTIL: another round"
		LATE=1
		return 0
	fi
	fail "${1##*/}: $got, not $2, before $UNTIL"
}

@test "ticket keys rotate: a new key name each period, tickets of this and the last period resume, older ones do not" {
	# a 4 s period (tls-ticket-period) so that the rotation shows within the test; a
	# check that needs a given period and ran past it starts another round
	PERIOD=4
	serve SMTP_TLS_TICKET_PERIOD=$PERIOD
	s=$BATS_TEST_TMPDIR
	for round in 1 2 3; do
		LATE=
		SEEN=$(now)
		[ "$(sess -sess_out "$s/a")" = New ]
		a=$(key_name "$s/a")
		echo "round $round, a: key $a"
		[ ${#a} -eq 32 ]
		# another process of the decky resumes it (the key is derived, not shared state)
		UNTIL=$(awk -v t="$SEEN" -v p="$PERIOD" 'BEGIN { printf "%.3f", t + p }')
		resumed "$s/a" Reused
		[ -z "$LATE" ] || continue
		# the next period: a new key name, and the previous period's ticket still resumes
		next_key "$a" "$s/b"
		b=$KEY
		resumed "$s/a" Reused
		[ -z "$LATE" ] || continue
		# two periods on: the last period's ticket resumes, the first gets a full handshake
		next_key "$b" "$s/c"
		c=$KEY
		resumed "$s/b" Reused
		[ -z "$LATE" ] || continue
		[ "$c" != "$a" ]
		[ "$(sess -sess_in "$s/a")" = New ]
		break
	done
	[ -z "$LATE" ] || fail "every round ran past a period"
}

@test "the default ticket key keeps its name within a period and differs between deckies" {
	serve
	s=$BATS_TEST_TMPDIR
	[ "$(sess -sess_out "$s/a")" = New ]
	[ "$(sess -sess_out "$s/b")" = New ]
	# 1800 s periods: two tickets a moment apart (a boundary between them is a 1 in 1800 chance)
	[ "$(key_name "$s/a")" = "$(key_name "$s/b")" ] || [ "$(sess -sess_in "$s/a")" = Reused ]
	stop_activated || :
	# another decky (another key) has other ticket keys
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other -days 30 \
	    -keyout "$s/k2.pem" -out "$s/c2.pem" 2>/dev/null
	SMTP_TLS_CERT=$s/c2.pem SMTP_TLS_KEY=$s/k2.pem serve
	[ "$(sess -sess_out "$s/c")" = New ]
	[ "$(key_name "$s/c")" != "$(key_name "$s/a")" ]
	[ "$(sess -sess_in "$s/a")" = New ]
}
