# decky-smtpd - see README.md.  Warnings are added to the user's CFLAGS, not replaced.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= /lib/systemd/system
CATALOGDIR ?= /usr/lib/systemd/catalog
XINETDDIR ?= /etc/xinetd.d

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
WERROR ?= -Werror
PKGS = libsystemd yajl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_FORTIFY_SOURCE=2 $(WARN) $(WERROR) $(PKG_CFLAGS) $(CFLAGS)

OBJS = smtpd.o session.o sink.o spool.o b64.o
HDRS = session.h sink.h spool.h b64.h

all: decky-smtpd

decky-smtpd: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(PKG_LIBS)

%.o: %.c $(HDRS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

clean:
	rm -f decky-smtpd *.o
	rm -rf build

.PHONY: all clean
