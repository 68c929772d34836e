#!/usr/bin/env bats
# The man page is the reference: lint-clean, and it names everything the code emits.

load helper

PAGE=$TOP/man/decky-smtpd.8

@test "mandoc -T lint finds nothing in the man page" {
	# style too, but not whether the manuals it refers to (postconf(5), flock(2), ...)
	# are installed on this machine: that says nothing of the page
	run mandoc -T lint -W style "$PAGE"
	[ "$status" -le 2 ] || { echo "$output"; false; } # 3 and above: errors, or mandoc failed
	run grep -v ': STYLE: referenced manual not found: Xr ' <<<"$output"
	refute_output --partial "$PAGE:"
}

@test "every event type, field and disconnect reason in the code is in the man page" {
	names=$( {
		# event types (sink.c) and fields (the state machine's files, sink.c, smtpd.c)
		grep -oE '\[EV_[A-Z_]+\] = \{ "[a-z_]+"' "$TOP/sink.c" | grep -oE '"[a-z_]+"'
		grep -ohE '(fieldz?|some|add|shell_event)\([^,()]+, "[A-Z][A-Z0-9_]*"' "$TOP"/*.c | grep -oE '"[A-Z0-9_]+"$'
		grep -ohE 'ADD\("[A-Z_]+"' "$TOP/sink.c" | grep -oE '"[A-Z_]+"'
		# message_partial, command and auth_attempt reasons and results
		grep -ohE '(reset_transaction\(s|spoil_bdat\(s, R_[A-Z_]+|auth_unfinished\(s|fieldz\(&[a-z]+, "(REASON|RESULT)"|command_why\(s, [^;]*), "[a-z_]+"' "$TOP"/session.c "$TOP"/reply.c "$TOP"/address.c "$TOP"/message.c "$TOP"/sasl.c | grep -oE '"[a-z_]+"$'
		# disconnect reasons
		grep -oE '\[END_[A-Z_]+\] = "[a-z_]+"' "$TOP/session.c" | grep -oE '"[a-z_]+"'
	} | tr -d '"' | sort -u)
	[ "$(wc -l <<<"$names")" -gt 30 ]
	missing=
	for n in $names; do
		grep -qw -- "$n" "$PAGE" || missing="$missing $n"
	done
	[ -z "$missing" ] || { echo "not in the man page:$missing"; false; }
}

@test "every setting is in the man page as an option and as SMTP_ variable" {
	settings=$(sed -n '/^} settings\[\] = {/,/^};/p' "$TOP/persona.c" | grep -oE '\{ "[a-z-]+"' | grep -oE '[a-z-]+')
	[ "$(wc -w <<<"$settings")" -ge 18 ]
	missing=
	for s in $settings; do
		env=SMTP_$(tr 'a-z-' 'A-Z_' <<<"$s")
		grep -q -- "$s" "$PAGE" || missing="$missing --$s"
		grep -q -- "$env" "$PAGE" || missing="$missing $env"
	done
	[ -z "$missing" ] || { echo "not in the man page:$missing"; false; }
}

@test "the catalog explains every event's MESSAGE_ID" {
	ids=$(grep -oE '"[0-9a-f]{32}"' "$TOP/sink.c" | tr -d '"')
	[ "$(wc -l <<<"$ids")" -eq "$(grep -cE '^	\[EV_[A-Z_]+\] = \{' "$TOP/sink.c")" ]
	for id in $ids; do
		grep -qx -- "-- $id" "$TOP/man/decky-smtpd.catalog"
	done
}

@test "mandoc -T lint finds nothing in decky-smtpd-report(8)" {
	page=$TOP/man/decky-smtpd-report.8
	run mandoc -T lint -W style "$page"
	[ "$status" -le 2 ] || { echo "$output"; false; }
	run grep -v ': STYLE: referenced manual not found: Xr ' <<<"$output"
	refute_output --partial "$page:"
}

@test "every option, section and bound of decky-smtpd-report is in its man page" {
	page=$TOP/man/decky-smtpd-report.8
	names=$( {
		grep -oE '\{ "[a-z]+", (no|required)_argument' "$TOP/report.c" | grep -oE '"[a-z]+"' | sed 's/^"/"--/'
		grep -oE '\{ T_[A-Z_0-9]+, "[a-z_0-9]+"' "$TOP/report.c" | grep -oE '"[a-z_0-9]+"$'
		grep -oE '#define (CAP_[A-Z]+|COUNT_KEY_MAX|FILES_MAX|HIST_BUCKETS)[[:space:]]+[0-9]+' \
		    "$TOP/report.c" "$TOP/count.h" | awk '{ print $3 }'
	} | tr -d '"' | sort -u)
	[ "$(wc -l <<<"$names")" -gt 25 ]
	missing=
	for n in $names; do
		grep -qw -- "${n#--}" "$page" || missing="$missing $n"
	done
	[ -z "$missing" ] || { echo "not in decky-smtpd-report.8:$missing"; false; }
}

@test "the analyzer's page is lint-clean and names every field, flag, warning and limit in its code" {
	apage=$TOP/man/decky-smtpd-analyze.8
	run mandoc -T lint -W style "$apage"
	[ "$status" -le 2 ] || { echo "$output"; false; }
	run grep -v ': STYLE: referenced manual not found: Xr ' <<<"$output"
	refute_output --partial "$apage:"
	names=$( {
		# event fields and document keys (analysis.c), results (analyze.c)
		grep -ohE '(str|numstr|num|key|strings)\(g, "[A-Za-z0-9_]+"' "$TOP/analysis.c" | grep -oE '"[A-Za-z0-9_]+"$'
		grep -oE 'return "[a-z_]+"' "$TOP/analyze.c" | grep -oE '"[a-z_]+"'
		grep -oE '\? "[a-z_]+" : "[a-z_]+"' "$TOP/analyze.c" | grep -oE '"[a-z_]+"'
		# flags, attachment flags, GMime warnings, stages (mime.c), link flags (analysis.c)
		sed -n '/^static const char \*const flag_names/,/^};/p;/^static const char \*const att_flag_names/,/^};/p' "$TOP/mime.c" | grep -oE '"[a-z_]+"'
		grep -oE '\] = "[a-z_0-9]+"' "$TOP/mime.c" | grep -oE '"[a-z_0-9]+"'
		grep -oE '"(userinfo|numeric_host|cut|encoded_host)"' "$TOP/analysis.c"
		# every named limit
		grep -ohE '^#define (ANALYZE|MIME|LINKS|ANALYSIS)_[A-Z_]+' "$TOP/analyze.c" "$TOP/mime.h" "$TOP/links.h" "$TOP/analysis.h" | awk '{print $2}'
	} | tr -d '"' | sort -u | grep -vx -e ANALYSIS_H -e MIME_H -e LINKS_H -e ANALYSIS_VALUE_MAX -e event -e peer)
	[ "$(wc -l <<<"$names")" -gt 80 ]
	missing=
	for n in $names; do
		grep -qw -- "$n" "$apage" || missing="$missing $n"
	done
	[ -z "$missing" ] || { echo "not in the analyzer's page:$missing"; false; }
	grep -qx -- "-- $(sed -n 's/^#define ANALYZED_MESSAGE_ID.*"\([0-9a-f]*\)"/\1/p' "$TOP/analyze.c")" "$TOP/man/decky-smtpd-analyze.catalog"
}
