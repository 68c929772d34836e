#!/usr/bin/env bats
# decky-smtpd-analyze: messages the tests build (tests/mkmail), stored by a real
# session, taken apart into message_analyzed events in a real journald and JSON.

load helper

ANALYZE=$(dirname "$DECKY")/decky-smtpd-analyze
[ -x "$ANALYZE" ] || ANALYZE=$TOP/decky-smtpd-analyze

setup() {
	common_setup
	AEVENTS=$BATS_TEST_TMPDIR/analyzed.json
	: >"$AEVENTS"
	MAIL=$BATS_TEST_TMPDIR/mail
	mkdir -p "$MAIL"
}

teardown() {
	[ -n "${WATCHER:-}" ] && kill "$WATCHER" 2>/dev/null && wait "$WATCHER" 2>/dev/null
	[ -n "${DECOY:-}" ] && kill "$DECOY" 2>/dev/null && wait "$DECOY" 2>/dev/null
	return 0
}

# store KIND - build a message of KIND (unless $MAIL/KIND is there) and send it through
# a session; its sidecar's queue id in $QID, its file's name in $F, its session in $SID
store() {
	[ -f "$MAIL/$1" ] || "$TESTS/mkmail" "$1" "$MAIL/$1" || return 1
	{
		printf 'EHLO bot.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<v@example.org>\r\nDATA\r\n'
		sed 's/^\./../' "$MAIL/$1"
		printf '.\r\nQUIT\r\n'
	} | "$DECKY" --log=journal,json:"$EVENTS" >/dev/null || return 1
	QID=$(jq -r 'select(.event_type == "message_accepted") | .msg_id' "$EVENTS" | tail -1)
	SID=$(jq -r 'select(.event_type == "message_accepted") | .session_id' "$EVENTS" | tail -1)
	# the file's name is not the queue id the client saw: the event names the file
	F=$(jq -r 'select(.event_type == "message_accepted") | .spool_file' "$EVENTS" | tail -1)
	F=${F##*/}
	[ -n "$QID" ] && [ -n "$F" ] && { [ -f "$SMTP_SPOOL/new/$F" ] || [ -f "$SMTP_SPOOL/cur/$F" ]; }
}

# analyze [ARGS...] - one --once run over the spool, events to the journal and JSON
analyze() {
	run "$ANALYZE" --once --spool="$SMTP_SPOOL" --log=journal,json:"$AEVENTS" "$@"
	echo "$output"
	assert_success
}

# analyzed QID FIELD - a field of the JSON message_analyzed event of QID (arrays joined by |)
analyzed() {
	jq -r --arg q "$1" --arg f "$2" 'select(.event_type == "message_analyzed" and .msg_id == $q) |
	    .[$f] // empty | if type == "array" then join("|") else . end' "$AEVENTS"
}

# journal_entry QID - the message_analyzed entry of QID in the journal (5 s at most)
journal_entry() {
	local i
	for i in $(seq 50); do
		J=$(journalctl --no-pager -o json EVENT_TYPE=message_analyzed MSG_ID="$1" 2>/dev/null | tail -1)
		[ -n "$J" ] && return 0
		sleep 0.1
	done
	return 1
}

# expect_hashes KIND QID - each attachment mkmail encoded is in the event and the
# analysis document, with its name, size, SHA-256 and MD5
expect_hashes() {
	local doc n i name size sha md5
	doc=$(analyzed "$2" analysis_file)
	[ -f "$doc" ]
	n=$(jq '.attachments | length' "$MAIL/$1.expect")
	[ "$n" -gt 0 ]
	[ "$(jq .attachments_total "$doc")" -eq "$n" ]
	for i in $(seq 0 $((n - 1))); do
		name=$(jq -r ".attachments[$i].name" "$MAIL/$1.expect")
		size=$(jq -r ".attachments[$i].size" "$MAIL/$1.expect")
		sha=$(jq -r ".attachments[$i].sha256" "$MAIL/$1.expect")
		md5=$(jq -r ".attachments[$i].md5" "$MAIL/$1.expect")
		jq -e --arg n "$name" --arg s "$sha" --arg m "$md5" --argjson z "$size" \
		    '.attachments[] | select(.name == $n and .sha256 == $s and .md5 == $m and .size == $z and .complete)' "$doc" >/dev/null ||
		    fail "attachment $name ($sha) not in $doc"
		grep -qw "$sha" <<<"$(analyzed "$2" attachment_sha256)" || fail "$sha not in the event"
		grep -qw "$md5" <<<"$(analyzed "$2" attachment_md5)" || fail "$md5 not in the event"
	done
}

@test "an accepted message is analyzed once into the journal, joined to its session, and moved to cur/" {
	ensure_journald
	store mixed
	analyze
	[ ! -e "$SMTP_SPOOL/new/$F" ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	[ ! -e "$SMTP_SPOOL/meta/$F.analysis.pending" ]
	journal_entry "$QID"
	[ "$(jq -r .SESSION_ID <<<"$J")" = "$SID" ]
	[ "$(jq -r .SYSLOG_IDENTIFIER <<<"$J")" = decky-smtpd ]
	[ "$(jq -r .MESSAGE_ID <<<"$J")" = aaf42535528d4373965657540eb9317f ]
	[ "$(jq -r .SPOOL_FILE <<<"$J")" = "$SMTP_SPOOL/cur/$F" ]
	[ "$(jq -r .META_FILE <<<"$J")" = "$SMTP_SPOOL/meta/$F.json" ]
	[ "$(jq -r .ANALYSIS_FILE <<<"$J")" = "$SMTP_SPOOL/meta/$F.analysis.json" ]
	[ "$(jq -r .PARTIAL <<<"$J")" = 0 ]
	[ "$(jq -r .RESULT <<<"$J")" = complete ]
	[ "$(jq -r .STAGE <<<"$J")" = done ]
	[ "$(jq -r .PARTS <<<"$J")" = 5 ]
	[ "$(jq -r .DEPTH <<<"$J")" = 2 ]
	[ "$(jq -r .MIME_TYPES <<<"$J")" = "multipart/mixed text/plain application/pdf image/gif" ]
	[ "$(jq -r .SUBJECT <<<"$J")" = "Rechnung für Sie" ]
	[ "$(jq -r .FROM <<<"$J")" = "Sender <sender@example.org>" ]
	[ "$(jq -r .RECEIVED_FROM <<<"$J")" = "bot.example [198.51.100.7]" ]
	[ "$(jq -r .CHARSETS <<<"$J")" = utf-8 ]
	[ "$(jq -r .ATTACHMENTS <<<"$J")" = 3 ]
	[ "$(jq -r '.ATTACHMENT_NAME | sort | join("|")' <<<"$J")" = "naïve résumé.pdf|notes.txt|Überweisung.gif" ]
	[ "$(jq -r '.ATTACHMENT_TYPE | sort | join("|")' <<<"$J")" = "application/pdf|image/gif|text/plain" ]
	[ "$(jq -r .URL <<<"$J")" = "https://pay.example.com/inv?id=7" ]
	[ "$(jq -r .URL_HOST <<<"$J")" = pay.example.com ]
	[ "$(jq -r .SHA256 <<<"$J")" = "$(sha256sum <"$SMTP_SPOOL/cur/$F" | cut -c1-64)" ]
	# every attachment's SHA-256 is a journalctl match away
	for h in $(jq -r '.attachments[].sha256' "$MAIL/mixed.expect"); do
		journalctl --no-pager -o json ATTACHMENT_SHA256="$h" | jq -r .MSG_ID | grep -qx "$QID"
	done
	# one match on SESSION_ID joins the session's events and the analysis
	[ "$(journalctl --no-pager -o json SESSION_ID="$SID" | jq -r .EVENT_TYPE | grep -c -e message_accepted -e message_analyzed)" -eq 2 ]
	expect_hashes mixed "$QID"
	# the names as sent: RFC 2231 and RFC 2047
	doc=$SMTP_SPOOL/meta/$F.analysis.json
	[ "$(jq -r '.attachments[] | select(.name == "naïve résumé.pdf") | .name_sent' "$doc")" = "filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf" ]
	[ "$(jq -r '.attachments[] | select(.name == "Überweisung.gif") | .name_sent' "$doc")" = 'filename="=?UTF-8?Q?=C3=9Cberweisung.gif?="' ]
	# a second run finds nothing to do
	: >"$AEVENTS"
	analyze
	[ ! -s "$AEVENTS" ]
}

@test "HTML links are found through entities, user@ and numeric hosts, with its script and embedded file flagged" {
	store html
	analyze
	[ "$(analyzed "$QID" url_host)" = "entity.example|evil.example|192.168.1.1|track.example" ]
	analyzed "$QID" url | grep -qF 'https://entity.example/login'
	analyzed "$QID" url | grep -qF 'HTTP://%65%76%69%6c.example/pct'
	flags=" $(analyzed "$QID" flags) "
	for f in html_script html_smuggling twin_differs url_userinfo url_numeric_host; do
		[[ "$flags" == *" $f "* ]] || fail "no $f in$flags"
	done
	doc=$(analyzed "$QID" analysis_file)
	[ "$(jq -r '.urls[] | select(.url == "http://www.bank.example@evil.example/") | .host + " " + .flags' "$doc")" = "evil.example userinfo" ]
	[ "$(jq -r '.urls[] | select(.url == "HTTP://%65%76%69%6c.example/pct") | .host + " " + .flags' "$doc")" = "evil.example encoded_host" ]
	[ "$(jq -r '.urls[] | select(.host == "192.168.1.1") | .source' "$doc")" = html ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
}

@test "a text/plain twin that says what its HTML says is not flagged" {
	store twin-same
	analyze
	[ "$(analyzed "$QID" flags)" = "" ]
	[ "$(analyzed "$QID" parts)" = 3 ]
	[ "$(analyzed "$QID" mime_types)" = "multipart/alternative text/plain text/html" ]
}

@test "an Office file with a VBA project is flagged as a macro, its hash checked" {
	store office
	analyze
	[ "$(analyzed "$QID" flags)" = macro ]
	expect_hashes office "$QID"
	[ "$(jq -r '.attachments[0].flags' "$(analyzed "$QID" analysis_file)")" = macro ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
}

@test "a password-protected zip and an executable named .pdf are flagged" {
	store zipcrypt
	analyze
	[ "$(analyzed "$QID" flags)" = "encrypted_archive disguised_executable" ]
	expect_hashes zipcrypt "$QID"
	doc=$(analyzed "$QID" analysis_file)
	[ "$(jq -r '.attachments[] | select(.name == "invoice.zip") | .flags + " " + .detected_type' "$doc")" = "encrypted application/zip" ]
	[ "$(jq -r '.attachments[] | select(.name == "scan.pdf") | .declared_type + " " + .flags' "$doc")" = "application/pdf disguised_executable" ]
	[ "$(jq -r '.attachments[] | select(.name == "scan.pdf") | .detected_type' "$doc")" != application/pdf ]
}

@test "8-bit ISO-8859-1 and KOI8-R parts are decoded: subject, sender, charsets, links" {
	store charsets
	analyze
	[ "$(analyzed "$QID" subject)" = "Grüße aus Köln" ]
	[ "$(analyzed "$QID" from)" = "Василий <v@example.ru>" ]
	[ "$(analyzed "$QID" charsets)" = "iso-8859-1 koi8-r" ]
	[ "$(analyzed "$QID" language)" = de ]
	[ "$(analyzed "$QID" url_host)" = "köln.example|privet.example" ]
	[ "$(analyzed "$QID" url)" = "http://köln.example/ä|http://privet.example/" ]
}

@test "a nested message/rfc822 is walked: its attachment hashed, its links found" {
	store nested
	analyze
	[ "$(analyzed "$QID" parts)" = 6 ]
	[ "$(analyzed "$QID" depth)" = 4 ]
	[[ "$(analyzed "$QID" mime_types)" == *message/rfc822* ]]
	[ "$(analyzed "$QID" url_host)" = inner.example ]
	expect_hashes nested "$QID"
}

@test "malformed MIME a client would still render is flagged with GMime's warnings, and walked" {
	store malformed
	analyze
	[ "$(analyzed "$QID" result)" = complete ]
	[ "$(analyzed "$QID" flags)" = malformed ]
	[ "$(analyzed "$QID" mime_warnings)" = "truncated_message multipart_without_boundary" ]
	[ "$(analyzed "$QID" url_host)" = first.example ]
	expect_hashes malformed "$QID"
}

@test "bidi and invisible format controls in a name or subject are escaped, so a .exe cannot pass for a .pdf" {
	# U+202E (right-to-left override) in a RFC 2047 file name, U+200B and U+FEFF
	# (zero-width) in the subject, U+061C in a second name
	printf '%s\r\n' 'From: <s@example.org>' 'To: <v@example.org>' \
	    'Subject: =?UTF-8?Q?pay=E2=80=8Bment=EF=BB=BF?=' 'MIME-Version: 1.0' \
	    'Content-Type: multipart/mixed; boundary="b"' '' '--b' 'Content-Type: text/plain' '' 'see attached' \
	    '--b' 'Content-Type: application/octet-stream' \
	    'Content-Disposition: attachment; filename="=?UTF-8?Q?invoice=E2=80=AEfdp.exe?="' \
	    'Content-Transfer-Encoding: base64' '' 'TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=' \
	    '--b' 'Content-Type: text/plain' 'Content-Disposition: attachment' '' 'no name' \
	    '--b' 'Content-Type: text/plain' 'Content-Disposition: attachment; filename="=?UTF-8?Q?a=D8=9Cb.txt?="' '' 'x' \
	    '--b--' >"$MAIL/bidi"
	store bidi
	analyze
	# (and the names pair with the types, "" for the one without a name)
	[ "$(analyzed "$QID" attachment_name)" = 'invoice\u202efdp.exe||a\u061cb.txt' ]
	[ "$(jq -r 'select(.event_type == "message_analyzed") | .attachment_type | length' "$AEVENTS")" -eq 3 ]
	[ "$(analyzed "$QID" subject)" = 'pay\u200bment\ufeff' ]
	doc=$(analyzed "$QID" analysis_file)
	[ "$(jq -r '.attachments[0].name' "$doc")" = 'invoice\u202efdp.exe' ]
	# nowhere in the event or the document a byte of U+202E, U+200B, U+FEFF or U+061C
	run grep -l -e $'\xe2\x80\xae' -e $'\xe2\x80\x8b' -e $'\xef\xbb\xbf' -e $'\xd8\x9c' "$AEVENTS" "$doc"
	[ "$status" -eq 1 ]
}

@test "a message cut off by a disconnect is analyzed as partial, stays in partial/, and only once" {
	"$TESTS/mkmail" truncated "$MAIL/t"
	{
		printf 'EHLO bot.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<v@example.org>\r\nDATA\r\n'
		cat "$MAIL/t"
	} | "$DECKY" --log=json:"$EVENTS" >/dev/null
	QID=$(jq -r 'select(.event_type == "message_partial") | .msg_id' "$EVENTS")
	F=$(jq -r 'select(.event_type == "message_partial") | .spool_file' "$EVENTS")
	F=${F##*/}
	[ -f "$SMTP_SPOOL/partial/$F" ]
	analyze
	[ "$(analyzed "$QID" partial)" = 1 ]
	[ "$(analyzed "$QID" reason)" = eof ]
	[ "$(analyzed "$QID" spool_file)" = "$SMTP_SPOOL/partial/$F" ]
	[ "$(analyzed "$QID" url_host)" = cut.example ]
	[[ " $(analyzed "$QID" flags) " == *" malformed "* ]]
	[ -f "$SMTP_SPOOL/partial/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	: >"$AEVENTS"
	analyze
	[ ! -s "$AEVENTS" ]
}

@test "MIME bombs (2000 deep, 20000 parts) are walked within their bounds and flagged" {
	store bomb-deep
	deep=$QID deepf=$F
	store bomb-wide
	wide=$QID widef=$F
	analyze
	[ "$(analyzed "$deep" result)" = complete ]
	[ "$(analyzed "$deep" depth)" = 32 ]
	[[ " $(analyzed "$deep" flags) " == *" limit "* ]]
	[[ "$(analyzed "$deep" mime_warnings)" == *nesting_overflow* ]]
	[ "$(analyzed "$wide" result)" = complete ]
	[ "$(analyzed "$wide" parts)" = 512 ]
	[ "$(analyzed "$wide" flags)" = limit ]
	[ "$(jq '.attachments | length' "$(analyzed "$wide" analysis_file)")" -eq 64 ]
	[ "$(analyzed "$wide" attachments)" -ge 64 ]
	for q in $deep $wide; do
		echo "$q: $(analyzed "$q" cpu_ms) ms of CPU, $(analyzed "$q" maxrss_kb) KiB"
		[ "$(analyzed "$q" cpu_ms)" -lt 10000 ]
	done
	[ -f "$SMTP_SPOOL/cur/$deepf" ] && [ -f "$SMTP_SPOOL/cur/$widef" ]
}

@test "a 50 MB attachment is hashed right with memory bounded" {
	export SMTP_SIZE_LIMIT=200000000 SMTP_SPOOL_BUDGET=0
	BIG_MB=50 store big
	run /usr/bin/time -f %M "$ANALYZE" --once --spool="$SMTP_SPOOL" --log=json:"$AEVENTS"
	assert_success
	expect_hashes big "$QID"
	[ "$(jq -r '.attachments[0].size' "$(analyzed "$QID" analysis_file)")" -eq $((50 << 20)) ]
	child=$(analyzed "$QID" maxrss_kb)
	parent=$(tail -1 <<<"$output")
	echo "peak RSS: parser child $child KiB, analyzer $parent KiB, message $(stat -c %s "$SMTP_SPOOL/cur/$F") bytes"
	# the whole message is 69 MB of base64: neither process holds it
	limit=65536
	[ -z "${DECKY_SANITIZED:-}" ] || limit=262144
	[ "$child" -lt "$limit" ]
	[ "$parent" -lt "$limit" ]
}

@test "a parser child keeps none of the analyzer's files, and one killed by SIGKILL is reported killed" {
	export SMTP_SIZE_LIMIT=200000000 SMTP_SPOOL_BUDGET=0
	BIG_MB=50 store big
	"$ANALYZE" --watch --spool="$SMTP_SPOOL" --log=json:"$AEVENTS" &
	WATCHER=$!
	# its parser child, caught (without a fork per look) and stopped mid-parse
	child=
	for i in $(seq 20000); do
		read -r child _ <"/proc/$WATCHER/task/$WATCHER/children" || true	# (no newline)
		[ -n "$child" ] && break
	done
	[ -n "$child" ]
	# past its set-up: the parser's own dup of the message is fd 4
	for i in $(seq 2000); do
		[ "$(readlink "/proc/$child/fd/4")" = "$SMTP_SPOOL/new/$F" ] && break
	done
	kill -STOP "$child"
	fds=$(ls -l /proc/"$child"/fd/)
	echo "$fds"
	kill -9 "$child"
	! grep -e inotify -e "$AEVENTS" -e socket: <<<"$fds" || fail "the child holds the analyzer's files"
	for i in $(seq 50); do
		[ -n "$(analyzed "$QID" result)" ] && break
		sleep 0.1
	done
	[ "$(analyzed "$QID" result)" = killed ]
	[ "$(analyzed "$QID" cpu_ms)" -lt 10000 ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
}

@test "an analyzer killed at random points and run again analyzes nothing twice and misses nothing" {
	n=24
	for i in $(seq $n); do store mixed; done
	[ "$(ls "$SMTP_SPOOL/new" | wc -l)" -eq $n ]
	kills=0 mid=0
	for d in 0.05 0.1 0.15 0.2 0.3; do
		"$ANALYZE" --watch --spool="$SMTP_SPOOL" --log=json:"$AEVENTS" &
		pid=$!
		sleep "$d"
		kill -9 "$pid"
		wait "$pid" 2>/dev/null || true
		kills=$((kills + 1))
		left=$(ls "$SMTP_SPOOL/new" | wc -l)
		[ "$left" -gt 0 ] && [ "$left" -lt $n ] && mid=$((mid + 1))
		echo "killed after ${d}s: $left left in new/"
	done
	[ "$mid" -gt 0 ]	# at least one kill fell in the middle of the work
	analyze
	[ "$(ls "$SMTP_SPOOL/new" | wc -l)" -eq 0 ]
	[ "$(ls "$SMTP_SPOOL/cur" | wc -l)" -eq $n ]
	[ "$(ls "$SMTP_SPOOL"/meta/*.analysis.json | wc -l)" -eq $n ]
	[ -z "$(ls "$SMTP_SPOOL"/meta/ | grep -e '\.pending$' -e '\.sent$' -e '\.tmp$')" ]
	for q in $(ls "$SMTP_SPOOL/cur"); do
		all=$(jq -r --arg q "$q" 'select((.spool_file | split("/") | last) == $q) | .msg_id' "$AEVENTS" | wc -l)
		first=$(jq -r --arg q "$q" 'select((.spool_file | split("/") | last) == $q and .replay == null) | .msg_id' "$AEVENTS" | wc -l)
		[ "$all" -ge 1 ] || fail "$q: no event"
		[ "$first" -le 1 ] || fail "$q: analyzed $first times"
	done
	total=$(wc -l <"$AEVENTS")
	echo "$total events for $n messages after $kills kills"
	[ "$total" -le $((n + kills)) ]
}

@test "a crash between the durable results and the event: the rerun sends the event from them, marked" {
	store office
	# the state such a crash leaves, made from a real run: the document still
	# .pending, the message back in new/
	analyze
	mv "$SMTP_SPOOL/cur/$F" "$SMTP_SPOOL/new/$F"
	mv "$SMTP_SPOOL/meta/$F.analysis.json" "$SMTP_SPOOL/meta/$F.analysis.pending"
	before=$(jq -r .event.CPU_MS "$SMTP_SPOOL/meta/$F.analysis.pending")
	: >"$AEVENTS"
	analyze
	[ "$(analyzed "$QID" replay)" = 1 ]
	[ "$(analyzed "$QID" flags)" = macro ]
	[ "$(analyzed "$QID" cpu_ms)" = "$before" ]	# from the document, not a new parse
	[ -f "$SMTP_SPOOL/cur/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	# sent and moved but not yet marked done: the mark alone is made, no event
	mv "$SMTP_SPOOL/meta/$F.analysis.json" "$SMTP_SPOOL/meta/$F.analysis.sent"
	: >"$AEVENTS"
	analyze
	[ ! -s "$AEVENTS" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	# the same left .pending by an analyzer older than the .sent state
	mv "$SMTP_SPOOL/meta/$F.analysis.json" "$SMTP_SPOOL/meta/$F.analysis.pending"
	analyze
	[ ! -s "$AEVENTS" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
}

@test "a message whose move to cur/ keeps failing has its event sent once; a missing cur/ is made" {
	store office
	# cur/ a file: the move fails (ENOTDIR), as would a full or read-only cur/
	rm -rf "$SMTP_SPOOL/cur"
	: >"$SMTP_SPOOL/cur"
	analyze
	[ "$(analyzed "$QID" flags)" = macro ]
	[ -f "$SMTP_SPOOL/new/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.sent" ]
	[ ! -e "$SMTP_SPOOL/meta/$F.analysis.pending" ]
	analyze
	analyze
	[ "$(jq -s length "$AEVENTS")" -eq 1 ]
	# no cur/ at all: the analyzer makes it, moves the message, sends nothing again
	rm "$SMTP_SPOOL/cur"
	analyze
	[ "$(jq -s length "$AEVENTS")" -eq 1 ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
	[ ! -e "$SMTP_SPOOL/new/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	[ ! -e "$SMTP_SPOOL/meta/$F.analysis.sent" ]
}

@test "an event no sink took leaves the message and its results in place, and a later run sends it" {
	store office
	# /dev/full as the only sink: every write of the event fails
	run "$ANALYZE" --once --spool="$SMTP_SPOOL" --log=json:/dev/full
	echo "$output"
	assert_output --partial "no sink took the event"
	[ -f "$SMTP_SPOOL/new/$F" ]
	[ ! -e "$SMTP_SPOOL/cur/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.pending" ]
	[ ! -e "$SMTP_SPOOL/meta/$F.analysis.json" ]
	analyze
	[ "$(analyzed "$QID" replay)" = 1 ]
	[ "$(analyzed "$QID" flags)" = macro ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
	[ -f "$SMTP_SPOOL/meta/$F.analysis.json" ]
	[ ! -e "$SMTP_SPOOL/meta/$F.analysis.pending" ]
}

@test "a young message waits for its own sidecar without opening the others; an old one's is found by a scan" {
	store html
	young=$F yqid=$QID ysid=$SID
	store office
	old=$F oqid=$QID
	# a decoy sidecar that records being opened: a FIFO whose writer's open
	# returns only once a reader opens it
	mkfifo "$SMTP_SPOOL/meta/decoy.json"
	( exec 3>"$SMTP_SPOOL/meta/decoy.json"; : >"$BATS_TEST_TMPDIR/opened" ) &
	DECOY=$!
	mv "$SMTP_SPOOL/meta/$old.json" "$SMTP_SPOOL/meta/renamed.json"
	touch -d '1 minute ago' "$SMTP_SPOOL/new/$old"
	# the young message's sidecar still on its way, then there
	mv "$SMTP_SPOOL/meta/$young.json" "$SMTP_SPOOL/meta/$young.hidden"
	mv "$SMTP_SPOOL/new/$old" "$BATS_TEST_TMPDIR/$old"
	timeout 20 "$ANALYZE" --once --spool="$SMTP_SPOOL" --log=json:"$AEVENTS" &
	pid=$!
	sleep 1
	mv "$SMTP_SPOOL/meta/$young.hidden" "$SMTP_SPOOL/meta/$young.json"
	wait "$pid"
	[ "$(analyzed "$yqid" session_id)" = "$ysid" ]
	[ -f "$SMTP_SPOOL/cur/$young" ]
	[ ! -e "$BATS_TEST_TMPDIR/opened" ] || fail "a young message's wait opened meta/decoy.json"
	# past the wait, a sidecar under another name is looked for in all of meta/
	mv "$BATS_TEST_TMPDIR/$old" "$SMTP_SPOOL/new/$old"
	run timeout 20 "$ANALYZE" --once --spool="$SMTP_SPOOL" --log=json:"$AEVENTS"
	assert_success
	[ "$(analyzed "$oqid" meta_file)" = "$SMTP_SPOOL/meta/renamed.json" ]
	[ "$(analyzed "$oqid" flags)" = macro ]
}

@test "in watch mode a stored message gets its event within seconds" {
	ensure_journald
	"$ANALYZE" --watch --spool="$SMTP_SPOOL" --log=journal,json:"$AEVENTS" &
	WATCHER=$!
	sleep 0.3
	store html
	for i in $(seq 50); do
		[ -n "$(analyzed "$QID" msg_id)" ] && break
		sleep 0.1
	done
	[ "$(analyzed "$QID" msg_id)" = "$QID" ]
	journal_entry "$QID"
	[ "$(jq -r .SESSION_ID <<<"$J")" = "$SID" ]
	[ -f "$SMTP_SPOOL/cur/$F" ]
	kill -TERM "$WATCHER"
	wait "$WATCHER"
	WATCHER=
}
