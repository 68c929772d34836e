#!/usr/bin/env python3
"""hello.py - TLS ClientHellos for tls.bats: build them from bytes, read them from
`openssl s_client -msg`, and compute their JA3 and JA4 here, independently of
decky-smtpd (JA3: Salesforce's definition; JA4: FoxIO's technical_details/JA4.md).

  hello.py craft PORT KIND [SNI] [ALPN-HEX,...]
      connect to 127.0.0.1:PORT, EHLO, STARTTLS, then send a crafted ClientHello
      (KIND: chrome = the JA4 specification's example hello, known = the same without
      the two extensions OpenSSL 3.0 does not know) and close; print
      ja3=, ja3_hash=, ja4=, ja4_r= of what was sent and "reply=" with what came back
  hello.py msg FILE
      the first ClientHello in `openssl s_client -msg` output: print ja3=, ja3_hash=, ja4=
Only for loopback test servers.
"""
import hashlib
import os
import re
import socket
import sys


def grease(v):
    """GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa"""
    return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)


def u16s(b):
    return [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b) - 1, 2)]


def parse(hs):
    """A handshake message (type 1, u24 length, body) to its fields."""
    assert hs[0] == 1, "not a ClientHello"
    n = int.from_bytes(hs[1:4], "big")
    b = hs[4:4 + n]
    assert len(b) == n, "ClientHello cut short"
    ch = {"version": int.from_bytes(b[0:2], "big")}
    p = 2 + 32
    p += 1 + b[p]                                   # session id
    cl = int.from_bytes(b[p:p + 2], "big")
    ch["ciphers"] = u16s(b[p + 2:p + 2 + cl])
    p += 2 + cl
    p += 1 + b[p]                                   # compression methods
    ch["exts"] = []
    if p < len(b):
        el = int.from_bytes(b[p:p + 2], "big")
        p += 2
        end = p + el
        while p < end:
            t = int.from_bytes(b[p:p + 2], "big")
            ln = int.from_bytes(b[p + 2:p + 4], "big")
            ch["exts"].append((t, b[p + 4:p + 4 + ln]))
            p += 4 + ln
    return ch


def ext(ch, t):
    for et, body in ch["exts"]:
        if et == t:
            return body
    return None


def groups(ch):
    e = ext(ch, 0x000a)
    return u16s(e[2:]) if e else []


def point_formats(ch):
    e = ext(ch, 0x000b)
    return list(e[1:1 + e[0]]) if e else []


def sigalgs(ch):
    e = ext(ch, 0x000d)
    return u16s(e[2:]) if e else []


def alpn_values(ch):
    e = ext(ch, 0x0010)
    out, p = [], 2
    while e and p < len(e):
        out.append(e[p + 1:p + 1 + e[p]])
        p += 1 + e[p]
    return out


def sni(ch):
    e = ext(ch, 0x0000)
    return e[5:5 + int.from_bytes(e[3:5], "big")].decode() if e else None


def ja3(ch):
    def j(v):
        return "-".join(str(x) for x in v if not grease(x))
    s = ",".join([str(ch["version"]), j(ch["ciphers"]), j([t for t, _ in ch["exts"]]),
                  j(groups(ch)), "-".join(str(x) for x in point_formats(ch))])
    return s, hashlib.md5(s.encode()).hexdigest()


def alnum(c):
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5a or 0x61 <= c <= 0x7a


def ja4(ch):
    names = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
             0x0002: "s2", 0xfeff: "d1", 0xfefd: "d2", 0xfefc: "d3"}
    sv = ext(ch, 0x002b)
    if sv is not None:
        vs = [v for v in u16s(sv[1:1 + sv[0]]) if not grease(v)]
        ver = max(vs) if vs else 0
    else:
        ver = ch["version"]
    ciphers = [c for c in ch["ciphers"] if not grease(c)]
    exts = [t for t, _ in ch["exts"] if not grease(t)]
    alpn = alpn_values(ch)
    first = alpn[0] if alpn else b""
    if not first:
        a = "00"
    elif alnum(first[0]) and alnum(first[-1]):
        a = chr(first[0]) + chr(first[-1])
    else:
        h = first.hex()
        a = h[0] + h[-1]
    head = "t%s%s%02d%02d%s" % (names.get(ver, "00"), "d" if 0 in exts else "i",
                                 min(len(ciphers), 99), min(len(exts), 99), a)
    cs = ",".join(sorted("%04x" % c for c in ciphers))
    es = ",".join(sorted("%04x" % t for t in exts if t not in (0x0000, 0x0010)))
    sa = ",".join("%04x" % s for s in sigalgs(ch) if not grease(s))
    es_sa = es + ("_" + sa if sa else "")

    def h12(s):
        return hashlib.sha256(s.encode()).hexdigest()[:12] if s else "000000000000"
    return ("%s_%s_%s" % (head, h12(cs), h12(es) if not es else h12(es_sa)),
            "%s_%s_%s" % (head, cs, es_sa))


def show(ch):
    s, h = ja3(ch)
    j, r = ja4(ch)
    print("ja3=" + s)
    print("ja3_hash=" + h)
    print("ja4=" + j)
    print("ja4_r=" + r)


# --- building a hello -------------------------------------------------------------

def x25519_public(k):
    """RFC 7748 X25519(k, 9): a real public key, so the server's key share parses."""
    p = 2**255 - 19
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(k, "little")
    x1, x2, z2, x3, z3, swap = 9, 1, 0, 9, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % p, (x2 - z2) % p
        aa, bb = a * a % p, b * b % p
        e = (aa - bb) % p
        c, d = (x3 + z3) % p, (x3 - z3) % p
        da, cb = d * a % p, c * b % p
        x3, z3 = (da + cb) ** 2 % p, x1 * (da - cb) ** 2 % p
        x2, z2 = aa * bb % p, e * (aa + 121665 * e) % p
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


def v16(b):
    return len(b).to_bytes(2, "big") + b


def v8(b):
    return bytes([len(b)]) + b


def be16(*vals):
    return b"".join(v.to_bytes(2, "big") for v in vals)


# the JA4 specification's example: Chrome's ciphers and extensions, in Chrome's order
CHROME_CIPHERS = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                  0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035]
CHROME_EXTS = [0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005,
               0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015]
CHROME_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def chrome_hello(server_name, alpn, skip=()):
    """Handshake bytes of a Chrome-like ClientHello; SNI and ALPN only when given,
    without the extension types in skip."""
    body = {
        0x001b: v8(be16(0x0002)),                                   # compress_certificate: brotli
        0x0000: v16(b"\x00" + v16(server_name.encode())) if server_name else None,
        0x0033: v16(be16(0x4a4a) + v16(b"\x00") +                   # key_share: GREASE, x25519
                    be16(0x001d) + v16(x25519_public(os.urandom(32)))),
        0x0010: v16(b"".join(v8(a) for a in alpn)) if alpn else None,
        0x4469: v16(v8(b"h2")),                                     # application_settings
        0x0017: b"",                                                # extended_master_secret
        0x002d: v8(b"\x01"),                                        # psk_key_exchange_modes
        0x000d: v16(be16(*CHROME_SIGALGS)),
        0x0005: b"\x01" + be16(0, 0),                               # status_request: ocsp
        0x0023: b"",                                                # session_ticket
        0x0012: b"",                                                # signed_certificate_timestamp
        0x002b: v8(be16(0x6a6a, 0x0304, 0x0303)),                   # supported_versions
        0xff01: b"\x00",                                            # renegotiation_info
        0x000b: v8(b"\x00"),                                        # ec_point_formats
        0x000a: v16(be16(0x4a4a, 0x001d, 0x0017, 0x0018)),          # supported_groups
        0x0015: bytes(32),                                          # padding
    }
    exts = [(0x2a2a, b"")]
    exts += [(t, body[t]) for t in CHROME_EXTS if body[t] is not None and t not in skip]
    exts += [(0xbaba, b"\x00")]
    e = b"".join(be16(t) + v16(b) for t, b in exts)
    hello = (be16(0x0303) + os.urandom(32) + v8(os.urandom(32)) +
             v16(be16(0x0a0a, *CHROME_CIPHERS)) + v8(b"\x00") + v16(e))
    return b"\x01" + len(hello).to_bytes(3, "big") + hello


def smtp_reply(f):
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def craft(port, kind, server_name=None, alpn_hex=""):
    alpn = [bytes.fromhex(a) for a in alpn_hex.split(",") if a] if alpn_hex else []
    # known: without compress_certificate and application_settings, which OpenSSL 3.0
    # does not know
    hs = chrome_hello(server_name or None, alpn, {"chrome": (), "known": (0x001b, 0x4469)}[kind])
    show(parse(hs))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    smtp_reply(f)
    s.sendall(b"EHLO crafted.example\r\n")
    smtp_reply(f)
    s.sendall(b"STARTTLS\r\n")
    r = smtp_reply(f)
    print("starttls=" + r.decode().strip())
    if not r.startswith(b"220"):
        return
    s.sendall(b"\x16\x03\x01" + v16(hs))
    s.settimeout(2)
    got = b""
    try:
        while len(got) < 5 or got[0] == 0x16 and len(got) < 50:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    # a record of type 22 (handshake) is a ServerHello: the hello was taken
    print("reply=" + got[:5].hex())
    s.close()


def from_msg(path):
    """The ClientHello that `openssl s_client -msg` printed as hex under '>>> ... ClientHello'."""
    hexes, inside = [], False
    for line in open(path, errors="replace"):
        if re.match(r">>> .*Handshake.*ClientHello", line):
            inside = True
            continue
        if inside:
            if re.match(r"^\s+([0-9a-f]{2} ?)+\s*$", line):
                hexes.append(line.strip())
                continue
            break
    if not hexes:
        sys.exit("no ClientHello in " + path)
    show(parse(bytes.fromhex("".join(hexes))))


if __name__ == "__main__":
    if sys.argv[1] == "craft":
        craft(int(sys.argv[2]), sys.argv[3], *sys.argv[4:])
    elif sys.argv[1] == "msg":
        from_msg(sys.argv[2])
    else:
        sys.exit(__doc__)
