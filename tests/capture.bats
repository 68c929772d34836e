#!/usr/bin/env bats
# Evidence, losslessly: credentials as sent, every message byte, sidecars, partials.

load helper

setup() {
	common_setup
	ensure_journald
}

# journal_session - the journal entries of the session whose connect is in $EVENTS
journal_session() {
	local sid i
	sid=$(event_field connect session_id)
	for i in $(seq 50); do
		[ "$(journalctl --no-pager -o json SESSION_ID="$sid" | jq -r .EVENT_TYPE | tail -1)" = disconnect ] && break
		sleep 0.1
	done
	journalctl --no-pager -o json --output-fields=EVENT_TYPE,USERNAME,PASSWORD,AUTHZID,RAW,DIGEST SESSION_ID="$sid"
}

# jbytes FIELD - a journal field as bytes in hex, whether journald stored text or a blob
jbytes() {
	jq -r --arg f "$1" 'select(.EVENT_TYPE == "auth_attempt") | .[$f]
	    | if type == "array" then (map(.) | implode | @text) else . end' | head -1
}

@test "AUTH PLAIN with NUL, 8-bit and a 1000-byte password round-trips to journald and JSON" {
	pw=$(head -c 1000 /dev/zero | tr '\0' P)
	for pass in "$pw" $'p\xe9\xff\x01x'; do
		: >"$EVENTS"
		ir=$(printf 'auth\0us\xe8r\0%s' "$pass" | base64 -w0)
		run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'EHLO x\r\nAUTH PLAIN %s\r\nQUIT\r\n' "$ir")
		assert_line -n 13 $'235 2.7.0 Authentication successful\r'
		# JSON: UTF-8 as a string, anything else also as exact base64
		want_user=$(printf 'us\xe8r' | base64 -w0)
		[ "$(event_field auth_attempt username_base64)" = "$want_user" ]
		if [ "${#pass}" -eq 1000 ]; then
			[ "$(event_field auth_attempt password)" = "$pass" ]
		else
			[ "$(event_field auth_attempt password_base64)" = "$(printf '%s' "$pass" | base64 -w0)" ]
		fi
		[ "$(event_field auth_attempt raw)" = "$ir" ]
		[ "$(event_field auth_attempt authzid)" = auth ]
		# journald: the same bytes (binary values come back as arrays of numbers)
		j=$(journal_session)
		[ "$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .USERNAME | if type == "array" then map(tostring) | join(",") else . end' <<<"$j")" = \
		    "$(printf 'us\xe8r' | od -An -tu1 | xargs | tr ' ' ',')" ]
		got=$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .PASSWORD | if type == "array" then map(tostring) | join(",") else . end' <<<"$j")
		if [ "${#pass}" -eq 1000 ]; then
			[ "$got" = "$pass" ]
		else
			[ "$got" = "$(printf '%s' "$pass" | od -An -tu1 | xargs | tr ' ' ',')" ]
		fi
		[ "$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .RAW' <<<"$j")" = "$ir" ]
	done
}

@test "AUTH LOGIN keeps both base64 answers in RAW" {
	u=$(printf 'admin' | base64); p=$(printf 'pa\0ss' | base64)
	run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'AUTH LOGIN\r\n%s\r\n%s\r\nQUIT\r\n' "$u" "$p")
	assert_line -n 3 $'235 2.7.0 Authentication successful\r'
	[ "$(event_field auth_attempt raw)" = "$u $p" ]
	# the NUL inside the password, in JSON and in journald
	[ "$(jq 'select(.event_type == "auth_attempt") | .password == "pa\u0000ss"' "$EVENTS")" = true ]
	j=$(journal_session)
	[ "$(jq -c 'select(.EVENT_TYPE == "auth_attempt") | .PASSWORD' <<<"$j")" = "[112,97,0,115,115]" ]
	[ "$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .USERNAME' <<<"$j")" = admin ]
	[ "$(jq -r 'select(.EVENT_TYPE == "auth_attempt") | .RAW' <<<"$j")" = "$u $p" ]
}

@test "CRAM-MD5, when the persona offers it, sends a Dovecot-like challenge and captures user and digest" {
	run python3 - "$DECKY" "$EVENTS" <<'PY'
import base64, hashlib, hmac, subprocess, sys, os
env = dict(os.environ, SMTP_AUTH_MECHANISMS="PLAIN LOGIN CRAM-MD5")
p = subprocess.Popen([sys.argv[1], "--log=json:" + sys.argv[2]], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, env=env)
def line():
    return p.stdout.readline().decode()
line()
p.stdin.write(b"EHLO x\r\n"); p.stdin.flush()
ehlo = [line()]
while ehlo[-1].startswith("250-"):
    ehlo.append(line())
print([l for l in ehlo if "AUTH" in l][0].strip())
p.stdin.write(b"AUTH CRAM-MD5\r\n"); p.stdin.flush()
ch = line()
challenge = base64.b64decode(ch[4:].strip())
print("challenge", challenge.decode())
digest = hmac.new(b"tanstaaftanstaaf", challenge, hashlib.md5).hexdigest()
p.stdin.write(base64.b64encode(b"tim " + digest.encode()) + b"\r\nQUIT\r\n"); p.stdin.flush()
print(line().strip())
print("digest", digest)
p.stdin.close(); p.wait()
PY
	assert_success
	assert_line '250-AUTH PLAIN LOGIN CRAM-MD5'
	assert_line --regexp '^challenge <[0-9]+\.[0-9]+@omega-decky>$'
	assert_line '235 2.7.0 Authentication successful'
	digest=$(sed -n 's/^digest //p' <<<"$output")
	[ "$(event_field auth_attempt mechanism)" = CRAM-MD5 ]
	[ "$(event_field auth_attempt username)" = tim ]
	[ "$(event_field auth_attempt digest)" = "$digest" ]
	[ "<$(sed -n 's/^challenge <//p' <<<"$output")" = "$(event_field auth_attempt challenge)" ]
}

@test "a 50 MB 8-bit message with long and dot-stuffed lines is stored byte for byte" {
	body=$BATS_TEST_TMPDIR/body
	python3 - "$body" <<'PY'
import random, sys
random.seed(7)
out = open(sys.argv[1], "wb")
n = 0
while n < 50_000_000:
    k = random.choice([0, 1, 76, 998, 5000, 70000])
    line = bytes(random.randrange(256) for _ in range(min(k, 64))) * (k // 64 + 1)
    line = line[:k].replace(b"\r", b"r").replace(b"\n", b"n")
    if random.random() < 0.1:
        line = b"." + line
    out.write(line + b"\r\n")
    n += len(line) + 2
PY
	want=$(sha256sum <"$body" | cut -d' ' -f1)
	# dot-stuff what is sent: a line that starts with "." gets another
	run bash -c '{ printf "EHLO x\r\nMAIL FROM:<a@b.c> BODY=8BITMIME\r\nRCPT TO:<x@y.z>\r\nDATA\r\n"
	    sed "s/^\./../" "$1"; printf ".\r\nQUIT\r\n"; } | /usr/bin/time -f "rss %M" "$2" --log=json:"$3" --size-limit=60000000' \
	    - "$body" "$DECKY" "$EVENTS"
	assert_success
	assert_line --regexp '^250 2.0.0 Ok: queued as '
	f=$(event_field message_accepted spool_file)
	[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ]
	[ "$(event_field message_accepted sha256)" = "$want" ]
	[ "$(event_field message_accepted body_bytes)" -eq "$(stat -c %s "$body")" ]
	rss=$(sed -n 's/^rss //p' <<<"$output")
	echo "peak RSS for 50 MB: $rss KiB"
	[ -n "${DECKY_SANITIZED:-}" ] || [ "$rss" -lt 16000 ]
}

@test "the sidecar holds the envelope, the session and the digest" {
	smtp "EHLO bot.example" "AUTH PLAIN $(printf '\0mallory\0pw' | base64)" "MAIL FROM:<a@b.c> BODY=8BITMIME" \
	    "RCPT TO:<x@y.z>" "RCPT TO:<w@v.u>" DATA "Subject: =?utf-8?q?hi?=" " folded" "From: Boss <boss@corp>" \
	    "Message-ID: <1@x>" "" "body" . QUIT
	m=$(event_field message_accepted meta_file)
	f=$(event_field message_accepted spool_file)
	[ "$m" = "$SMTP_SPOOL/meta/${f##*/}.json" ]
	[ "$(jq -r .queue_id "$m")" = "$(event_field message_accepted msg_id)" ]
	jq -e --arg sid "$(event_field connect session_id)" '.session_id == $sid and .helo == "bot.example"
	    and .mail_from == "a@b.c" and .mail_from_params == "BODY=8BITMIME" and .rcpt_to == "x@y.z,w@v.u"
	    and .rcpt_count == 2 and .auth_user == "mallory" and .partial == false and (.sha256 | length) == 64
	    and .hdr_subject == "=?utf-8?q?hi?= folded" and .hdr_from == "Boss <boss@corp>"
	    and .hdr_message_id == "<1@x>" and .src == "unknown" and .tls == false and (has("ja4") | not)' "$m"
	[ "$(event_field message_accepted hdr_subject)" = "=?utf-8?q?hi?= folded" ]
	[ "$(jq -r .sha256 "$m")" = "$(sha256sum <"$(event_field message_accepted spool_file)" | cut -d' ' -f1)" ]
}

@test "kill -9 right after the 250 leaves the message complete in new/" {
	fifo=$BATS_TEST_TMPDIR/in
	mkfifo "$fifo"
	"$DECKY" --log=json:"$EVENTS" <"$fifo" >"$BATS_TEST_TMPDIR/out" &
	pid=$!
	exec {w}>"$fifo"
	printf 'MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: durable\r\n\r\nkeep me\r\n.\r\n' >&$w
	for i in $(seq 100); do grep -q 'queued as' "$BATS_TEST_TMPDIR/out" && break; sleep 0.02; done
	kill -9 "$pid"
	exec {w}>&-
	wait "$pid" || true
	qid=$(sed -n 's/.*queued as \([0-9A-F]*\).*/\1/p' "$BATS_TEST_TMPDIR/out" | tr -d '\r')
	[ -n "$qid" ]
	# the sidecar that names this queue id names the file
	m=$(grep -l "\"queue_id\":\"$qid\"" "$SMTP_SPOOL"/meta/*.json)
	jq -e '.partial == false' "$m"
	cmp "$(jq -r .file "$m")" <(printf 'Subject: durable\r\n\r\nkeep me\r\n')
}

@test "a disconnect mid-DATA keeps the partial message and says so" {
	smtp_raw 'MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess'
	assert_success
	[ "$(event_field message_partial reason)" = eof ]
	f=$(event_field message_partial spool_file)
	cmp "$f" <(printf 'Subject: cut\r\n\r\nhalf a mess')
	[ "$(event_field message_partial hdr_subject)" = cut ]
	jq -e '.partial == true and .reason == "eof"' "$(event_field message_partial meta_file)"
	[ "$(event_field disconnect in_message)" = 1 ]
}

@test "a spent spool budget gets Postfix's 452 at MAIL, and cuts off a message that reaches it" {
	SMTP_SPOOL_BUDGET=20000 smtp "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "$(head -c 30000 /dev/zero | tr '\0' x)" . \
	    "MAIL FROM:<a@b.c>" QUIT
	assert_line -n 4 $'452 4.3.1 Insufficient system storage\r'
	assert_line -n 5 $'452 4.3.1 Insufficient system storage\r'
	[ "$(event_field message_partial reason)" = budget ]
	[ "$(event_field message_partial reply)" = 452 ]
	[ "$(event_field command reply 1)" = 452 ]
	# what fitted in the budget, less the room held for its sidecar, is kept
	f=$(event_field message_partial spool_file)
	m=$(event_field message_partial meta_file)
	[ "$(stat -c %s "$f")" -eq $((20000 - 8192)) ]
	[ "$(event_field message_partial stored_bytes)" -eq $((20000 - 8192)) ]
	total=$(( $(stat -c %s "$f") + $(stat -c %s "$m") ))
	[ "$total" -le 20000 ]
	[ "$(head -n 1 "$SMTP_SPOOL/.usage")" -eq "$total" ]
}

@test "RSET between BDAT chunks keeps what came as partial" {
	smtp_raw 'MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 4\r\nabcdRSET\r\nQUIT\r\n'
	assert_line -n 3 $'250 2.0.0 Ok: 4 bytes\r'
	[ "$(event_field message_partial reason)" = rset ]
	cmp "$(event_field message_partial spool_file)" <(printf abcd)
}
