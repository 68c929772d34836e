/*
 * journal-gen - write N decky-smtpd events to journald with sd_journal_sendv, the way
 * decky-smtpd writes them, for bench/report: sessions of connect, ehlo, auth_attempt
 * (brute force from a few thousand sources, tens of thousands of passwords), some
 * mail_from, rcpt_to and message_accepted, a few tls and non-SMTP probes, disconnect.
 *   journal-gen N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#define NF	24

static struct iovec iov[NF];
static char buf[NF][256];
static int nf;

static void
f(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void
f(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	iov[nf].iov_base = buf[nf];
	iov[nf].iov_len = (size_t)vsnprintf(buf[nf], sizeof(buf[nf]), fmt, ap);
	va_end(ap);
	nf++;
}

static unsigned long events, want;

static void
send_event(const char *type, const char *sid, const char *src)
{
	iov[nf].iov_base = NULL;
	f("EVENT_TYPE=%s", type);
	f("MESSAGE=%s from %s", type, src);
	f("PRIORITY=6");
	f("SYSLOG_IDENTIFIER=decky-smtpd");
	f("MESSAGE_ID=f24172bcc4674828bdbf35b458c067eb");
	f("SESSION_ID=%s", sid);
	f("SRC=%s", src);
	f("SRC_PORT=%d", 1024 + rand() % 60000);
	f("DST=192.0.2.25");
	f("DST_PORT=25");
	f("PERSONA_HOSTNAME=mail.example.org");
	if (sd_journal_sendv(iov, nf) < 0) {
		perror("sd_journal_sendv");
		exit(1);
	}
	nf = 0;
	events++;
}

int
main(int argc, char **argv)
{
	char sid[33], src[32];
	unsigned long s = 0;
	int i, k;

	if (argc != 2)
		return 2;
	want = strtoul(argv[1], NULL, 10);
	srand(1);
	while (events < want) {
		snprintf(sid, sizeof(sid), "%032lx", s++);
		k = rand() % 4000;
		snprintf(src, sizeof(src), "198.51.%d.%d", k / 250, k % 250);
		send_event("connect", sid, src);
		f("COMMAND=EHLO");
		f("DOMAIN=%s", rand() % 3 ? "User" : "localhost");
		send_event("ehlo", sid, src);
		switch (rand() % 10) {
		case 0:	/* a spam run */
			f("VALUE=spam%d@sender%d.example", rand() % 50, rand() % 200);
			send_event("mail_from", sid, src);
			f("VALUE=victim@relay%d.example", rand() % 500);
			send_event("rcpt_to", sid, src);
			f("MAIL_FROM=spam@sender.example");
			f("RCPT_TO=victim@relay.example");
			f("RCPT_COUNT=1");
			f("BODY_BYTES=%d", 500 + rand() % 5000);
			f("SHA256=%064x", rand() % 300);
			f("HDR_SUBJECT=Invoice %d for you", rand() % 100000);
			f("MSG_ID=4F%08X", rand());
			send_event("message_accepted", sid, src);
			break;
		case 1:	/* a TLS client */
			f("TLS_RESULT=ok");
			f("TLS_VERSION=TLSv1.3");
			f("JA4=t13d%04d00_e8f1e7e78f70_d41ae481755e", rand() % 40);
			f("JA3_HASH=%032x", rand() % 40);
			send_event("tls", sid, src);
			break;
		case 2:	/* a scanner speaking HTTP */
			f("COMMAND=NON_SMTP");
			f("VALUE=GET /%d HTTP/1.1", rand() % 20);
			f("REPLY=221");
			send_event("command", sid, src);
			break;
		default:	/* brute force */
			for (i = 0; i < 5; i++) {
				f("MECHANISM=LOGIN");
				f("USERNAME=%s", (const char *[]){ "admin", "root", "info",
				    "test", "postmaster" }[rand() % 5]);
				f("PASSWORD=pw%d", rand() % 50000);
				f("RESULT=%s", i ? "rejected" : "accepted");
				send_event("auth_attempt", sid, src);
			}
		}
		f("REASON=quit");
		send_event("disconnect", sid, src);
	}
	printf("%lu events, %lu sessions\n", events, s);
	return 0;
}
