#!/usr/bin/env bats
# The man page is the reference: lint-clean, and it names everything the code emits.

load helper

PAGE=$TOP/man/decky-smtpd.8

@test "mandoc -T lint finds nothing in the man page" {
	lint_page "$PAGE"
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
	all_in "$PAGE" $names
}

@test "every setting is in the man page as an option and as SMTP_ variable" {
	settings=$(sed -n '/^} settings\[\] = {/,/^};/p' "$TOP/persona.c" | grep -oE '\{ "[a-z-]+"' | grep -oE '[a-z-]+')
	[ "$(wc -w <<<"$settings")" -ge 18 ]
	all_in "$PAGE" $(for s in $settings; do echo "--$s SMTP_$(tr 'a-z-' 'A-Z_' <<<"$s")"; done)
}

@test "the catalog explains every event's MESSAGE_ID" {
	ids=$(grep -oE '"[0-9a-f]{32}"' "$TOP/sink.c" | tr -d '"')
	[ "$(wc -l <<<"$ids")" -eq "$(grep -cE '^	\[EV_[A-Z_]+\] = \{' "$TOP/sink.c")" ]
	for id in $ids; do
		grep -qx -- "-- $id" "$TOP/man/decky-smtpd.catalog"
	done
}

@test "mandoc -T lint finds nothing in decky-smtpd-report(8)" {
	lint_page "$TOP/man/decky-smtpd-report.8"
}

@test "every option, section and bound of decky-smtpd-report is in its man page" {
	names=$( {
		grep -oE '\{ "[a-z]+", (no|required)_argument' "$TOP/report.c" | grep -oE '"[a-z]+"' | sed 's/^"/"--/'
		grep -oE '\{ T_[A-Z_0-9]+, "[a-z_0-9]+"' "$TOP/report.c" | grep -oE '"[a-z_0-9]+"$'
		# every named bound, by its name (.Dv): two share 256, and a number is anywhere
		grep -ohE '^#define [A-Z][A-Z0-9_]+' "$TOP/report.c" "$TOP/count.h" | awk '{ print $2 }' |
		    grep -vx -e IDENT -e NSECTION -e SEEN_SLOTS -e NVAL -e COUNT_H -e COUNT_AUX
	} | tr -d '"' | sort -u)
	[ "$(wc -l <<<"$names")" -gt 30 ]
	all_in "$TOP/man/decky-smtpd-report.8" $names
}

@test "the analyzer's page is lint-clean and names every field, flag, warning and limit in its code" {
	apage=$TOP/man/decky-smtpd-analyze.8
	lint_page "$apage"
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
	all_in "$apage" $names
	grep -qx -- "-- $(sed -n 's/^#define ANALYZED_MESSAGE_ID.*"\([0-9a-f]*\)"/\1/p' "$TOP/analyze.c")" "$TOP/man/decky-smtpd-analyze.catalog"
}
