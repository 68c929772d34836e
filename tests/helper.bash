# helper.bash - shared set-up for the bats suites.
#
# DECKY names the binary under test (the plain build, or the sanitizer build when
# `make check` runs the suite a second time).  Every test gets its own spool and JSON
# event log under $BATS_TEST_TMPDIR; error sleeps are off unless a test turns them on.
bats_load_library bats-support
bats_load_library bats-assert

TESTS=$(cd "$BATS_TEST_DIRNAME" && pwd)
TOP=$(cd "$TESTS/.." && pwd)
DECKY=${DECKY:-$TOP/decky-smtpd}
PROBE=$TESTS/smtp-probe

common_setup() {
	export SMTP_HOSTNAME=omega-decky
	export SMTP_SPOOL=$BATS_TEST_TMPDIR/spool
	export SMTP_ERROR_SLEEP=0
	export SMTP_GREETING_DELAY=0
	# Dovecot's AUTH timing is on in production, off here but where a test measures it
	export SMTP_AUTH_FAILURE_DELAY=0
	unset SMTP_AUTH_WEAK_FILE SMTP_AUTH_SUCCEED_AFTER
	unset SMTP_BANNER SMTP_LOG SMTP_FALLBACK_LOG SMTP_TIMEOUT SMTP_SIZE_LIMIT SMTP_RECIPIENT_LIMIT
	unset SMTP_PERSONA SMTP_AUTH_MECHANISMS SMTP_AUTH_POLICY SMTP_RELAY SMTP_SPOOL_BUDGET
	unset SMTP_EHLO_KEYWORDS SMTP_SOFT_ERROR_LIMIT SMTP_HARD_ERROR_LIMIT
	EVENTS=$BATS_TEST_TMPDIR/events.json
	: >"$EVENTS"
}

# smtp INPUT... - one session over a pipe; each argument is a line (CRLF added).
# Replies land in $output (via run), events in $EVENTS.
smtp() {
	local in=$BATS_TEST_TMPDIR/in
	: >"$in"
	for l in "$@"; do printf '%s\r\n' "$l" >>"$in"; done
	run "$DECKY" --log=json:"$EVENTS" <"$in"
}

# smtp_raw BYTES - one session over a pipe with printf-style escapes, sent as they are.
smtp_raw() {
	run "$DECKY" --log=json:"$EVENTS" < <(printf "$1")
}

# reply_lines - $output without the CRs, for assert_line
crlf_ok() {
	# every reply line ends in CRLF
	local bad
	bad=$(printf '%s' "$output" | LC_ALL=C grep -c -v $'\r$' || true)
	[ "$bad" -eq 0 ]
}

# events TYPE - the JSON events of that type, one a line
events() {
	jq -c --arg t "$1" 'select(.event_type == $t)' "$EVENTS"
}

# event_field TYPE FIELD [N] - the field of the Nth (default first) event of TYPE
event_field() {
	jq -r -s --arg t "$1" --arg f "$2" --argjson n "${3:-0}" \
	    '[.[] | select(.event_type == $t)][$n][$f] // empty' "$EVENTS"
}

# free_port - a TCP port on 127.0.0.1 nobody listens on
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT - until something listens on 127.0.0.1:PORT (5 s at most).  It tries
# to bind the port rather than connect: a connection would be a session of its own.
wait_port() {
	local i
	for i in $(seq 100); do
		python3 -c "import socket; socket.socket().bind(('127.0.0.1', $1))" 2>/dev/null || return 0
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# start_activated [ENV=VALUE...] - decky-smtpd behind systemd-socket-activate --inetd -a
# on a free loopback port ($PORT); it is stopped in teardown.
start_activated() {
	local envs=() e
	PORT=$(free_port)
	for e in SMTP_HOSTNAME SMTP_SPOOL SMTP_ERROR_SLEEP SMTP_GREETING_DELAY SMTP_AUTH_FAILURE_DELAY "$@"; do
		case $e in
		*=*) envs+=(-E "$e") ;;
		*) envs+=(-E "$e=${!e}") ;;
		esac
	done
	systemd-socket-activate --inetd -a -l "127.0.0.1:$PORT" "${envs[@]}" \
	    "$DECKY" --log=json:"$EVENTS" 2>"$BATS_TEST_TMPDIR/activate.log" &
	ACTIVATOR=$!
	wait_port "$PORT"
}

stop_activated() {
	[ -n "${ACTIVATOR:-}" ] && kill "$ACTIVATOR" 2>/dev/null && wait "$ACTIVATOR" 2>/dev/null
	ACTIVATOR=
	return 0
}

# wait_event TYPE - until an event of TYPE is in $EVENTS (a session ends asynchronously)
wait_event() {
	local i
	for i in $(seq 100); do
		[ -n "$(events "$1")" ] && return 0
		sleep 0.05
	done
	echo "no $1 event in $EVENTS" >&2
	return 1
}

# probe SCRIPT - drive the activated server with tests/smtp-probe
probe() {
	run "$PROBE" 127.0.0.1 "$PORT" 5 <<<"$1"
}

# ensure_journald - start a systemd-journald when none listens (containers, CI);
# a socket file left by a dead journald does not count
ensure_journald() {
	"$TOP/tools/journald" alive && return 0
	[ "$(id -u)" -eq 0 ] || skip "no journald and not root to start one"
	"$TOP/tools/journald" ensure 2>/dev/null
}

# lint_page PAGE - mandoc -T lint -W style finds nothing in PAGE but manuals that are
# not installed here (postconf(5), flock(2), ...), which says nothing of the page
lint_page() {
	run mandoc -T lint -W style "$1"
	[ "$status" -le 2 ] || { echo "$output"; return 1; } # 3 and above: errors, or mandoc failed
	run grep -v ': STYLE: referenced manual not found: Xr ' <<<"$output"
	refute_output --partial "$1:"
}

# all_in PAGE NAME... - each NAME (a leading -- dropped) is a word of PAGE
all_in() {
	local page=$1 n missing=
	shift
	for n; do
		grep -qw -- "${n#--}" "$page" || missing="$missing $n"
	done
	[ -z "$missing" ] || { echo "not in ${page##*/}:$missing"; return 1; }
}
