#!/usr/bin/env bats
# AUTH (RFC 4954): every well-formed credential is accepted and logged.

load helper

setup() {
	common_setup
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
