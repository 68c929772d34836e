# decky-smtpd - see README.md.  Warnings are added to the user's CFLAGS, never replaced.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= /etc/systemd/system
CATALOGDIR ?= /usr/lib/systemd/catalog
XINETDDIR ?= /etc/xinetd.d
JOURNALCONFDIR ?= /etc/systemd

CC ?= cc
CFLAGS ?= -O2 -g -D_FORTIFY_SOURCE=2
WARN = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
WERROR ?= -Werror
PKGS = libsystemd yajl libssl libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
# OpenSSL is linked statically by default: a process per connection pays the
# dynamic linker's symbol lookups for libssl and libcrypto on every start (3.4 M of
# 4.9 M instructions of a session, measured with callgrind), and most sessions never
# use them.  The price: a Debian security update of OpenSSL reaches decky-smtpd only
# when it is rebuilt (make && make install).  OPENSSL_LINK=shared links the shared
# libraries instead.
OPENSSL_LINK ?= static
ifeq ($(OPENSSL_LINK),static)
SSL_LIBS = -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic -ldl -pthread
else
SSL_LIBS = $(shell pkg-config --libs libssl libcrypto)
endif
PKG_LIBS = $(shell pkg-config --libs libsystemd yajl) $(SSL_LIBS)
ALL_CFLAGS = -std=c11 $(WARN) $(WERROR) $(PKG_CFLAGS) $(CFLAGS)
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# the state machine (session.h), in the files session_priv.h describes
SESSION_SRCS = session.c reply.c address.c message.c sasl.c
SRCS = smtpd.c $(SESSION_SRCS) sink.c esc.c spool.c persona.c makepersona.c penalty.c tls.c ja.c b64.c utf8.c rfc822.c flood.c
HDRS = session.h session_priv.h sink.h esc.h penalty.h spool.h persona.h makepersona.h tls.h ja.h b64.h utf8.h rfc822.h flood.h
OBJS = $(SRCS:.c=.o)

# decky-smtpd-analyze: the message analyzer, a program of its own (never run by the
# session).  It links libcrypto shared: it is one long-lived process, not one per
# connection, so it takes OpenSSL's security updates without a rebuild.
ANALYZE_PKGS = gmime-3.0 libxml-2.0 libmagic yajl libsystemd libcrypto
ANALYZE_SRCS = analyze.c mime.c links.c analysis.c sink.c esc.c b64.c utf8.c
ANALYZE_HDRS = mime.h links.h analysis.h sink.h esc.h session.h b64.h utf8.h
ANALYZE_CFLAGS = $(shell pkg-config --cflags $(ANALYZE_PKGS))
ANALYZE_LIBS = $(shell pkg-config --libs $(ANALYZE_PKGS))

# make run: where the honeypot listens and keeps its spool and event file
RUN_HOST ?= 127.0.0.1
RUN_PORT ?= 2525
RUN_DIR ?= $(CURDIR)/run

# decky-smtpd-report: the report from the journal (sd_journal), its own program
REPORT_SRCS = report.c count.c esc.c keys.c b64.c utf8.c
REPORT_HDRS = count.h esc.h keys.h b64.h utf8.h
REPORT_LIBS = $(shell pkg-config --libs libsystemd yajl)

all: decky-smtpd decky-smtpd-report decky-smtpd-analyze

decky-smtpd-report: $(REPORT_SRCS:.c=.o)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(REPORT_SRCS:.c=.o) $(REPORT_LIBS)

report.o count.o esc.o keys.o: $(REPORT_HDRS)

decky-smtpd: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(PKG_LIBS)

decky-smtpd-analyze: $(ANALYZE_SRCS) $(ANALYZE_HDRS)
	$(CC) $(ALL_CFLAGS) $(ANALYZE_CFLAGS) $(LDFLAGS) -o $@ $(ANALYZE_SRCS) $(ANALYZE_LIBS)

%.o: %.c $(HDRS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# the same program under AddressSanitizer and UndefinedBehaviorSanitizer
build/asan/decky-smtpd: $(SRCS) $(HDRS)
	@mkdir -p build/asan
	$(CC) $(ALL_CFLAGS) -O1 -g $(SANITIZE) $(LDFLAGS) -o $@ $(SRCS) $(PKG_LIBS)

build/asan/decky-smtpd-report: $(REPORT_SRCS) $(REPORT_HDRS)
	@mkdir -p build/asan
	$(CC) $(ALL_CFLAGS) -O1 -g $(SANITIZE) $(LDFLAGS) -o $@ $(REPORT_SRCS) $(REPORT_LIBS)

build/asan/decky-smtpd-analyze: $(ANALYZE_SRCS) $(ANALYZE_HDRS)
	@mkdir -p build/asan
	$(CC) $(ALL_CFLAGS) $(ANALYZE_CFLAGS) -O1 -g $(SANITIZE) $(LDFLAGS) -o $@ $(ANALYZE_SRCS) $(ANALYZE_LIBS)

asan: build/asan/decky-smtpd build/asan/decky-smtpd-report build/asan/decky-smtpd-analyze

deps:
	@tools/deps check

# every test, on the plain build and then on the sanitizer build
check:
	@tools/deps check
	@$(MAKE) --no-print-directory all asan
	@tests/run ./decky-smtpd
	@DECKY_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run build/asan/decky-smtpd

# make fidelity: the probes of tests/fidelity against the committed Postfix transcripts
# (make check runs them too).  make fidelity-live: install and start the reference Postfix
# here (root, Debian 12), re-record the transcripts and nmap's findings from it, then
# compare, and send FIDELITY_RANDOM sessions of random address commands to both.
fidelity:
	@tools/deps check
	@$(MAKE) --no-print-directory all
	@tests/fidelity/compare ./decky-smtpd

FIDELITY_RANDOM ?= 400

fidelity-live:
	@tools/deps check
	@$(MAKE) --no-print-directory all
	@tests/fidelity/setup-postfix
	@tests/fidelity/record 127.0.0.1 2526
	@tests/nmap/scan 2526 >tests/nmap/postfix.expected
	@tests/fidelity/compare ./decky-smtpd
	@tests/fidelity/compare --random $(FIDELITY_RANDOM) ./decky-smtpd

.PHONY: fidelity fidelity-live

# every test with each decky-smtpd process under valgrind's memcheck (slow: not in check).
# The build has no _FORTIFY_SOURCE: valgrind takes glibc's checked memmove for a memcpy.
build/memcheck/decky-smtpd: $(SRCS) $(HDRS)
	@mkdir -p build/memcheck
	$(CC) -std=c11 $(WARN) $(WERROR) $(PKG_CFLAGS) -O1 -g $(LDFLAGS) -o $@ $(SRCS) $(PKG_LIBS)

memcheck:
	@tools/deps check
	@command -v valgrind >/dev/null || apt-get install -y -qq valgrind
	@$(MAKE) --no-print-directory build/memcheck/decky-smtpd
	@tests/run --valgrind build/memcheck/decky-smtpd

run:
	@tools/deps run
	@$(MAKE) --no-print-directory all
	@mkdir -p $(RUN_DIR)
	@echo "decky-smtpd: listening on $(RUN_HOST):$(RUN_PORT), one process per connection (systemd-socket-activate --inetd -a)"
	@echo "  try:     swaks --server $(RUN_HOST) --port $(RUN_PORT) --to victim@example.org"
	@echo "           swaks --server $(RUN_HOST) --port $(RUN_PORT) --to victim@example.org --tls   (STARTTLS; key and certificate made in $(RUN_DIR)/spool/tls/)"
	@echo "  events:  journalctl -f -t decky-smtpd          (and JSON lines in $(RUN_DIR)/events.json)"
	@echo "  spool:   $(RUN_DIR)/spool/new/                  (one file per accepted message; analyzed ones move to cur/)"
	@echo "  analyzer: decky-smtpd-analyze --watch: message_analyzed follows message_accepted (also in $(RUN_DIR)/analyzed.json)"
	@echo "  report:  ./decky-smtpd-report --since -1h   (who came, what they tried, what they sent; --json)"
	@echo "  stop:    Ctrl-C"
	@tools/journald alive || echo "  note:    no journald is running here: events are in $(RUN_DIR)/events.json and on this terminal"
	@mkdir -p $(RUN_DIR)/spool
	@$(CURDIR)/decky-smtpd-analyze --watch --spool=$(RUN_DIR)/spool --log=journal,json:$(RUN_DIR)/analyzed.json & \
	    trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	    systemd-socket-activate --inetd -a -l $(RUN_HOST):$(RUN_PORT) -E SMTP_SPOOL=$(RUN_DIR)/spool \
	    $(CURDIR)/decky-smtpd --log=journal,json:$(RUN_DIR)/events.json

# make bench: sessions/s beside the fork+exec floor, xinetd and Postfix, latency, memory,
# ingest, instructions; writes bench/RESULTS.md (a few minutes, root; never part of check)
bench:
	@tools/deps build
	@$(MAKE) --no-print-directory all
	@bench/run ./decky-smtpd

install: decky-smtpd decky-smtpd-report decky-smtpd-analyze
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(CATALOGDIR) $(DESTDIR)$(XINETDDIR) $(DESTDIR)$(UNITDIR)/xinetd.service.d
	install -m 755 decky-smtpd $(DESTDIR)$(SBINDIR)/decky-smtpd
	install -m 755 decky-smtpd-report $(DESTDIR)$(SBINDIR)/decky-smtpd-report
	install -m 644 man/decky-smtpd-report.8 $(DESTDIR)$(MANDIR)/man8/decky-smtpd-report.8
	install -m 644 man/decky-smtpd.8 $(DESTDIR)$(MANDIR)/man8/decky-smtpd.8
	install -m 644 man/decky-smtpd.catalog $(DESTDIR)$(CATALOGDIR)/decky-smtpd.catalog
	install -m 644 units/decky-smtpd.socket $(DESTDIR)$(UNITDIR)/decky-smtpd.socket
	sed 's|/usr/local/sbin/decky-smtpd|$(SBINDIR)/decky-smtpd|' units/decky-smtpd@.service \
	    >$(DESTDIR)$(UNITDIR)/decky-smtpd@.service
	sed 's|/usr/local/sbin/decky-smtpd|$(SBINDIR)/decky-smtpd|' units/decky-smtpd.xinetd \
	    >$(DESTDIR)$(XINETDDIR)/decky-smtpd
	install -m 644 units/xinetd-decky-smtpd.conf $(DESTDIR)$(UNITDIR)/xinetd.service.d/decky-smtpd.conf
	@# a fleet: the deckies' journal-upload and the collector's journal-remote (enabled by none)
	install -d $(DESTDIR)$(JOURNALCONFDIR)/journal-upload.conf.d $(DESTDIR)$(JOURNALCONFDIR)/journal-remote.conf.d \
	    $(DESTDIR)$(UNITDIR)/systemd-journal-upload.service.d
	install -m 644 units/journal-upload-decky-smtpd.conf $(DESTDIR)$(JOURNALCONFDIR)/journal-upload.conf.d/decky-smtpd.conf
	install -m 644 units/journal-remote-decky-smtpd.conf $(DESTDIR)$(JOURNALCONFDIR)/journal-remote.conf.d/decky-smtpd.conf
	install -m 644 units/systemd-journal-upload-decky-smtpd.conf \
	    $(DESTDIR)$(UNITDIR)/systemd-journal-upload.service.d/decky-smtpd.conf
	install -m 755 decky-smtpd-analyze $(DESTDIR)$(SBINDIR)/decky-smtpd-analyze
	install -m 644 man/decky-smtpd-analyze.8 $(DESTDIR)$(MANDIR)/man8/decky-smtpd-analyze.8
	install -m 644 man/decky-smtpd-analyze.catalog $(DESTDIR)$(CATALOGDIR)/decky-smtpd-analyze.catalog
	install -m 644 units/decky-smtpd-analyze.path $(DESTDIR)$(UNITDIR)/decky-smtpd-analyze.path
	sed 's|/usr/local/sbin/decky-smtpd-analyze|$(SBINDIR)/decky-smtpd-analyze|' units/decky-smtpd-analyze.service \
	    >$(DESTDIR)$(UNITDIR)/decky-smtpd-analyze.service
	@if [ -z "$(DESTDIR)" ] && command -v journalctl >/dev/null; then journalctl --update-catalog; fi

# make fuzz: the libFuzzer target over the session API (clang) for FUZZ_SECONDS, from
# the seed corpus; new inputs go to build/fuzz/corpus, crashers to build/fuzz/crash-*
# (keep each in tests/fuzz/regressions: make check replays them without clang)
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS = -std=c11 $(WARN) $(WERROR) -O1 -g -fsanitize=fuzzer,address,undefined \
    -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SRCS = tests/fuzz/session_fuzz.c $(SESSION_SRCS) ja.c b64.c utf8.c rfc822.c flood.c

build/fuzz/session_fuzz: $(FUZZ_SRCS) session.h session_priv.h ja.h b64.h rfc822.h flood.h
	@tools/deps fuzz
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_SRCS) -lcrypto

# the same for what decky-smtpd-report does with journal values (make fuzz-report)
build/fuzz/report_fuzz: tests/fuzz/report_fuzz.c count.c esc.c keys.c count.h esc.h keys.h
	@tools/deps fuzz
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/report_fuzz.c count.c esc.c keys.c

fuzz-report: build/fuzz/report_fuzz
	@mkdir -p build/fuzz/report-corpus
	build/fuzz/report_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -artifact_prefix=build/fuzz/ $(FUZZ_ARGS) build/fuzz/report-corpus tests/fuzz/report-corpus

# make fuzz-analyze: the same for the analyzer's parse path (tests/fuzz/analyze_fuzz.c),
# seeds from tests/fuzz/analyze-corpus (tests/fuzz/mkcorpus-analyze builds them)
ANALYZE_FUZZ_SRCS = tests/fuzz/analyze_fuzz.c mime.c links.c analysis.c sink.c esc.c b64.c utf8.c

build/fuzz/analyze_fuzz: $(ANALYZE_FUZZ_SRCS) mime.h links.h analysis.h sink.h b64.h utf8.h
	@tools/deps fuzz
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(ANALYZE_CFLAGS) -o $@ $(ANALYZE_FUZZ_SRCS) $(ANALYZE_LIBS)

fuzz-analyze: build/fuzz/analyze_fuzz
	@mkdir -p build/fuzz/analyze-corpus
	build/fuzz/analyze_fuzz -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/mime.dict \
	    -max_len=262144 -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/analyze- \
	    $(FUZZ_ARGS) build/fuzz/analyze-corpus tests/fuzz/analyze-corpus

fuzz: build/fuzz/session_fuzz
	@mkdir -p build/fuzz/corpus
	build/fuzz/session_fuzz -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/smtp.dict \
	    -max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/ \
	    $(FUZZ_ARGS) build/fuzz/corpus tests/fuzz/corpus

clean:
	rm -f decky-smtpd decky-smtpd-report decky-smtpd-analyze $(OBJS) $(REPORT_SRCS:.c=.o)
	rm -rf build

.PHONY: all asan deps check memcheck run install clean fuzz fuzz-report fuzz-analyze bench
