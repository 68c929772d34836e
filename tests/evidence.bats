#!/usr/bin/env bats
# Evidence an attacker cannot erase: a stalled journald, a flood of one command, a
# limit that strikes in the middle of a line, and recipients past every limit.

load helper

setup() {
	common_setup
	UNIT_CG=
}

teardown() {
	[ -n "$UNIT_CG" ] && rmdir "$UNIT_CG" 2>/dev/null
	return 0
}

# make_unit NAME - a cgroup that journald takes for the unit NAME.service, as systemd
# makes one per connection (or xinetd.service holds them all): journald's rate limit
# (RateLimitIntervalSec=, RateLimitBurst=) counts per unit.  Sets UNIT_CG.
make_unit() {
	local root
	if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
		root=/sys/fs/cgroup/unified	# hybrid: systemd's own hierarchy
	elif [ -f /sys/fs/cgroup/cgroup.procs ]; then
		root=/sys/fs/cgroup
	else
		skip "no cgroup hierarchy to make a unit in"
	fi
	UNIT_CG=$root/$1.service
	mkdir "$UNIT_CG" || skip "cannot make a cgroup"
}

# in_unit CMD... - run CMD inside the unit that make_unit made
in_unit() {
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$UNIT_CG" "$@"
}

# stalled CMD... - run CMD (a shell command line) in a private mount namespace where
# journald's socket is a datagram socket that is bound and never read
stalled() {
	[ "$(id -u)" -eq 0 ] || skip "a private mount namespace needs root"
	unshare -m sh -c 'mount -t tmpfs none /run/systemd/journal 2>/dev/null ||
	    { mkdir -p /run/systemd/journal && mount -t tmpfs none /run/systemd/journal; } || exit 97
	python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(\"/run/systemd/journal/socket\")
sys.stdout.close()
time.sleep(60)
" &
	reader=$!
	for i in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
	sh -c "$1"; rc=$?
	kill $reader
	exit $rc' - "$@"
}

@test "a journald that stops reading costs each event at most its bound, and nothing said is lost" {
	in1=$BATS_TEST_TMPDIR/in1 in2=$BATS_TEST_TMPDIR/in2
	{ printf 'EHLO first\r\n'; for i in $(seq 12); do printf 'NOOP %s\r\n' "$i"; done; printf 'QUIT\r\n'; } >"$in1"
	printf 'EHLO second\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n' >"$in2"
	start=$(date +%s%N)
	run stalled "timeout 20 '$DECKY' --log=journal --timeout=5 --session-time=10 <'$in1' >'$BATS_TEST_TMPDIR/out1' 2>'$BATS_TEST_TMPDIR/fb1' &&
	    timeout 20 '$DECKY' --log=journal --timeout=5 --session-time=10 <'$in2' >'$BATS_TEST_TMPDIR/out2' 2>'$BATS_TEST_TMPDIR/fb2'"
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	assert_success
	echo "both sessions took $took ms"
	# each process waits for journald once (SINK_JOURNAL_MS), then no more
	[ "$took" -lt 4000 ]
	grep -q '^221 2.0.0 Bye' "$BATS_TEST_TMPDIR/out1"
	grep -q '^250 2.0.0 Ok: queued as' "$BATS_TEST_TMPDIR/out2"
	grep -q '^221 2.0.0 Bye' "$BATS_TEST_TMPDIR/out2"
	# the first session filled journald's queue; what did not fit is in its fallback, in order
	fb1=$(jq -r '.event_type + " " + (.value // "")' "$BATS_TEST_TMPDIR/fb1")
	[ "$(tail -1 <<<"$fb1")" = "disconnect " ]
	grep -q '^command QUIT$' <<<"$fb1"
	[ "$(jq -r 'select(.event_type == "disconnect") | .events_deferred' "$BATS_TEST_TMPDIR/fb1")" -eq "$(( $(wc -l <<<"$fb1") - 1 ))" ]
	# the second found it stalled: every one of its events is in the fallback
	[ "$(jq -r .event_type "$BATS_TEST_TMPDIR/fb2" | tr '\n' ' ')" = \
	    "connect ehlo mail_from rcpt_to command message_accepted command disconnect " ]
	[ "$(jq -r 'select(.event_type == "disconnect") | .events_deferred' "$BATS_TEST_TMPDIR/fb2")" = 7 ]
}

@test "SIGTERM ends a session promptly while journald does not read" {
	run stalled "{ printf 'EHLO x\r\n'; for i in \$(seq 12); do printf 'NOOP\r\n'; done; sleep 30; } |
	    '$DECKY' --log=journal >'$BATS_TEST_TMPDIR/out' 2>'$BATS_TEST_TMPDIR/fb' & p=\$!
	    sleep 1.5; t=\$(date +%s%N); kill -TERM \$p
	    while kill -0 \$p 2>/dev/null; do sleep 0.02; done
	    echo ended after \$(( (\$(date +%s%N) - t) / 1000000 )) ms"
	assert_success
	echo "$output"
	[[ "$output" =~ ended\ after\ ([0-9]+)\ ms ]]
	[ "${BASH_REMATCH[1]}" -lt 1000 ]
	[ "$(jq -r 'select(.event_type == "disconnect") | .reason' "$BATS_TEST_TMPDIR/fb")" = terminated ]
}

@test "60,000 EHLO lines become summaries: the flood's key events and a victim's after it all pass journald's rate limit" {
	ensure_journald
	# both sessions in one unit, as under xinetd: the flood spends the victim's budget too
	make_unit "decky-flood-$BATS_TEST_NUMBER-$$"
	flood=$BATS_TEST_TMPDIR/flood victim=$BATS_TEST_TMPDIR/victim
	python3 - "$flood" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    # EHLO is a junk command: past 101 a session errs and is cut off, as Postfix's,
    # unless a message is accepted; so a message after every 100
    for b in range(600):
        f.write(b"".join(b"EHLO host%d.example\r\n" % i for i in range(b * 100, b * 100 + 100)))
        f.write(b"MAIL FROM:<spam@flood.test>\r\nRCPT TO:<target@victim.example>\r\nDATA\r\n"
                b"Subject: %s\r\n\r\nhidden\r\n.\r\n" % (b"after the flood" if b == 599 else b"m%d" % b))
    f.write(b"QUIT\r\n")
PY
	printf 'EHLO victim\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nMAIL FROM:<v@v.test>\r\nRCPT TO:<w@w.test>\r\nDATA\r\n\r\nv\r\n.\r\nQUIT\r\n' >"$victim"
	in_unit "$DECKY" --log=journal,json:"$EVENTS" <"$flood" >/dev/null
	in_unit "$DECKY" --log=journal,json:"$EVENTS.victim" <"$victim" >/dev/null
	sid=$(event_field connect session_id)
	vid=$(jq -r 'select(.event_type == "connect") | .session_id' "$EVENTS.victim")
	for i in $(seq 50); do
		[ "$(journalctl --no-pager -o cat --output-fields=EVENT_TYPE SESSION_ID="$vid" | tail -1)" = disconnect ] && break
		sleep 0.1
	done
	fl=$(journalctl --no-pager -o json SESSION_ID="$sid")
	[ "$(jq -r ._SYSTEMD_UNIT <<<"$fl" | sort -u)" = "${UNIT_CG##*/}" ]
	# every key event of the flooding session
	# (past the 20th, the DATA command events are coalesced too)
	want="connect $(for i in $(seq 600); do printf 'mail_from rcpt_to %smessage_accepted ' "$( [ "$i" -le 20 ] && echo 'command ')"; done)command disconnect "
	[ "$(jq -r 'select(.EVENT_TYPE != "ehlo" and .EVENT_TYPE != "repeat_summary") | .EVENT_TYPE' <<<"$fl" | tr '\n' ' ')" = "$want" ]
	[ "$(jq -r 'select(.EVENT_TYPE == "ehlo") | .DOMAIN' <<<"$fl" | wc -l)" -eq 20 ]
	[ "$(jq -r 'select(.EVENT_TYPE == "ehlo") | .DOMAIN' <<<"$fl" | tail -1)" = host19.example ]
	# the summaries count every other EHLO, first and last, and a digest of them all
	sums=$(jq -c 'select(.EVENT_TYPE == "repeat_summary" and .REPEATED == "ehlo")' <<<"$fl")
	[ "$(jq -c 'select(.EVENT_TYPE == "repeat_summary" and .REPEATED == "command") | [.COMMAND, .REPEAT_COUNT, .REPEAT_TOTAL]' <<<"$fl")" = '["DATA","580","600"]' ]
	[ "$(jq -s 'map(.REPEAT_COUNT | tonumber) | add' <<<"$sums")" -eq 59980 ]
	[ "$(jq -r .FIRST_VALUE <<<"$sums" | head -1)" = host20.example ]
	[ "$(jq -r .LAST_VALUE <<<"$sums" | tail -1)" = host59999.example ]
	[ "$(jq -r .REPEAT_TOTAL <<<"$sums" | tail -1)" = 60000 ]
	[ "$(jq -r .VALUES_SAME <<<"$sums" | sort -u)" = 0 ]
	want=$(python3 -c '
import hashlib, struct
h = hashlib.sha256()
for i in range(20, 1020):
    v = b"host%d.example" % i
    h.update(struct.pack(">Q", len(v)) + v)
print(h.hexdigest())')
	[ "$(jq -r .VALUES_SHA256 <<<"$sums" | head -1)" = "$want" ]
	[ "$(jq -r 'select(.EVENT_TYPE == "disconnect") | .EVENTS_COALESCED' <<<"$fl")" = 60560 ]
	[ "$(jq -r 'select(.EVENT_TYPE == "message_accepted") | .HDR_SUBJECT' <<<"$fl" | tail -1)" = "after the flood" ]
	# and every event of the victim's session after it
	[ "$(journalctl --no-pager -o json SESSION_ID="$vid" | jq -r .EVENT_TYPE | tr '\n' ' ')" = \
	    "connect ehlo auth_attempt mail_from rcpt_to command message_accepted command disconnect " ]
}

@test "a command line in progress when the idle timeout strikes is logged as unterminated" {
	run "$DECKY" --log=json:"$EVENTS" --timeout=1 < <(printf 'EHLO x\r\nMAIL FROM:<half@line'; sleep 3)
	assert_line --partial '421 4.4.2 omega-decky Error: timeout exceeded'
	[ "$(jq -r 'select(.event_type == "command" and .reason == "unterminated") | .value' "$EVENTS")" = 'MAIL FROM:<half@line' ]
	[ "$(event_field disconnect reason)" = timeout ]
}

@test "the session-time limit keeps the half line of a message body in the partial file" {
	run "$DECKY" --log=json:"$EVENTS" --session-time=2 < <(printf 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: t\r\n\r\nwhole line\r\nhalf a li'; sleep 4)
	[ "$(event_field disconnect reason)" = session_time ]
	f=$(event_field message_partial spool_file)
	[ -f "$f" ]
	[ "$(cat "$f")" = "$(printf 'Subject: t\r\n\r\nwhole line\r\nhalf a li')" ]
	[ "$(event_field message_partial sha256)" = "$(sha256sum <"$f" | cut -c1-64)" ]
}

@test "the session-bytes limit keeps what came in the read that crossed it" {
	run "$DECKY" --log=json:"$EVENTS" --session-bytes=100 < <(printf 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n'; sleep 0.5; printf 'Subject: b\r\n\r\n%s' "$(printf 'y%.0s' $(seq 120))"; sleep 2)
	[ "$(event_field disconnect reason)" = session_bytes ]
	f=$(event_field message_partial spool_file)
	[ "$(cat "$f")" = "$(printf 'Subject: b\r\n\r\n%s' "$(printf 'y%.0s' $(seq 120))")" ]
}

@test "recipients past the limit and its overshoot are errors: 421 after the 20th, as Postfix" {
	python3 -c '
import sys
sys.stdout.buffer.write(b"EHLO a\r\nMAIL FROM:<a@b.c>\r\n" + b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(2100)) + b"QUIT\r\n")' >"$BATS_TEST_TMPDIR/in"
	run "$DECKY" --log=json:"$EVENTS" <"$BATS_TEST_TMPDIR/in"
	# smtpd_recipient_limit 1000 accepted, smtpd_recipient_overshoot_limit 1000 refused
	# freely, then 20 refusals that count as errors (smtpd_hard_error_limit): 421
	[ "$(grep -c '^250 2.1.5 Ok' <<<"$output")" -eq 1000 ]
	[ "$(grep -c '^452 4.5.3 Error: too many recipients' <<<"$output")" -eq 1020 ]
	[ "$(tail -1 <<<"$output")" = $'421 4.7.0 omega-decky Error: too many errors\r' ]
	[ "$(event_field disconnect reason)" = too_many_errors ]
	[ "$(events rcpt_to | wc -l)" -eq 1000 ]
}

@test "past event-burst a session is paced at event-rate, and every key event is still logged" {
	python3 -c '
import sys
sys.stdout.buffer.write(b"EHLO a\r\n" + b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: n\r\n\r\nb\r\n.\r\n" * 40 + b"QUIT\r\n")' >"$BATS_TEST_TMPDIR/in"
	start=$(date +%s%N)
	run "$DECKY" --log=json:"$EVENTS" --event-burst=50 --event-rate=100 <"$BATS_TEST_TMPDIR/in"
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	assert_success
	[ "$(grep -c '^250 2.0.0 Ok: queued as' <<<"$output")" -eq 40 ]
	[ "$(events mail_from | wc -l)" -eq 40 ]
	[ "$(events rcpt_to | wc -l)" -eq 40 ]
	[ "$(events message_accepted | wc -l)" -eq 40 ]
	# 143 events before the disconnect: 50 at once, then 93 at 100 a second
	n=$(( $(wc -l <"$EVENTS") - 1 ))
	echo "events $n, took $took ms, paced $(event_field disconnect events_paced_ms) ms"
	[ "$took" -ge $(( (n - 50) * 10 - 50 )) ]
	# (the wait is less than that when the session's own work refilled the bucket)
	[ "$(event_field disconnect events_paced_ms)" -gt 0 ]
}
