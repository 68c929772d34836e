#!/usr/bin/env bats
# The systemd units and the installed tree.

load helper

setup() {
	common_setup
}

# exposure_at_most UNIT MAX - systemd-analyze security rates UNIT's exposure MAX or better
exposure_at_most() {
	local out score
	out=$(systemd-analyze security --offline=true --no-pager "$1" 2>&1) || true
	tail -3 <<<"$out"
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$score" ] || { echo "no exposure level for ${1##*/}"; return 1; }
	awk -v s="$score" -v m="$2" 'BEGIN { exit !(s <= m) }'
}

@test "systemd-analyze verify accepts the units" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	d=$BATS_TEST_TMPDIR/units
	mkdir -p "$d"
	cp "$TOP/units/decky-smtpd.socket" "$d/"
	# the unit must name an executable that exists: the one under test
	sed "s|/usr/local/sbin/decky-smtpd|$DECKY|" "$TOP/units/decky-smtpd@.service" >"$d/decky-smtpd@.service"
	run systemd-analyze verify --man=no "$d/decky-smtpd.socket" "$d/decky-smtpd@.service"
	echo "$output"
	assert_success
	refute_output --partial 'decky-smtpd'
}

@test "systemd-analyze security rates the session unit 1.0 or better" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	exposure_at_most "$TOP/units/decky-smtpd@.service" 1.0
}

@test "the socket accepts each connection itself and starts a session for it" {
	grep -qx 'Accept=yes' "$TOP/units/decky-smtpd.socket"
	grep -qx 'ListenStream=25' "$TOP/units/decky-smtpd.socket"
	grep -qx 'StandardInput=socket' "$TOP/units/decky-smtpd@.service"
	grep -qx 'StandardError=journal' "$TOP/units/decky-smtpd@.service"
	grep -qx 'StateDirectory=decky-smtpd' "$TOP/units/decky-smtpd@.service"
	# a flood is capped, and cannot fail the socket
	grep -qx 'MaxConnections=256' "$TOP/units/decky-smtpd.socket"
	grep -qx 'MaxConnectionsPerSource=16' "$TOP/units/decky-smtpd.socket"
	grep -qx 'TriggerLimitIntervalSec=0' "$TOP/units/decky-smtpd.socket"
	grep -qx 'PrivateNetwork=yes' "$TOP/units/decky-smtpd@.service"
}

@test "make install puts each file in its place under DESTDIR and PREFIX" {
	dest=$BATS_TEST_TMPDIR/root
	run make -s -C "$TOP" install DESTDIR="$dest" PREFIX=/usr
	assert_success
	[ -x "$dest/usr/sbin/decky-smtpd" ]
	[ -f "$dest/usr/share/man/man8/decky-smtpd.8" ]
	[ -f "$dest/usr/lib/systemd/catalog/decky-smtpd.catalog" ]
	[ -f "$dest/etc/systemd/system/decky-smtpd.socket" ]
	grep -qx 'ExecStart=/usr/sbin/decky-smtpd' "$dest/etc/systemd/system/decky-smtpd@.service"
	grep -q 'server.*= /usr/sbin/decky-smtpd' "$dest/etc/xinetd.d/decky-smtpd"
	grep -qx 'LogRateLimitBurst=[0-9]*' "$dest/etc/systemd/system/xinetd.service.d/decky-smtpd.conf"
	# the fleet's drop-ins, in place; nothing enabled (no .wants links)
	grep -qx 'TrustedCertificateFile=/etc/decky-smtpd/fleet/ca.pem' "$dest/etc/systemd/journal-upload.conf.d/decky-smtpd.conf"
	grep -qx 'SplitMode=host' "$dest/etc/systemd/journal-remote.conf.d/decky-smtpd.conf"
	grep -qx 'Restart=always' "$dest/etc/systemd/system/systemd-journal-upload.service.d/decky-smtpd.conf"
	[ -z "$(find "$dest" -name '*.wants')" ]
	[ -x "$dest/usr/sbin/decky-smtpd-analyze" ]
	[ -f "$dest/usr/share/man/man8/decky-smtpd-analyze.8" ]
	[ -f "$dest/usr/lib/systemd/catalog/decky-smtpd-analyze.catalog" ]
	[ -f "$dest/etc/systemd/system/decky-smtpd-analyze.path" ]
	grep -qx 'ExecStart=/usr/sbin/decky-smtpd-analyze --watch --spool=/var/lib/decky-smtpd' "$dest/etc/systemd/system/decky-smtpd-analyze.service"
}

@test "xinetd's journal rate limit covers instances sessions at their own event budget" {
	# instances x (event-burst + 30 s x event-rate), from the shipped files themselves
	inst=$(sed -n 's/^[[:space:]]*instances[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$TOP/units/decky-smtpd.xinetd")
	burst=$(sed -n 's/.*p->event_burst = \([0-9]*\);.*/\1/p' "$TOP/persona.c")
	rate=$(sed -n 's/.*p->event_rate = \([0-9]*\);.*/\1/p' "$TOP/persona.c")
	limit=$(sed -n 's/^LogRateLimitBurst=//p' "$TOP/units/xinetd-decky-smtpd.conf")
	grep -qx 'LogRateLimitIntervalSec=30s' "$TOP/units/xinetd-decky-smtpd.conf"
	echo "instances $inst, burst $burst, rate $rate, limit $limit"
	[ -n "$inst" ]
	[ -n "$burst" ]
	[ -n "$rate" ]
	[ "$limit" -ge $(( inst * (burst + 30 * rate) )) ]
}

@test "systemd-analyze verify accepts the analyzer's service and path units" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	d=$BATS_TEST_TMPDIR/units
	mkdir -p "$d"
	analyze=$(dirname "$DECKY")/decky-smtpd-analyze
	[ -x "$analyze" ] || analyze=$TOP/decky-smtpd-analyze
	sed "s|/usr/local/sbin/decky-smtpd-analyze|$analyze|" "$TOP/units/decky-smtpd-analyze.service" >"$d/decky-smtpd-analyze.service"
	cp "$TOP/units/decky-smtpd-analyze.path" "$d/"
	run systemd-analyze verify --man=no "$d/decky-smtpd-analyze.path" "$d/decky-smtpd-analyze.service"
	echo "$output"
	assert_success
	refute_output --partial 'decky-smtpd'
	grep -qx 'DirectoryNotEmpty=/var/lib/decky-smtpd/new' "$TOP/units/decky-smtpd-analyze.path"
	grep -qx 'ExecStart=/usr/local/sbin/decky-smtpd-analyze --watch --spool=/var/lib/decky-smtpd' "$TOP/units/decky-smtpd-analyze.service"
}

@test "systemd-analyze security rates the analyzer unit 1.0 or better: no network, the spool alone writable" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	exposure_at_most "$TOP/units/decky-smtpd-analyze.service" 1.0
	u=$TOP/units/decky-smtpd-analyze.service
	grep -qx 'PrivateNetwork=yes' "$u"
	grep -qx 'RestrictAddressFamilies=AF_UNIX' "$u"
	grep -qx 'ProtectSystem=strict' "$u"
	grep -qx 'ReadWritePaths=/var/lib/decky-smtpd' "$u"
	grep -qx 'MemoryMax=[0-9]*M' "$u"
	# the children's own limits need setrlimit: @resources must not be filtered
	! grep -q '^SystemCallFilter=~.*@resources' "$u"
}
