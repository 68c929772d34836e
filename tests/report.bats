#!/usr/bin/env bats
# decky-smtpd-report over a real journald, with traffic from real clients: swaks,
# Python's smtplib, a brute-force loop of hostile credentials, an HTTP probe.

load helper

setup() {
	common_setup
	ensure_journald
	# the report built beside the decky under test (the sanitizer build has its own)
	REPORT=$(dirname "$DECKY")/decky-smtpd-report
	[ -x "$REPORT" ] || REPORT=$TOP/decky-smtpd-report
	# a persona host name of this test alone: the report is filtered on it
	export SMTP_HOSTNAME=report-$BATS_TEST_NUMBER-$$-$RANDOM
	NAME=$SMTP_HOSTNAME
	PORT=$(free_port)
	systemd-socket-activate --inetd -a -l "127.0.0.1:$PORT" -E SMTP_HOSTNAME -E SMTP_SPOOL \
	    -E SMTP_ERROR_SLEEP -E SMTP_GREETING_DELAY \
	    "$DECKY" --log=journal,json:"$EVENTS" 2>"$BATS_TEST_TMPDIR/activate.log" &
	ACTIVATOR=$!
	wait_port "$PORT"
}

teardown() {
	stop_activated
}

# wait_sessions N - until N disconnect events of this decky are in the journal (10 s)
wait_sessions() {
	local i n
	for i in $(seq 100); do
		n=$(journalctl --no-pager -q -o cat PERSONA_HOSTNAME="$NAME" EVENT_TYPE=disconnect | wc -l)
		[ "$n" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "only $n of $1 sessions of $NAME in the journal" >&2
	return 1
}

# traffic - what every test sends: 1 swaks session with a message and AUTH PLAIN, 2
# smtplib sessions with one identical message each to two domains, 15 brute-force
# sessions, 1 HTTP probe: 19 sessions, 16 credentials, 3 messages
traffic() {
	swaks --server 127.0.0.1 --port "$PORT" --from spammer@sender.example \
	    --to victim@relay.example --auth PLAIN --auth-user swaksuser \
	    --auth-password swakspass --header 'Subject: Re: Invoice 1234' \
	    --body 'pay now' >/dev/null
	python3 - "$PORT" <<'PY'
import smtplib, sys
for i in range(2):
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
    s.sendmail("bot@sender.example", ["a@target.example", "b@other.example"],
               "Subject: Invoice 99\r\n\r\nthe same body\r\n")
    s.quit()
PY
	"$TESTS/smtp-brute" 127.0.0.1 "$PORT" >"$BATS_TEST_TMPDIR/sent-creds"
	printf 'GET / HTTP/1.0\r\n\r\n' | nc -q 2 127.0.0.1 "$PORT" >/dev/null || true
	wait_sessions 19
}

@test "report --json: the counts are exactly what the clients sent" {
	traffic
	run "$REPORT" --decky "$NAME" --json --top 20
	assert_success
	j=$output
	[ "$(jq .sessions <<<"$j")" -eq 19 ]
	[ "$(jq .credentials <<<"$j")" -eq 16 ]
	[ "$(jq .messages <<<"$j")" -eq 3 ]
	[ "$(jq .distinct_sources <<<"$j")" -eq 1 ]
	[ "$(jq -r '.top_sources.top[0] | [.value, .sessions, .credentials, .messages] | join(" ")' <<<"$j")" = \
	    "127.0.0.1 19 16 3" ]
	[ "$(jq -r '.mechanisms.top | map(.value + "=" + (.count | tostring)) | sort | join(" ")' <<<"$j")" = \
	    "LOGIN accepted=15 PLAIN accepted=1" ]
	[ "$(jq -r '.usernames.top[] | select(.value == "admin") | .count' <<<"$j")" -eq 10 ]
	[ "$(jq -r '.usernames.distinct' <<<"$j")" -eq 7 ]
	[ "$(jq -r '.passwords.distinct' <<<"$j")" -eq 16 ]
	[ "$(jq -r '.recipient_domains.top | map(.value + "=" + (.count | tostring)) | sort | join(" ")' <<<"$j")" = \
	    "other.example=2 relay.example=1 target.example=2" ]
	[ "$(jq -r '.sender_domains.top | map(.value + "=" + (.count | tostring)) | sort | join(" ")' <<<"$j")" = \
	    "sender.example=3" ]
	# the two smtplib messages are one campaign by SHA-256 and by Subject
	[ "$(jq -r '.campaigns_sha256.top[0].count' <<<"$j")" -eq 2 ]
	[ "$(jq -r '.campaigns_sha256.distinct' <<<"$j")" -eq 2 ]
	[ "$(jq -r '.campaigns_subject.top | map(.value + "=" + (.count | tostring)) | sort | join("|")' <<<"$j")" = \
	    "invoice #=3" ]
	[ "$(jq -r '.helo.top[] | select(.value == "brute.example") | .count' <<<"$j")" -eq 15 ]
	[ "$(jq -r '.probe_kinds.top | map(.value + "=" + (.count | tostring)) | join(" ")' <<<"$j")" = "http=1" ]
	[ "$(jq -r '.disconnect_reasons.top | map(.count) | add' <<<"$j")" -eq 19 ]
	[ "$(jq -r '.histogram.sessions | add' <<<"$j")" -eq 19 ]
	# no message_analyzed events here: the analyzer's sections are there, empty
	[ "$(jq -r '.campaigns_attachment.distinct + .campaigns_url_host.distinct' <<<"$j")" -eq 0 ]
	# the hostile values are in the JSON, escaped or with their exact bytes in base64
	[ "$(jq -r '.usernames.top[] | select(.value == "ad\u0000min") | .count' <<<"$j")" -eq 1 ]
	[ "$(jq -r '.passwords.top[] | select(.value == "p\\xe4ssw\\xf6rd") | .value_base64' <<<"$j" |
	    base64 -d | od -An -c | tr -s ' ')" = " p 344 s s w 366 r d" ]
	[ "$(jq -r '.passwords.top[] | select(.bytes == 5000) | .truncated' <<<"$j")" = true ]
}

@test "report: filters by source, session and time; a directory or file of journal" {
	traffic
	sid=$(jq -r 'select(.event_type == "connect") | .session_id' "$EVENTS" | head -1)
	run "$REPORT" --decky "$NAME" --session "$sid" --json
	assert_success
	[ "$(jq .sessions <<<"$output")" -eq 1 ]
	run "$REPORT" --decky "$NAME" --source 192.0.2.1 --json
	[ "$(jq .sessions <<<"$output")" -eq 0 ]
	run "$REPORT" --decky "$NAME" --source 127.0.0.1 --since -1h --until now --json
	[ "$(jq .sessions <<<"$output")" -eq 19 ]
	run "$REPORT" --decky "$NAME" --until -1h --json
	[ "$(jq .sessions <<<"$output")" -eq 0 ]
	run "$REPORT" --decky "$NAME" --since tomorrow --json
	[ "$(jq .sessions <<<"$output")" -eq 0 ]
	# the machine's host name matches too (_HOSTNAME): a collector's journals carry it
	run "$REPORT" --decky "$(hostname)" --session "$sid" --json
	[ "$(jq .sessions <<<"$output")" -eq 1 ]
	[ "$(jq -r '.deckies.top[0].persona_hostname' <<<"$output")" = "$NAME" ]
	# the journal's own directories (runtime and persistent) with --directory, their
	# files with --file: as a collector's journals would be read
	n=0
	files=()
	for d in /run/log/journal/* /var/log/journal/*; do
		[ -d "$d" ] || continue
		run "$REPORT" --directory "$d" --decky "$NAME" --json
		assert_success
		n=$((n + $(jq .sessions <<<"$output")))
		for f in "$d"/*.journal; do [ -f "$f" ] && files+=(--file "$f"); done
	done
	[ "$n" -eq 19 ]
	run "$REPORT" "${files[@]}" --decky "$NAME" --json
	assert_success
	[ "$(jq .credentials <<<"$output")" -eq 16 ]
	run "$REPORT" --bogus
	[ "$status" -eq 2 ]
	run "$REPORT" --since 'not a time'
	[ "$status" -eq 2 ]
	run "$REPORT" --session "$(printf 'a%.0s' $(seq 201))"
	[ "$status" -eq 2 ]
}

@test "report: an entry a collector's journal holds twice is counted once" {
	traffic
	# what systemd-journal-remote writes when systemd-journal-upload sends again, after
	# its collector stopped, what it had sent: every entry, then the same again
	journalctl --no-pager PERSONA_HOSTNAME="$NAME" -o export >"$BATS_TEST_TMPDIR/once"
	n=$(grep -c '^__CURSOR=' "$BATS_TEST_TMPDIR/once")
	cat "$BATS_TEST_TMPDIR/once" "$BATS_TEST_TMPDIR/once" |
	    /lib/systemd/systemd-journal-remote --output="$BATS_TEST_TMPDIR/twice.journal" - 2>/dev/null
	# the file holds each twice: journalctl shows both
	[ "$(journalctl --no-pager --file "$BATS_TEST_TMPDIR/twice.journal" EVENT_TYPE=connect -o cat | wc -l)" -eq 38 ]
	run "$REPORT" --file "$BATS_TEST_TMPDIR/twice.journal" --json
	assert_success
	[ "$(jq .sessions <<<"$output")" -eq 19 ]
	[ "$(jq .credentials <<<"$output")" -eq 16 ]
	[ "$(jq .messages <<<"$output")" -eq 3 ]
	[ "$(jq .events <<<"$output")" -eq "$n" ]
	[ "$(jq .resent <<<"$output")" -eq "$n" ]
	# the credentials once each, as the decky's own journal gives them
	for c in csv usernames; do
		"$REPORT" --decky "$NAME" --credentials $c >"$BATS_TEST_TMPDIR/$c.once"
		"$REPORT" --file "$BATS_TEST_TMPDIR/twice.journal" --credentials $c >"$BATS_TEST_TMPDIR/$c.twice"
		cmp "$BATS_TEST_TMPDIR/$c.once" "$BATS_TEST_TMPDIR/$c.twice"
	done
	[ "$(python3 -c 'import csv, sys; print(sum(1 for r in csv.reader(open(sys.argv[1], newline="", encoding="latin-1"))) - 1)' \
	    "$BATS_TEST_TMPDIR/csv.twice")" -eq 16 ]
	run "$REPORT" --file "$BATS_TEST_TMPDIR/twice.journal"
	assert_output --partial "counted once: $n"
	# two different entries with the same stamps (one journald can give them) are two
	journalctl --no-pager PERSONA_HOSTNAME="$NAME" EVENT_TYPE=connect -n 1 -o export >"$BATS_TEST_TMPDIR/one"
	{ cat "$BATS_TEST_TMPDIR/one"; sed 's/^SESSION_ID=.*/SESSION_ID=another/' "$BATS_TEST_TMPDIR/one"; } |
	    /lib/systemd/systemd-journal-remote --output="$BATS_TEST_TMPDIR/same-stamps.journal" - 2>/dev/null
	[ "$(journalctl --no-pager --file "$BATS_TEST_TMPDIR/same-stamps.journal" -o export |
	    grep -a -c '^__MONOTONIC_TIMESTAMP=')" -eq 2 ]
	run "$REPORT" --file "$BATS_TEST_TMPDIR/same-stamps.journal" --json
	[ "$(jq .sessions <<<"$output")" -eq 2 ]
	[ "$(jq .resent <<<"$output")" -eq 0 ]
}

@test "report: a TLS client on the plain port is a tls probe, however its ClientHello was cut" {
	# a real TLS client (its ClientHello holds NULs and newlines), a bare record header
	# with no line end, and one ended by CRLF
	timeout 10 openssl s_client -connect "127.0.0.1:$PORT" </dev/null >/dev/null 2>&1 || true
	printf '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00' | nc -q 1 127.0.0.1 "$PORT" >/dev/null || true
	printf '\x16\x03\x01\x01\x24\x01\r\n' | nc -q 1 127.0.0.1 "$PORT" >/dev/null || true
	wait_sessions 3
	run "$REPORT" --decky "$NAME" --json
	assert_success
	[ "$(jq -r '.probe_kinds.top | map(.value + "=" + (.count | tostring)) | join(" ")' <<<"$output")" = "tls=3" ]
	[ "$(jq -r '.sessions' <<<"$output")" -eq 3 ]
}

@test "report: the terminal text holds every section and no raw control byte" {
	traffic
	run "$REPORT" --decky "$NAME" --top 20
	assert_success
	for s in Period 'Sessions over time' 'Top sources' 'Top user names' 'Top passwords' \
	    'Relay targets' 'Sender domains' 'Campaigns by message SHA-256' \
	    'Campaigns by normalised Subject' 'TLS clients by JA4' 'HELO/EHLO names' \
	    'Non-SMTP probes'; do
		assert_output --partial "$s"
	done
	assert_output --partial 'esc : \x1b[31mred\x1b]0;owned\x07\x1b[2J'
	assert_output --partial 'p\xe4ssw\xf6rd'
	assert_output --partial '(5000 bytes)'
	"$REPORT" --decky "$NAME" --top 20 >"$BATS_TEST_TMPDIR/out"
	# only printable ASCII and newlines
	"$TESTS/no-control" <"$BATS_TEST_TMPDIR/out"
}

@test "report --credentials: the hostile credentials byte for byte, as CSV and as wordlists" {
	traffic
	out=$BATS_TEST_TMPDIR
	"$REPORT" --decky "$NAME" --credentials csv >"$out/creds.csv"
	"$REPORT" --decky "$NAME" --credentials usernames >"$out/users"
	"$REPORT" --decky "$NAME" --credentials passwords >"$out/passwords"
	# what smtp-brute sent, and swaks' PLAIN credential
	python3 - "$out" <<'PY'
import csv, io, sys
d = sys.argv[1]
pairs = [(b"swaksuser", b"swakspass")] + [tuple(bytes.fromhex(x) for x in l.split())
                                          for l in open(d + "/sent-creds")]
rows = list(csv.reader(io.StringIO(open(d + "/creds.csv", "rb").read().decode("latin-1"),
                                   newline="")))
assert rows[0][8:10] == ["username", "password"], rows[0]
got = [(r[8].encode("latin-1"), r[9].encode("latin-1")) for r in rows[1:]]
assert len(got) == len(pairs) == 16, len(got)
for g, p in zip(got, pairs):
    assert g == p, (g[:80], p[:80])
assert all(r[1] == "127.0.0.1" and r[5] in ("LOGIN", "PLAIN") and r[6] == "accepted"
           for r in rows[1:])
users = open(d + "/users", "rb").read().split(b"\0")[:-1]
pw = open(d + "/passwords", "rb").read().split(b"\0")[:-1]
# NUL-terminated: a user name holding a NUL reads as two words, nothing else changes
assert b"\0".join(users) == b"\0".join(u for u, _ in pairs)
assert len(users) == 17
assert pw == [p for _, p in pairs]
assert len(pw[4]) == 5000 and pw[4].endswith(b"\x1b")
PY
	# raw bytes never go to a terminal
	run script -qec "$REPORT --decky $NAME --credentials csv" /dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a terminal"* ]]
}

# recipe CMD - one example as the operator would type it, in a private mount namespace
# where the catalog is this tree's (journalctl -x), in a directory of its own, with the
# man page's ~/.jq; its output in $output, its files in $BATS_TEST_TMPDIR/work
recipe() {
	run unshare -m bash -c 'mkdir -p /var/lib/systemd/catalog &&
	    mount -t tmpfs none /var/lib/systemd/catalog &&
	    mount --bind "$1" /usr/lib/systemd/catalog &&
	    journalctl --update-catalog && cd "$2" && HOME=$2/home PATH=$3:$PATH exec bash -o pipefail -c "$4"' \
	    - "$BATS_TEST_TMPDIR/catalog" "$BATS_TEST_TMPDIR/work" "$(dirname "$REPORT")" "$1"
}

@test "every journalctl and report example of the man page and the README holds on hostile values" {
	[ "$(id -u)" -eq 0 ] || skip "needs root for a private mount namespace"
	traffic
	"$TESTS/smtp-hostile-tls" 127.0.0.1 "$PORT"
	# a Subject in valid UTF-8 with a right-to-left override: "invoice<RLO>fdp.exe"
	swaks --server 127.0.0.1 --port "$PORT" --to v@example.org \
	    --header "Subject: invoice$(printf '\xe2\x80\xae')fdp.exe" --body x >/dev/null
	wait_sessions 23
	sid=$(jq -r 'select(.event_type == "auth_attempt" and .username == "esc") | .session_id' "$EVENTS")
	ja4=$(jq -r 'select(.event_type == "tls" and .tls_result == "ok") | .ja4' "$EVENTS")
	[ -n "$sid" ]
	[ -n "$ja4" ]
	mkdir -p "$BATS_TEST_TMPDIR/work/home" "$BATS_TEST_TMPDIR/catalog"
	cp "$TOP/man/decky-smtpd.catalog" "$BATS_TEST_TMPDIR/catalog/"
	all=$BATS_TEST_TMPDIR/all-output
	: >"$all"
	n=0
	while IFS= read -r -d '' cmd; do
		if [[ $cmd == "JQ "* ]]; then
			printf '%s\n' "${cmd#JQ }" >"$BATS_TEST_TMPDIR/work/home/.jq"
			continue
		fi
		# the example's placeholders become this test's address, session, tool and files
		cmd=${cmd//203.0.113.7/127.0.0.1}
		cmd=${cmd//e5064bd6cbf7ec5e570582d5ed3c19db/$sid}
		cmd=${cmd//t13d311100_e8f1e7e78f70_d41ae481755e/$ja4}
		cmd=${cmd//\/var\/log\/decky-smtpd.json/$EVENTS}
		cmd=${cmd//\/var\/lib\/decky-smtpd/$SMTP_SPOOL}
		[[ $cmd == *" -f "* ]] && cmd="timeout 3 $cmd"
		recipe "$cmd"
		[ "$status" -eq 0 ] || { [ "$status" -eq 124 ] && [[ $cmd == timeout* ]]; } ||
		    { echo "$output" | tail -5 >&2; false; }
		# the terminal sees no control byte, whatever the recipe prints
		printf '%s' "$output" | "$TESTS/no-control"
		printf '%s\n' "$output" >>"$all"
		n=$((n + 1))
	done < <("$TESTS/recipes" "$TOP/man/decky-smtpd.8" "$TOP/README.md")
	[ "$n" -ge 15 ]
	# and nothing was lost on the way: every hostile value is there, escaped
	grep -qF '\x1b[31mred\x1b]0;owned\x07\x1b[2J' "$all"
	grep -qF 'RSET \x1b[31mpiped\x0d\x0a' "$all"			# DISCARDED
	grep -qF "tls\\xffuser	$(printf 'L%.0s' $(seq 4999))\\x1b" "$all"	# 5000 bytes in TLS
	grep -qF '\x1b[31mpwn\xe9' "$all"				# a Subject
	grep -qF 'ad\x00min' "$all"
	grep -qF 'invoice\u202efdp.exe' "$all"
	# the files hold the bytes as they are
	grep -qaF $'\x1b[31mred\x1b]0;owned\x07\x1b[2J' "$BATS_TEST_TMPDIR/work/creds.csv"
	grep -qaF $'\x1b[31mred\x1b]0;owned\x07\x1b[2J' "$BATS_TEST_TMPDIR/work/session.export"
}
