#!/usr/bin/env bats
# The persona: a JSON file, the environment over it, options over both.

load helper

setup() {
	common_setup
	P=$BATS_TEST_TMPDIR/persona.json
}

teardown() {
	stop_activated
}

@test "--check-persona accepts a good file and prints the effective settings" {
	cat >"$P" <<'JSON'
{
  "hostname": "mx1.corp.example",
  "auth-mechanisms": ["PLAIN", "LOGIN", "CRAM-MD5"],
  "auth-policy": "reject",
  "relay": "deny",
  "size-limit": 52428800,
  "greeting-delay": "100-400"
}
JSON
	unset SMTP_HOSTNAME SMTP_GREETING_DELAY
	run "$DECKY" --check-persona "$P"
	assert_success
	assert_line --regexp '^hostname += mx1.corp.example$'
	assert_line --regexp "^persona += $P\$"
	assert_line --regexp '^auth-mechanisms += PLAIN LOGIN CRAM-MD5$'
	assert_line --regexp '^auth-policy += reject$'
	assert_line --regexp '^size-limit += 52428800$'
	assert_line --regexp '^greeting-delay += 100-400$'
	# what follows from the others, as a session would take it
	assert_line --regexp '^banner += mx1.corp.example ESMTP Postfix \(Debian/GNU\)$'
	assert_line --regexp "^tls-cert += $SMTP_SPOOL/tls/cert.pem\$"
}

@test "each error in a persona file names its line and column" {
	check() {	# check JSON LINE:COL WORDS
		printf '%s' "$1" >"$P"
		run "$DECKY" --check-persona "$P"
		[ "$status" -eq 2 ]
		assert_output --partial "$P:$2: "
		assert_output --partial "$3"
	}
	# each names the first byte of the offending token
	check $'{\n  "hostname": "a",\n  "colour": "red"\n}' 3:3 'unknown setting "colour"'
	check $'{\n  "size-limit": "lots"\n}' 2:17 'size-limit must be a number'
	check $'{\n  "size-limit": 0\n}' 2:17 'size-limit must be a number from 1'
	check $'{\n  "auth-mechanisms": ["PLAIN", "NTLM"]\n}' 2:22 'unknown word "NTLM"'
	check $'{\n  "relay": "maybe"\n}' 2:12 'relay must be "open" or "deny"'
	check $'{ "hostname": { "nested": 1 } }' 1:15 'no nesting'
	check $'{ "hostname": true }' 1:15 'a value is a string, a number'
	check $'{ "banner": "tab\\there" }' 1:13 'at most 255 printable characters'
	# syntax errors: where the parser stopped
	check $'{\n  "hostname": "a",\n}' 3:1 'invalid object key'
	check $'{ "hostname": "a"' 1:18 'premature EOF'
}

@test "the environment overrides the file, and options override both" {
	printf '{ "hostname": "from-file", "banner": "file banner", "size-limit": 1000 }' >"$P"
	SMTP_PERSONA=$P SMTP_HOSTNAME=from-env run "$DECKY" --log=json:"$EVENTS" --size-limit=2000 < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_line -n 0 $'220 file banner\r'
	assert_line -n 1 $'250-from-env\r'
	assert_line $'250-SIZE 2000\r'
	SMTP_HOSTNAME=from-env run "$DECKY" --check-persona "$P" --size-limit=2000
	assert_line --regexp '^hostname += from-env$'
	assert_line --regexp '^size-limit += 2000$'
	# SMTP_BANNER beats the file's banner too
	SMTP_PERSONA=$P SMTP_BANNER="env banner" run "$DECKY" --log=json:"$EVENTS" < <(printf 'QUIT\r\n')
	assert_line -n 0 $'220 env banner\r'
}

@test "a bad persona file at connection time logs persona_error and serves the defaults" {
	printf '{ "hostname": "from-file", "relay": 7 }' >"$P"
	SMTP_PERSONA=$P run "$DECKY" --log=json:"$EVENTS" < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_success
	assert_line -n 0 $'220 omega-decky ESMTP Postfix (Debian/GNU)\r'
	[ "$(events persona_error | wc -l)" -eq 1 ]
	[[ "$(event_field persona_error error)" == "$P:1:37: relay must be"* ]]
}

@test "a bad environment variable is skipped and reported" {
	SMTP_SIZE_LIMIT=huge run "$DECKY" --log=json:"$EVENTS" < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_success
	assert_line $'250-SIZE 10240000\r'
	[[ "$(event_field persona_error error)" == "SMTP_SIZE_LIMIT: size-limit must be a number"* ]]
}

@test "the credential-harvester persona refuses every login and every relay, and logs them" {
	SMTP_AUTH_POLICY=reject SMTP_RELAY=deny smtp "EHLO x" "AUTH PLAIN $(printf '\0root\0toor' | base64)" \
	    "MAIL FROM:<a@b.c>" "RCPT TO:<victim@example.org>" "RCPT TO:<root@omega-decky>" QUIT
	assert_line -n 13 $'535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	assert_line -n 15 $'454 4.7.1 <victim@example.org>: Relay access denied\r'
	assert_line -n 16 $'250 2.1.5 Ok\r'
	[ "$(event_field auth_attempt password)" = toor ]
	[ "$(event_field auth_attempt result)" = rejected ]
}

@test "relay deny still relays for a client that logged in" {
	SMTP_RELAY=deny smtp "EHLO x" "MAIL FROM:<a@b.c>" "RCPT TO:<v@example.org>" RSET \
	    "AUTH PLAIN $(printf '\0u\0p' | base64)" "MAIL FROM:<a@b.c>" "RCPT TO:<v@example.org>" QUIT
	assert_line -n 14 $'454 4.7.1 <v@example.org>: Relay access denied\r'
	assert_line -n 18 $'250 2.1.5 Ok\r'
}

@test "ehlo-keywords and auth-mechanisms shape the EHLO reply" {
	SMTP_EHLO_KEYWORDS="PIPELINING AUTH SIZE" SMTP_AUTH_MECHANISMS="" smtp "EHLO x" QUIT
	assert_line -n 1 $'250-omega-decky\r'
	assert_line -n 2 $'250-PIPELINING\r'
	assert_line -n 3 $'250 SIZE 10240000\r'
	assert_line -n 4 $'221 2.0.0 Bye\r'
	SMTP_AUTH_MECHANISMS="" smtp "AUTH PLAIN" QUIT
	assert_line -n 1 $'503 5.5.1 Error: authentication not enabled\r'
}

@test "the greeting comes after the greeting delay" {
	start=$(date +%s%N)
	SMTP_GREETING_DELAY=300-350 smtp QUIT
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "greeting after $ms ms"
	[ "$ms" -ge 300 ]
	assert_line -n 0 $'220 omega-decky ESMTP Postfix (Debian/GNU)\r'
}

@test "the connect event says where each setting came from: file, env or option" {
	printf '{ "banner": "file banner", "size-limit": 1000, "relay": "deny" }' >"$P"
	SMTP_PERSONA=$P SMTP_SIZE_LIMIT=2000 run "$DECKY" --log=json:"$EVENTS" --relay=open < <(printf 'QUIT\r\n')
	assert_success
	# in table order; the harness's own variables (common_setup) are env too
	[ "$(event_field connect persona_sources)" = \
	    "hostname=env banner=file auth-failure-delay=env relay=option size-limit=env error-sleep=env greeting-delay=env spool=env log=option persona=env" ]
	[ -z "$(event_field connect persona_unknown)" ]
	[ "$(events persona_error | wc -l)" -eq 0 ]
	# nothing set anywhere: the one word "default"
	env -i "$DECKY" --log=json:"$EVENTS.bare" --spool="$SMTP_SPOOL" </dev/null >/dev/null
	[ "$(jq -r 'select(.event_type == "connect") | .persona_sources' "$EVENTS.bare")" = "spool=option log=option" ]
	env -i SMTP_LOG=json:"$EVENTS.none" "$DECKY" </dev/null >/dev/null || true
	[ "$(jq -r 'select(.event_type == "connect") | .persona_sources' "$EVENTS.none")" = "log=env" ]
}

@test "a persona file that is not used leaves its settings at their defaults in PERSONA_SOURCES" {
	printf '{ "banner": "file banner", "relay": 7 }' >"$P"
	SMTP_PERSONA=$P run "$DECKY" --log=json:"$EVENTS" < <(printf 'QUIT\r\n')
	[ "$(event_field connect persona_sources)" = \
	    "hostname=env auth-failure-delay=env error-sleep=env greeting-delay=env spool=env log=option persona=env" ]
	[ "$(jq -r 'select(.event_type == "persona_error") | .priority' "$EVENTS")" = 3 ]
}

@test "an SMTP_ variable that is no setting is named in connect and warned of, with the setting it resembles" {
	SMTP_SIZE_LIMT=5 SMTP_FOO=1 run "$DECKY" --log=json:"$EVENTS" < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_success
	assert_line $'250-SIZE 10240000\r'
	# names only (in environ's order), never values
	unknown=$(event_field connect persona_unknown)
	[ "$(tr ' ' '\n' <<<"$unknown" | sort | tr '\n' ' ')" = "SMTP_FOO SMTP_SIZE_LIMT " ]
	[ "$(events persona_error | wc -l)" -eq 1 ]
	[ "$(jq -r 'select(.event_type == "persona_error") | .priority' "$EVENTS")" = 4 ]
	[ "$(event_field persona_error error)" = "$unknown: unknown variables, ignored (SMTP_SIZE_LIMT: did you mean SMTP_SIZE_LIMIT?)" ]
	# a name far from every setting gets no guess
	SMTP_FOO=1 run "$DECKY" --log=json:"$EVENTS.foo" < <(printf 'QUIT\r\n')
	[ "$(jq -r 'select(.event_type == "persona_error") | .error' "$EVENTS.foo")" = "SMTP_FOO: unknown variable, ignored" ]
	# the settings' own variables are never unknown
	run "$DECKY" --log=json:"$EVENTS.ok" < <(printf 'QUIT\r\n')
	[ "$(jq -r 'select(.event_type == "connect") | .persona_unknown // "none"' "$EVENTS.ok")" = none ]
}

@test "a variable not passed with -E under systemd-socket-activate shows as a default in connect" {
	# exported here, but systemd-socket-activate passes only what -E names
	export SMTP_AUTH_POLICY=reject
	start_activated
	probe $'EHLO x\nAUTH PLAIN AHUAcA==\nQUIT'
	assert_line $'S: 235 2.7.0 Authentication successful\r'
	wait_event disconnect
	[[ " $(event_field connect persona_sources) " != *" auth-policy="* ]]
	stop_activated || true
	: >"$EVENTS"
	start_activated SMTP_AUTH_POLICY
	probe $'EHLO x\nAUTH PLAIN AHUAcA==\nQUIT'
	assert_line $'S: 535 5.7.8 Error: authentication failed: (reason unavailable)\r'
	wait_event disconnect
	[[ " $(event_field connect persona_sources) " == *" auth-policy=env "* ]]
}

@test "--check-persona shows the sources and warns of unknown variables; FILE is optional" {
	printf '{ "banner": "file banner" }' >"$P"
	SMTP_HOSTNME=typo run "$DECKY" --check-persona "$P" --size-limit=2000
	assert_success
	assert_line --regexp '^banner += file banner$'
	assert_line "# sources: hostname=env banner=file auth-failure-delay=env size-limit=option error-sleep=env greeting-delay=env spool=env persona=option"
	assert_line "# warning: SMTP_HOSTNME: unknown variable, ignored (SMTP_HOSTNME: did you mean SMTP_HOSTNAME?)"
	assert_line "decky-smtpd: warning: SMTP_HOSTNME: unknown variable, ignored (SMTP_HOSTNME: did you mean SMTP_HOSTNAME?)"
	# without FILE: SMTP_PERSONA if set, and the environment, as a session would take them
	SMTP_PERSONA=$P run "$DECKY" --check-persona
	assert_success
	assert_line --index 0 "# $P: valid; the effective settings (file, then environment, then options):"
	assert_line --regexp '^banner += file banner$'
	assert_line "# sources: hostname=env banner=file auth-failure-delay=env error-sleep=env greeting-delay=env spool=env persona=env"
	run "$DECKY" --check-persona --relay=deny
	assert_success
	assert_line --regexp '^relay += deny$'
	refute_line --partial '# warning'
	# the weak-credentials list is read as a session reads it
	printf 'admin:letmein\n' >"$BATS_TEST_TMPDIR/weak"
	run "$DECKY" --check-persona --auth-policy=weak --auth-weak-file="$BATS_TEST_TMPDIR/weak"
	assert_success
	printf 'no colon here\n' >"$BATS_TEST_TMPDIR/weak"
	run "$DECKY" --check-persona --auth-policy=weak --auth-weak-file="$BATS_TEST_TMPDIR/weak"
	assert_failure 2
	assert_output --partial 'a line without "user:password"'
	run "$DECKY" --check-persona --auth-weak-file="$BATS_TEST_TMPDIR/absent"
	assert_failure 2
	# an unknown variable with a control byte in its name is counted, never echoed
	env $'SMTP_HOSTNAM\x1b=x' "$DECKY" --check-persona >"$BATS_TEST_TMPDIR/out" 2>&1
	"$TESTS/no-control" <"$BATS_TEST_TMPDIR/out"
}
