#!/usr/bin/env bats
# The SMTP dialogue over a pipe: the seed's cases and Postfix's replies.

load helper

setup() {
	common_setup
}

@test "the greeting is the Postfix banner for the persona's host name" {
	smtp QUIT
	assert_success
	assert_line -n 0 $'220 omega-decky ESMTP Postfix (Debian/GNU)\r'
	assert_line -n 1 $'221 2.0.0 Bye\r'
	crlf_ok
}

@test "SMTP_BANNER replaces the whole greeting text" {
	SMTP_BANNER="mx.example.net ESMTP" smtp QUIT
	assert_line -n 0 $'220 mx.example.net ESMTP\r'
}

@test "EHLO lists the reference's keywords in its order" {
	smtp "EHLO test.com" QUIT
	want=('220 omega-decky ESMTP Postfix (Debian/GNU)' 250-omega-decky 250-PIPELINING
	    '250-SIZE 10240000' 250-VRFY 250-ETRN 250-STARTTLS '250-AUTH PLAIN LOGIN' 250-ENHANCEDSTATUSCODES
	    250-8BITMIME 250-DSN 250-SMTPUTF8 '250 CHUNKING' '221 2.0.0 Bye')
	[ "${#lines[@]}" -eq "${#want[@]}" ]
	for i in "${!want[@]}"; do assert_line -n "$i" "${want[$i]}"$'\r'; done
	[ "$(event_field ehlo domain)" = test.com ]
	[ "$(event_field ehlo command)" = EHLO ]
}

@test "a full send flow is queued, stored and logged" {
	smtp "EHLO test.com" "MAIL FROM:<a@b.c>" "RCPT TO:<victim@example.org>" DATA \
	    "Subject: hello" "" "Body line 1" "Body line 2" . QUIT
	assert_success
	assert_line -n 13 $'250 2.1.0 Ok\r'
	assert_line -n 14 $'250 2.1.5 Ok\r'
	assert_line -n 15 $'354 End data with <CR><LF>.<CR><LF>\r'
	assert_line -n 16 --regexp $'^250 2.0.0 Ok: queued as [0-9A-F]{6,}\r$'
	assert_line -n 17 $'221 2.0.0 Bye\r'
	qid=$(printf '%s' "${lines[16]}" | sed -E 's/.*queued as ([0-9A-F]+).*/\1/')
	[ "$(event_field message_accepted msg_id)" = "$qid" ]
	[ "$(event_field message_accepted mail_from)" = a@b.c ]
	[ "$(event_field message_accepted rcpt_to)" = victim@example.org ]
	[ "$(event_field message_accepted body_bytes)" = 44 ]
	f=$(event_field message_accepted spool_file)
	[ "$(dirname "$f")" = "$SMTP_SPOOL/new" ]
	jq -e --arg q "$qid" --arg f "$f" '.queue_id == $q and .file == $f' "$SMTP_SPOOL/meta/${f##*/}.json"
	cmp "$f" <(printf 'Subject: hello\r\n\r\nBody line 1\r\nBody line 2\r\n')
	[ -z "$(ls "$SMTP_SPOOL/tmp")" ]
	[ "$(event_field disconnect reason)" = quit ]
}

@test "three recipients give three rcpt_to events and one message" {
	smtp "EHLO x" "MAIL FROM:<a@b.c>" "RCPT TO:<r1@one.example>" "RCPT TO:<r2@two.example>" \
	    "RCPT TO:r3@three.example" DATA x . QUIT
	assert_line --regexp '^250 2.0.0 Ok: queued as '
	[ "$(events rcpt_to | wc -l)" -eq 3 ]
	[ "$(event_field rcpt_to value 2)" = r3@three.example ]
	[ "$(event_field message_accepted rcpt_to)" = r1@one.example,r2@two.example,r3@three.example ]
	[ "$(event_field message_accepted rcpt_count)" = 3 ]
}

@test "an address Postfix reads differently from what was sent carries both, as VALUE and ADDRESS" {
	smtp "EHLO x" "MAIL FROM:<(nobody)>" "RCPT TO:<Boss <ceo@corp.example>>" \
	    "RCPT TO:<x(c)@y.z>" "RCPT TO:<plain@y.z>" QUIT
	assert_line -n 13 $'250 2.1.0 Ok\r'
	[ "$(event_field mail_from value)" = "(nobody)" ]
	[ "$(events mail_from | jq -r '.address')" = "" ]
	[ "$(events mail_from | jq 'has("address")')" = true ]
	[ "$(event_field rcpt_to value)" = "Boss <ceo@corp.example>" ]
	[ "$(event_field rcpt_to address)" = ceo@corp.example ]
	[ "$(event_field rcpt_to address 1)" = x@y.z ]
	[ "$(events rcpt_to | jq -s '.[2] | has("address")')" = false ]
}

@test "a dot-stuffed line is stored without its first dot" {
	smtp "HELO x" "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "..real dot" "...two" "." QUIT
	f=$(event_field message_accepted spool_file)
	cmp "$f" <(printf '.real dot\r\n..two\r\n')
}

@test "RSET ends the transaction, so DATA is refused after it" {
	smtp "EHLO x" "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" RSET DATA QUIT
	assert_line -n 15 $'250 2.0.0 Ok\r'
	assert_line -n 16 $'503 5.5.1 Error: need RCPT command\r'
	[ -z "$(events message_accepted)" ]
}

@test "DATA before MAIL is refused; DATA without a recipient too" {
	smtp "EHLO x" DATA "MAIL FROM:<a@b.c>" DATA QUIT
	assert_line -n 13 $'503 5.5.1 Error: need RCPT command\r'
	assert_line -n 15 $'554 5.5.1 Error: no valid recipients\r'
	[ "$(event_field command reply 0)" = 503 ]
}

@test "MAIL and RCPT errors get Postfix's replies" {
	smtp "EHLO x" "RCPT TO:<x@y.z>" "MAIL" "MAIL FROM:<a b>" "MAIL FROM:<a@b.c> SIZE=99999999" \
	    "MAIL FROM:<a@b.c> FOO=bar" "MAIL FROM:<a@b.c> BODY=8BITMIME SIZE=10" \
	    "MAIL FROM:<a@b.c>" "RCPT TO:<>" "RCPT TO:<nosuchuser@omega-decky>" "RCPT TO:<root@omega-decky>" QUIT
	assert_line -n 13 $'503 5.5.1 Error: need MAIL command\r'
	assert_line -n 14 $'501 5.5.4 Syntax: MAIL FROM:<address>\r'
	assert_line -n 15 $'501 5.1.7 Bad sender address syntax\r'
	assert_line -n 16 $'552 5.3.4 Message size exceeds fixed limit\r'
	assert_line -n 17 $'555 5.5.4 Unsupported option: FOO=bar\r'
	assert_line -n 18 $'250 2.1.0 Ok\r'
	assert_line -n 19 $'503 5.5.1 Error: nested MAIL command\r'
	assert_line -n 20 $'501 5.1.3 Bad recipient address syntax\r'
	assert_line -n 21 $'550 5.1.1 <nosuchuser@omega-decky>: Recipient address rejected: User unknown in local recipient table\r'
	assert_line -n 22 $'250 2.1.5 Ok\r'
	[ "$(event_field mail_from params)" = "BODY=8BITMIME SIZE=10" ]
}

@test "SIZE= values: bad syntax, over the limit, over what a file can hold" {
	smtp "MAIL FROM:<a@b.c> SIZE=x" "MAIL FROM:<a@b.c> SIZE=9223372036854775807" \
	    "MAIL FROM:<a@b.c> SIZE=9223372036854775808" "MAIL FROM:<a@b.c> SIZE=000000000000000000000001" QUIT
	assert_line -n 1 $'501 5.5.4 Bad message size syntax\r'
	assert_line -n 2 $'552 5.3.4 Message size exceeds fixed limit\r'
	assert_line -n 3 $'552 5.3.4 Message size exceeds file system imposed limit\r'
	assert_line -n 4 $'250 2.1.0 Ok\r'
}

@test "other commands: NOOP, VRFY, HELP, ETRN, unknown verbs, an empty line" {
	smtp NOOP "RSET x" "VRFY root" "VRFY nosuchuser" HELP "ETRN x.com" "HELO" "XYZZY" "" "STARTTLS now" QUIT
	assert_line -n 1 $'250 2.0.0 Ok\r'
	assert_line -n 2 $'501 5.5.4 Syntax: RSET\r'
	assert_line -n 3 $'252 2.0.0 root\r'
	assert_line -n 4 $'550 5.1.1 <nosuchuser>: Recipient address rejected: User unknown in local recipient table\r'
	assert_line -n 5 $'500 5.5.2 Error: command not recognized\r'
	assert_line -n 6 $'459 <x.com>: service unavailable\r'
	assert_line -n 7 $'501 Syntax: HELO hostname\r'
	assert_line -n 8 $'500 5.5.2 Error: command not recognized\r'
	assert_line -n 9 $'500 5.5.2 Error: bad syntax\r'
	assert_line -n 10 $'501 5.5.4 Syntax: STARTTLS\r'
	[ "$(event_field command command 4)" = HELP ]
	[ "$(event_field command value 5)" = "ETRN x.com" ]
}

@test "HTTP verbs and header lines end the session as Postfix ends it" {
	for l in "GET / HTTP/1.0" "POST / HTTP/1.1" "CONNECT x:25 HTTP/1.0" "Subject: hi" ". " "get /"; do
		smtp "$l" NOOP
		assert_line -n 1 $'221 2.7.0 Error: I can break rules, too. Goodbye.\r'
		[ "${#lines[@]}" -eq 2 ]
	done
	[ "$(event_field disconnect reason)" = non_smtp ]
}

@test "the hard error limit ends the session with 421" {
	args=()
	for i in $(seq 25); do args+=(XX); done
	smtp "${args[@]}"
	[ "${#lines[@]}" -eq 22 ]
	assert_line -n 20 $'500 5.5.2 Error: command not recognized\r'
	assert_line -n 21 $'421 4.7.0 omega-decky Error: too many errors\r'
	[ "$(event_field disconnect reason)" = too_many_errors ]
}

@test "after the soft error limit each reply is delayed by the error sleep" {
	args=()
	for i in $(seq 12); do args+=(XX); done
	start=$(date +%s%N)
	SMTP_ERROR_SLEEP=100 smtp "${args[@]}" QUIT
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	# replies 11, 12 and the QUIT reply come after 10 errors: 3 x 100 ms
	[ "$ms" -ge 300 ]
	assert_line -n 13 $'221 2.0.0 Bye\r'
}

@test "too many recipients get 452 once the recipient limit is reached" {
	SMTP_RECIPIENT_LIMIT=2 smtp "MAIL FROM:<a@b.c>" "RCPT TO:<1@x.y>" "RCPT TO:<2@x.y>" "RCPT TO:<3@x.y>" QUIT
	assert_line -n 4 $'452 4.5.3 Error: too many recipients\r'
	[ "$(events rcpt_to | wc -l)" -eq 2 ]
	[ "$(events command | jq -r 'select(.command == "RCPT") | [.value, .reply] | join(" ")')" = "RCPT TO:<3@x.y> 452" ]
}

@test "queue ids are Postfix-shaped and never repeat in one process" {
	lines=()
	for i in $(seq 300); do lines+=("MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "m $i" .); done
	smtp "${lines[@]}" QUIT
	ids=$(grep -o 'queued as [0-9A-F]*' <<<"$output" | cut -d' ' -f3)
	[ "$(wc -l <<<"$ids")" -eq 300 ]
	[ "$(sort -u <<<"$ids" | wc -l)" -eq 300 ]
	# upper-case hex, 10 to 12 digits as Postfix's short ids (time and inode based)
	[ -z "$(grep -vE '^[0-9A-F]{10,12}$' <<<"$ids")" ]
}

@test "a message larger than the size limit is refused after DATA, and kept as partial" {
	SMTP_SIZE_LIMIT=100 smtp "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA \
	    "$(printf 'A%.0s' $(seq 200))" . QUIT
	assert_line -n 4 $'552 5.3.4 Error: message file too big\r'
	[ "$(event_field message_partial reason)" = too_big ]
	[ "$(event_field message_partial body_bytes)" = 202 ]
	[ "$(event_field message_partial reply)" = 552 ]
	[ -z "$(events message_accepted)" ]
	[ -z "$(ls "$SMTP_SPOOL/new")" ]
	[ -z "$(ls "$SMTP_SPOOL/tmp")" ]
	# the evidence: every byte, under partial/
	f=$(event_field message_partial spool_file)
	[ "$(dirname "$f")" = "$SMTP_SPOOL/partial" ]
	cmp "$f" <(printf '%s\r\n' "$(printf 'A%.0s' $(seq 200))")
}

@test "BDAT chunks, LAST included, make one message" {
	smtp_raw 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 5\r\nhelloBDAT 6 LAST\r\n worldQUIT\r\n'
	assert_line -n 15 $'250 2.0.0 Ok: 5 bytes\r'
	assert_line -n 16 --regexp $'^250 2.0.0 Ok: 13 bytes queued as [0-9A-F]+\r$'
	# the reply counts the line end Postfix would add; the file keeps what was sent
	cmp "$(event_field message_accepted spool_file)" <(printf 'hello world')
}

@test "BDAT without a recipient is read and refused; bad BDAT syntax hangs up" {
	smtp_raw 'BDAT 4\r\nNOOPBDAT x\r\nNOOP\r\n'
	assert_line -n 1 $'503 5.5.1 Error: need RCPT command\r'
	assert_line -n 2 $'521 5.5.4 Syntax: BDAT count [LAST]\r'
	[ "${#lines[@]}" -eq 3 ]
	[ "$(event_field disconnect reason)" = protocol_error ]
}

@test "routed local parts (%, !, quoted @) are relayed, as Postfix rewrites them" {
	smtp "MAIL FROM:<antispam@[127.0.0.1]>" "RCPT TO:<relaytest%nmap.scanme.org@omega-decky>" \
	    "RCPT TO:<\"relaytest@nmap.scanme.org\">" "RCPT TO:<nmap.scanme.org!relaytest>" \
	    "RCPT TO:<@omega-decky:relaytest@nmap.scanme.org>" "RCPT TO:<nobody-here@omega-decky>" QUIT
	for i in 2 3 4 5; do assert_line -n $i $'250 2.1.5 Ok\r'; done
	assert_line -n 6 $'550 5.1.1 <nobody-here@omega-decky>: Recipient address rejected: User unknown in local recipient table\r'
}
