#!/usr/bin/env bats
# The spool under pressure: a budget shared by sessions at once, a full file
# system, and writers killed in the middle of a message.

load helper

setup() {
	common_setup
}

teardown() {
	stop_activated
}

# kept_bytes - the bytes the budget counts: new/, cur/, partial/ and meta/
kept_bytes() {
	local d sum=0 n
	for d in new cur partial meta; do
		[ -d "$SMTP_SPOOL/$d" ] || continue
		n=$(find "$SMTP_SPOOL/$d" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
		sum=$((sum + n))
	done
	echo "$sum"
}

# in_tmpfs SCRIPT ARGS... - python3 SCRIPT with the spool on a 2 MB tmpfs of its own
# (a private mount namespace: the machine's file systems are not touched)
in_tmpfs() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for a mount namespace"
	mkdir -p "$SMTP_SPOOL"
	run unshare -m --propagation private sh -c \
	    'mount -t tmpfs -o size=2m decky-test "$0" && exec python3 "$@"' "$SMTP_SPOOL" "$@"
}

# fill.py DECKY EVENTS SPOOL WHEN [OPTION...] - a session whose spool's file system is
# filled (WHEN: before the body, or during it, after 100 KB); prints each reply
fill_script() {
	cat >"$BATS_TEST_TMPDIR/fill.py" <<'PY'
import os, subprocess, sys, time
decky, events, spool, when = sys.argv[1:5]
p = subprocess.Popen([decky, "--log=json:" + events] + sys.argv[5:],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def reply():
    while True:
        l = p.stdout.readline()
        if l[3:4] != b"-":
            print(l.decode().strip())
            return l
def send(b):
    p.stdin.write(b)
    p.stdin.flush()
def fill():
    fd = os.open(spool + "/filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) > 0:
            pass
    except OSError:
        pass
    os.close(fd)
reply()
for c in (b"MAIL FROM:<a@b.c>", b"RCPT TO:<x@y.z>", b"DATA"):
    send(c + b"\r\n")
    reply()
line = b"y" * 998 + b"\r\n"
if when == "before":
    fill()
send(line * 100)
if when == "during":
    time.sleep(0.5)
    fill()
send(line * 800 + b".\r\n")
reply()
send(b"QUIT\r\n")
reply()
p.wait()
# what the spool holds, seen from inside the namespace
import hashlib
for d in ("tmp", "new", "partial", "meta"):
    for name in sorted(os.listdir(os.path.join(spool, d))):
        data = open(os.path.join(spool, d, name), "rb").read()
        print(d, name, len(data), hashlib.sha256(data).hexdigest())
PY
}

@test "20 sessions at once never store more than the budget together, each answered 250 or 452" {
	start_activated SMTP_SPOOL_BUDGET=1000000
	run python3 - "$PORT" <<'PY'
import socket, sys, threading
port = int(sys.argv[1])
n = 20
body = (b"x" * 998 + b"\r\n") * 100		# 100 KB each: 2 MB together
met = threading.Barrier(n)
results = [""] * n
def one(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")
    def reply():
        while True:
            l = f.readline()
            if l[3:4] != b"-":
                return l.decode()
    reply()
    met.wait()
    s.sendall(b"MAIL FROM:<a@b.c>\r\n")
    r = reply()
    if r.startswith("250"):
        s.sendall(b"RCPT TO:<x@y.z>\r\nDATA\r\n")
        reply(); reply()
        s.sendall(body + b".\r\n")
        r = reply()
    results[i] = r[:3]
    s.sendall(b"QUIT\r\n")
    reply()
    s.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(results))
PY
	assert_success
	echo "replies: $output"
	for r in $output; do [[ $r == 250 || $r == 452 ]]; done
	[[ " $output " == *" 250 "* ]]
	for i in $(seq 100); do [ "$(events disconnect | wc -l)" -eq 20 ] && break; sleep 0.1; done
	[ "$(events disconnect | wc -l)" -eq 20 ]
	total=$(kept_bytes)
	echo "stored: $total"
	[ "$total" -le 1000000 ]
	# the count is exact once every session has ended: nothing reserved is left over
	[ "$(head -n 1 "$SMTP_SPOOL/.usage")" -eq "$total" ]
	[ -z "$(ls -A "$SMTP_SPOOL/tmp")" ]
	# each 250 is a whole message in new/
	[ "$(ls "$SMTP_SPOOL/new" | wc -l)" -eq "$(grep -o 250 <<<"$output" | wc -l)" ]
}

@test "MAIL gets 452 when the spool's file system has less free than 1.5 times the size limit, as in Postfix" {
	cat >"$BATS_TEST_TMPDIR/mail.py" <<'PY'
import subprocess, sys
for limit in ("10240000", "1000000"):
    out = subprocess.run([sys.argv[1], "--log=json:" + sys.argv[2], "--size-limit=" + limit],
                         input=b"MAIL FROM:<a@b.c>\r\nQUIT\r\n", capture_output=True).stdout
    print(limit, out.decode().splitlines()[1].strip())
PY
	in_tmpfs "$BATS_TEST_TMPDIR/mail.py" "$DECKY" "$EVENTS"
	assert_success
	assert_line "10240000 452 4.3.1 Insufficient system storage"
	assert_line "1000000 250 2.1.0 Ok"
}

@test "a file system that fills during DATA keeps what reached the disk, its digest true, though its sidecar cannot be written" {
	fill_script
	in_tmpfs "$BATS_TEST_TMPDIR/fill.py" "$DECKY" "$EVENTS" "$SMTP_SPOOL" during --size-limit=1000000
	echo "$output"
	assert_success
	assert_line -n 4 "451 4.3.0 Error: queue file write error"
	[ "$(event_field message_partial reason)" = write_error ]
	[ "$(event_field message_partial body_bytes)" -eq 900000 ]
	stored=$(event_field message_partial stored_bytes)
	[ "$stored" -ge 65536 ]
	[ "$stored" -lt 900000 ]
	# the file the event names exists, with the digest the event gives
	f=$(event_field message_partial spool_file)
	assert_line "partial ${f##*/} $stored $(event_field message_partial sha256)"
	want=$(python3 -c 'import hashlib,sys; b=(b"y"*998+b"\r\n")*100; print(hashlib.sha256(b[:int(sys.argv[1])]).hexdigest())' "$stored")
	[ "$(event_field message_partial sha256)" = "$want" ]
	[ -z "$(grep '^tmp ' <<<"$output")" ]
	# the disk was full: no sidecar, and the event names none
	[ -z "$(event_field message_partial meta_file)" ]
	[ -z "$(grep '^meta ' <<<"$output")" ]
}

@test "a file system full before the body keeps nothing, and the event names no file and no digest" {
	fill_script
	SMTP_SPOOL_BUDGET=0 in_tmpfs "$BATS_TEST_TMPDIR/fill.py" "$DECKY" "$EVENTS" "$SMTP_SPOOL" before --size-limit=1000000
	echo "$output"
	assert_success
	assert_line -n 4 "451 4.3.0 Error: queue file write error"
	[ "$(event_field message_partial reason)" = write_error ]
	[ "$(event_field message_partial stored_bytes)" = 0 ]
	[ -z "$(event_field message_partial spool_file)" ]
	[ -z "$(event_field message_partial sha256)" ]
	[ -z "$(event_field message_partial meta_file)" ]
	[ -z "$(grep -E '^(tmp|new|partial|meta) ' <<<"$output")" ]
}

@test "kill -9 at random points of a large DATA: the next message recovers every orphan, and the count stays exact" {
	export SMTP_SPOOL_BUDGET=200000000
	writer=$BATS_TEST_TMPDIR/writer.py
	cat >"$writer" <<'PY'
import sys, time
out = sys.stdout.buffer
out.write(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n")
line = b"z" * 998 + b"\r\n"
try:
    while True:
        out.write(line * 64)
        out.flush()
        time.sleep(0.001)
except BrokenPipeError:
    pass
PY
	for i in $(seq 12); do
		out=$BATS_TEST_TMPDIR/out.$i
		python3 "$writer" 2>/dev/null | "$DECKY" --log=json:"$EVENTS" >"$out" &
		pid=$!
		# once DATA is answered (a slow machine starts python slowly), at a random point
		for j in $(seq 200); do grep -q '^354 ' "$out" && break; sleep 0.05; done
		sleep "0.$((RANDOM % 5 + 1))"
		kill -9 "$pid"
		wait "$pid" || true
	done
	orphans=$(find "$SMTP_SPOOL/tmp" -type f ! -name '*.*.res' ! -name '*.json' -size +0 | wc -l)
	left=$(du -sb "$SMTP_SPOOL/tmp" | cut -f1)
	echo "orphans: $orphans, $left bytes in tmp/"
	# each session that opened a message swept the ones before it into partial/
	[ "$orphans" -ge 1 ] || [ -n "$(ls -A "$SMTP_SPOOL/partial")" ]
	# the next message sweeps
	smtp "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "after" . QUIT
	assert_line -n 4 --regexp '^250 2.0.0 Ok: queued as '
	[ -z "$(ls -A "$SMTP_SPOOL/tmp")" ]
	# the sessions that opened a message (DATA got 354) but the last, which swept
	opened=$(jq -r 'select(.event_type == "command" and .command == "DATA" and .reply == "354")
	    | .session_id' "$EVENTS" | head -n -1)
	kept=$(ls "$SMTP_SPOOL/partial" | wc -l)
	echo "$(wc -l <<<"$opened") messages opened and killed, $kept recovered"
	[ "$kept" -ge 1 ]
	[ "$(jq -r .session_id "$SMTP_SPOOL"/meta/*.json | grep -c -F -x -f <(printf '%s\n' "$opened"))" -eq "$kept" ]
	for f in "$SMTP_SPOOL"/partial/*; do
		m=$SMTP_SPOOL/meta/${f##*/}.json
		jq -e --arg f "$f" '.partial == true and .reason == "orphan" and .file == $f' "$m"
		[ "$(jq -r .sha256 "$m")" = "$(sha256sum <"$f" | cut -d' ' -f1)" ]
		[ "$(jq -r .stored_bytes "$m")" -eq "$(stat -c %s "$f")" ]
		# a body of whole lines, cut anywhere, as it was written
		[ -z "$(tr -d 'z\r\n' <"$f" | head -c 1)" ]
	done
	# every dead writer's reservation was released exactly
	echo "usage $((10#$(head -n 1 "$SMTP_SPOOL/.usage"))), kept $(kept_bytes)"
	[ "$((10#$(head -n 1 "$SMTP_SPOOL/.usage")))" -eq "$(kept_bytes)" ]
}

@test "a writer killed before any one of its first writes, renames or unlinks leaves the count exact" {
	[ -z "${DECKY_VALGRIND:-}" ] || skip "strace would trace valgrind, not decky-smtpd"
	export SMTP_SPOOL_BUDGET=200000000
	# 600 lines of 1000 bytes: the first reservation, two more steps, the release
	python3 -c 'import sys; sys.stdout.buffer.write(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n" + (b"z" * 998 + b"\r\n") * 600 + b".\r\nQUIT\r\n")' \
	    >"$BATS_TEST_TMPDIR/big"
	n=0
	for calls in pwrite64 unlink,unlinkat rename,renameat,renameat2; do
		for k in $(seq 30); do
			# SIGKILL on entering the k-th such call: the call is never made
			rc=0
			strace -f -o /dev/null -e trace="$calls" -e inject="$calls":signal=KILL:when="$k" \
			    "$DECKY" --log=json:"$EVENTS" <"$BATS_TEST_TMPDIR/big" >/dev/null 2>&1 || rc=$?
			[ "$rc" -eq 137 ] || break	# the session made fewer such calls
			n=$((n + 1))
			# the next message opened finishes and sweeps what the dead one left
			smtp "MAIL FROM:<a@b.c>" "RCPT TO:<x@y.z>" DATA "after" . QUIT
			assert_line -n 4 --regexp '^250 2.0.0 Ok: queued as '
			usage=$((10#$(head -n 1 "$SMTP_SPOOL/.usage")))
			[ "$usage" -eq "$(kept_bytes)" ] ||
			    { echo "killed at $calls #$k: usage $usage, kept $(kept_bytes)"; false; }
			[ -z "$(ls -A "$SMTP_SPOOL/tmp")" ]
		done
	done
	echo "$n sessions killed"
	[ "$n" -ge 15 ]
}

@test "the fallback file is not written past 64 MiB: events journald refuses are then lost, the session unchanged" {
	[ "$(id -u)" -eq 0 ] || skip "needs root for a mount namespace"
	[ -d /run/systemd/journal ] || skip "no journald to hide"
	fb=$BATS_TEST_TMPDIR/fallback.json
	for size in $((64 << 20)) $(((64 << 20) - 1)); do
		rm -f "$fb"
		truncate -s "$size" "$fb"
		# journald hidden in a private mount namespace: every event is refused
		run unshare -m sh -c 'mount -t tmpfs none /run/systemd/journal &&
		    exec "$1" --log=journal --fallback-log="$2" <"$3"' - \
		    "$DECKY" "$fb" <(printf 'EHLO x\r\nQUIT\r\n')
		assert_success
		assert_line -n 0 --partial '220 omega-decky ESMTP'
		assert_line --partial '221 2.0.0 Bye'
		got=$(tail -c +$((size + 1)) "$fb" | jq -r .event_type | tr '\n' ' ')
		if [ "$size" -eq $((64 << 20)) ]; then
			[ "$(stat -c %s "$fb")" -eq "$size" ]
			[ -z "$got" ]
		else
			# just below the bound, the session's events are all there
			[ "$got" = "connect ehlo command disconnect " ]
		fi
	done
}

@test "queue ids: 400 messages show a few inode parts, none repeats in a session, each file is unique and named in its sidecar and event" {
	start_activated
	run timeout 600 python3 - "$PORT" <<'PY'
import re, smtplib, sys
for per in (1,) * 200 + (10,) * 20:
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
    ids = []
    for k in range(per):
        s.mail("bot@spam.example"); s.rcpt("v@x.example")
        code, msg = s.data(b"Subject: n\r\n\r\nbuy\r\n")
        ids.append(re.search(rb"queued as ([0-9A-F]+)", msg).group(1).decode())
    s.quit()
    print(" ".join(ids))
PY
	assert_success
	# 200 sessions of one message and 20 of ten
	[ "$(wc -w <<<"$output")" -eq 400 ]
	# no id twice within a session
	while read -r l; do
		[ "$(tr ' ' '\n' <<<"$l" | sort | uniq -d)" = "" ]
	done <<<"$output"
	# Postfix's short form, and few inode parts (the reference: 25 and 32 for 500)
	tr ' ' '\n' <<<"$output" | grep -v -x '[0-9A-F]\{6,\}' && false
	parts=$(tr ' ' '\n' <<<"$output" | cut -c6- | sort -u | wc -l)
	echo "inode parts: $parts"
	[ "$parts" -le 16 ]
	# every message its own file, its sidecar naming it and its visible id
	for i in $(seq 100); do [ "$(events message_accepted | wc -l)" -eq 400 ] && break; sleep 0.1; done
	[ "$(ls "$SMTP_SPOOL/new" | wc -l)" -eq 400 ]
	[ "$(events message_accepted | jq -r .spool_file | sort -u | wc -l)" -eq 400 ]
	events message_accepted | jq -r '[.msg_id, .spool_file, .meta_file] | @tsv' |
	while IFS=$'\t' read -r q f m; do
		[ -f "$f" ]
		[ "$m" = "$SMTP_SPOOL/meta/${f##*/}.json" ]
		jq -e --arg q "$q" --arg f "$f" '.queue_id == $q and .file == $f' "$m" >/dev/null
	done
	[ "$(events message_accepted | jq -r .msg_id | sort -u | wc -l)" -gt 360 ]
}
