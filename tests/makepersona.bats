#!/usr/bin/env bats
# --make-persona SEED: deckies of one fleet that do not look alike, each a valid persona.

load helper

setup() {
	common_setup
	unset SMTP_HOSTNAME SMTP_GREETING_DELAY
}

@test "the same seed gives the same bytes, on every build" {
	"$DECKY" --make-persona decky-1 >"$BATS_TEST_TMPDIR/a"
	"$DECKY" --make-persona decky-1 >"$BATS_TEST_TMPDIR/b"
	cmp "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	# pinned: a change of the stream or of a table changes every fleet's personas
	[ "$(sha256sum <"$BATS_TEST_TMPDIR/a" | cut -d' ' -f1)" = \
	    "$(cat "$TESTS/makepersona.sha256")" ]
	"$DECKY" --make-persona decky-2 >"$BATS_TEST_TMPDIR/c"
	! cmp -s "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/c"
}

@test "200 seeds give 200 distinct personas that --check-persona accepts, each a Debian Postfix 3.7" {
	d=$BATS_TEST_TMPDIR/p
	mkdir "$d"
	for i in $(seq 200); do
		"$DECKY" --make-persona "fleet-$i" >"$d/$i.json"
		"$DECKY" --check-persona "$d/$i.json" >"$d/$i.check" ||
		    { cat "$d/$i.json"; false; }
	done
	[ "$(for f in "$d"/*.json; do sha256sum <"$f"; done | sort -u | wc -l)" -eq 200 ]
	[ "$(jq -r .hostname "$d"/*.json | sort -u | wc -l)" -eq 200 ]
	# each value is one a Postfix admin on Debian would have
	jq -r .hostname "$d"/*.json | grep -vE '^[a-z0-9-]+\.[a-z0-9-]+\.[a-z.]+$' && false
	jq -r '.banner == (.hostname + " ESMTP Postfix (Debian/GNU)") or .banner == (.hostname + " ESMTP Postfix")
	    or .banner == (.hostname + " ESMTP")' "$d"/*.json | grep -v true && false
	jq -r '."size-limit"' "$d"/*.json | grep -vxE '10240000|20480000|26214400|31457280|52428800|51200000|104857600' && false
	jq -r '."auth-mechanisms" | join(" ")' "$d"/*.json | grep -vxE 'PLAIN LOGIN|PLAIN|PLAIN LOGIN CRAM-MD5|LOGIN PLAIN' && false
	jq -r '."greeting-delay"' "$d"/*.json | awk -F- '$1 < 5 || $2 <= $1 || $2 > 600 { bad = 1 } END { exit bad }'
	# and they vary: every banner form, size and mechanism set occurs
	[ "$(jq -r '.banner | sub("^[^ ]+ "; "")' "$d"/*.json | sort -u | wc -l)" -eq 3 ]
	[ "$(jq -r '."size-limit"' "$d"/*.json | sort -u | wc -l)" -eq 7 ]
	[ "$(jq -r '."auth-mechanisms" | join(" ")' "$d"/*.json | sort -u | wc -l)" -eq 4 ]
	[ "$(jq -r '."greeting-delay"' "$d"/*.json | sort -u | wc -l)" -gt 150 ]
	# --check-persona took each value as written
	grep -q "^hostname *= $(jq -r .hostname "$d/17.json")\$" "$d/17.check"
}

@test "a made persona serves: its banner, SIZE, AUTH and the certificate's CN" {
	"$DECKY" --make-persona decky-7 >"$BATS_TEST_TMPDIR/p.json"
	host=$(jq -r .hostname "$BATS_TEST_TMPDIR/p.json")
	SMTP_PERSONA=$BATS_TEST_TMPDIR/p.json SMTP_GREETING_DELAY=0 smtp "EHLO x" QUIT
	assert_line -n 0 "220 $(jq -r .banner "$BATS_TEST_TMPDIR/p.json")"$'\r'
	assert_line -n 1 "250-$host"$'\r'
	assert_line "250-SIZE $(jq -r '."size-limit"' "$BATS_TEST_TMPDIR/p.json")"$'\r'
	assert_line "250-AUTH $(jq -r '."auth-mechanisms" | join(" ")' "$BATS_TEST_TMPDIR/p.json")"$'\r'
	[ "$(event_field connect persona_sources)" = \
	    "hostname=file banner=file auth-mechanisms=file auth-failure-delay=env size-limit=file error-sleep=env greeting-delay=env spool=env log=option persona=env" ]
	SMTP_PERSONA=$BATS_TEST_TMPDIR/p.json run "$DECKY" --make-cert
	assert_success
	[ "$(openssl x509 -in "$SMTP_SPOOL/tls/cert.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=$host" ]
}

@test "--make-persona wants a seed of 1 to 255 bytes" {
	run "$DECKY" --make-persona
	[ "$status" -eq 2 ]
	run "$DECKY" --make-persona ""
	[ "$status" -eq 2 ]
	run "$DECKY" --make-persona "$(printf 'x%.0s' $(seq 256))"
	[ "$status" -eq 2 ]
	assert_output --partial "1 to 255 bytes"
}
