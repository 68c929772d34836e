#!/usr/bin/env bats
# The JSON sink: the same events, one object a line, lower-case keys, event_type first.

load helper

setup() {
	common_setup
}

@test "--log=json writes one JSON object a line on stderr, event_type first" {
	run bash -c '"$1" --log=json < <(printf "EHLO x\r\nMAIL FROM:<a@b.c>\r\nQUIT\r\n") 2>"$2" >/dev/null' - \
	    "$DECKY" "$BATS_TEST_TMPDIR/err"
	assert_success
	[ "$(wc -l <"$BATS_TEST_TMPDIR/err")" -eq 5 ]
	# every line parses alone, and its first key is event_type
	while IFS= read -r l; do
		[ "$(jq -r 'keys_unsorted[0]' <<<"$l")" = event_type ]
		[ "$(jq -r 'keys_unsorted | map(select(. != ascii_downcase)) | length' <<<"$l")" -eq 0 ]
	done <"$BATS_TEST_TMPDIR/err"
	[ "$(jq -r 'select(.event_type == "mail_from") | .value' "$BATS_TEST_TMPDIR/err")" = a@b.c ]
	[[ "$(jq -r .timestamp "$BATS_TEST_TMPDIR/err" | head -1)" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
}

@test "--log=journal,json:FILE writes both, and FILE is appended to" {
	ensure_journald
	echo '{"event_type":"earlier"}' >"$EVENTS"
	run "$DECKY" --log=journal,json:"$EVENTS" < <(printf 'QUIT\r\n')
	assert_success
	[ "$(jq -r .event_type "$EVENTS" | tr '\n' ' ')" = "earlier connect command disconnect " ]
	sid=$(jq -r 'select(.event_type == "connect") | .session_id' "$EVENTS")
	for i in $(seq 50); do
		[ "$(journalctl --no-pager -o json SESSION_ID="$sid" | jq -r .EVENT_TYPE | tail -1)" = disconnect ] && break
		sleep 0.1
	done
	[ "$(journalctl --no-pager -o json SESSION_ID="$sid" | wc -l)" -eq 3 ]
}

@test "SMTP_LOG in the environment chooses the sink like --log" {
	SMTP_LOG=json:$EVENTS run "$DECKY" < <(printf 'QUIT\r\n')
	assert_success
	[ "$(jq -r .event_type "$EVENTS" | tr '\n' ' ')" = "connect command disconnect " ]
}

@test "a bad --log or setting is refused with exit status 2" {
	run "$DECKY" --log=syslog </dev/null
	[ "$status" -eq 2 ]
	assert_output --partial 'bad log "syslog"'
	run "$DECKY" --timeout=soon </dev/null
	[ "$status" -eq 2 ]
	run "$DECKY" --no-such-option=1 </dev/null
	[ "$status" -eq 2 ]
}

@test "concurrent sessions appending to one file never mix their lines" {
	for i in $(seq 20); do
		"$DECKY" --log=json:"$EVENTS" < <(printf 'EHLO %s\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nQUIT\r\n' \
		    "$(head -c 3000 /dev/zero | tr '\0' h)") >/dev/null &
	done
	wait
	[ "$(wc -l <"$EVENTS")" -eq 120 ]
	jq -e . "$EVENTS" >/dev/null
	[ "$(jq -r .session_id "$EVENTS" | sort -u | wc -l)" -eq 20 ]
}
