#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ from what the other tests
already hold, so that the fuzzers start from real dialogues and records:

  smtp_session    every golden transcript (tests/golden/*.in) as the byte
                  stream its harness sends (client lines with CRLF, `~` raw
                  lines, the escapes of tests/golden/README.md), behind a
                  zero byte (no cuts: the target's first byte)
  data_scanner    what follows each DATA line of the golden transcripts,
                  behind the target's two bytes (no cuts, normalize policy,
                  the largest maximum)
  base64          the AUTH responses of the golden transcripts
  journal_record  every record of the fixture journals (tests/fixtures/*/),
                  as the target reads it: version and type bytes, then the
                  payload
  mime_content    the DATA bodies of the golden transcripts (unstuffed, as
                  the session stores them), the integration test's e-mails
                  (tests/integration/content_mail.py, with a fixed date and
                  message ids) and the unit test's crlf("...") messages,
                  behind the target's three settings bytes (the default
                  account; MMS enabled where the body has media)
  gsm_text        the SMS texts of the unit tests (sms_gsm, sms_text) and of
                  the goldens' bodies, and texts at the segment boundaries
                  (160/161 septets, an escape or a surrogate pair across one,
                  20 segments), behind the target's two bytes
  smpp_pdu        the PDUs an SMSC sends, written here from SMPP 3.4 (binds'
                  responses, submit_sm_resp, enquire_link, unbind,
                  generic_nack, deliver_sm: MO texts in GSM, UCS-2, with a UDH
                  and in message_payload, and every receipt text of the unit
                  tests, in short_message, in UCS-2 and as TLVs)
  config          docs/config.example.toml, the TOML blocks of README.md and
                  the TOML texts of tests/unit/core_config_test.cc

  make_corpus.py [--out DIR] [TARGET...]
writes the seeds of every target (or those named) into DIR/<target>/
(default: tests/fuzz/corpus/). Run it again when goldens or fixtures change; libFuzzer's -merge=1 then
minimises (scripts/fuzz keeps its finds in build-fuzz/corpus/):
  fuzz_T -merge=1 -use_counters=0 NEW tests/fuzz/corpus/T build-fuzz/corpus/T
(every edge kept, hit counts not: a tenth of the size), and NEW, with the
crash-* reproducers of tests/fuzz/corpus/T copied in, replaces it.
"""
import argparse
import glob
import hashlib
import os
import random
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
TARGETS = ("smtp_session", "data_scanner", "base64", "journal_record", "mime_content", "gsm_text", "smpp_pdu",
           "config")
WANTED = set(TARGETS)


def unescape(text):
    text = re.sub(r"\{\{(\d+)\*(.*?)\}\}", lambda m: m.group(2) * int(m.group(1)), text)
    out, i = bytearray(), 0
    simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            c = text[i + 1]
            if c in simple:
                out += simple[c]
                i += 2
                continue
            if c == "x" and i + 3 < len(text):
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
        out += text[i].encode()
        i += 1
    return bytes(out)


def golden_stream(path):
    data = bytearray()
    for line in open(path, encoding="utf-8").read().split("\n")[:-1]:
        if line.startswith("#!") or line == "#" or line.startswith("# "):
            continue
        data += unescape(line[1:]) if line.startswith("~") else unescape(line) + b"\r\n"
    return bytes(data)


def write(target, data):
    if target not in WANTED:
        return
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def journal_records(path):
    data = open(path, "rb").read()
    pos = 0
    while pos + 40 <= len(data):
        magic, version, rtype, _flags, length = struct.unpack_from("<IBBHI", data, pos)
        if magic != 0x314A5350:
            break
        yield version, rtype, data[pos + 40:pos + 40 + length]
        pos += 40 + length


def c_string_literals(path):
    """The string literals of a C++ file, adjacent ones joined (as the
    compiler joins them), escapes decoded; raw strings R"(...)" too."""
    text = open(path, encoding="utf-8").read()
    out = []
    def raw(m):
        out.append(m.group(2).encode())
        return " "
    text = re.sub(r'R"([^(\s]*)\((.*?)\)\1"', raw, text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"'(?:[^'\\\n]|\\.)+'", "' '", text)  # char literals: '"' is no string
    for run in re.finditer(r'(?:"(?:[^"\\\n]|\\.)*"\s*)+', text):
        value = b""
        for lit in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', run.group(0)):
            value += c_unescape(lit.group(1))
        out.append(value)
    return out


def c_unescape(body):
    out, i = bytearray(), 0
    simple = {"n": 10, "r": 13, "t": 9, "f": 12, "v": 11, "a": 7, "b": 8, "\\": 92, '"': 34, "'": 39, "?": 63}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            m = re.match(r"[0-9A-Fa-f]+", body[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out += e.encode()
            i += 2
    return bytes(out)


def golden_bodies(stream):
    """The DATA bodies of a golden stream, unstuffed, with their last CRLF
    (what the session stores)."""
    for m in re.finditer(rb"\r\nDATA\r\n", stream):
        end = stream.find(b"\r\n.\r\n", m.end() - 2)
        if end < 0:
            continue
        body = stream[m.end():end + 2]
        yield re.sub(rb"(^|\r\n)\.", rb"\1", body)


def composed_mails():
    """content_mail.py's e-mails, with its date, message ids and MIME
    boundaries (email.generator draws them from `random`) fixed so that the
    seeds do not change from run to run."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import content_mail
    random.seed(18)
    content_mail.formatdate = lambda **_: "Mon, 01 Jan 2024 10:00:00 +0100"
    content_mail.make_msgid = lambda domain: "<seed.0001@%s>" % domain
    for build in content_mail.KINDS.values():
        yield build().as_bytes(policy=content_mail.SMTP_POLICY)


def mime_seeds():
    bodies = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.in"))):
        bodies += list(golden_bodies(golden_stream(path)))
    bodies += list(composed_mails())
    for lit in c_string_literals(os.path.join(ROOT, "tests", "unit", "mime_content_test.cc")):
        # The test's crlf("...") messages: LF there, CRLF as stored.
        if b"\n" in lit:
            bodies.append(lit.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    for body in bodies:
        media = re.search(rb"(?i)image/|audio/|video/|MM4_forward", body) is not None
        # Settings: auto mode, strip signature and quoted reply, subject as
        # text (0x38), MMS too where there is media (0xB8); 10 segments;
        # the default limits.
        write("mime_content", bytes([0xB8 if media else 0x38, 10, 0]) + body)


def gsm_seeds():
    texts = []
    for name in ("sms_gsm_test.cc", "sms_text_test.cc"):
        texts += [t for t in c_string_literals(os.path.join(ROOT, "tests", "unit", name)) if len(t) >= 2]
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.in"))):
        texts += [b.rstrip(b"\r\n") for b in golden_bodies(golden_stream(path)) if len(b) < 2048]
    basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" \
            "¿abcdefghijklmnopqrstuvwxyzäöñüà"
    texts += [basic.encode(), "\f^{}\\[~]|€".encode(), b"a" * 160, b"a" * 161, b"a" * 152 + "€".encode(),
              b"a" * 159 + "€".encode(), "€".encode() * 80, "\U0001F600".encode() * 35, b"a" * 69 + "😀".encode(),
              b"a" * 66 + "😀".encode() + b"b" * 70, b"\xff\xfe bad \xc3", "Caffè “buono” — ok…".encode()]
    for t in texts:
        write("gsm_text", b"\x00\x2a" + t)
    write("gsm_text", b"\x01\x2a" + "“Ciao” – à bientôt…".encode())
    write("gsm_text", b"\x00\x07" + b"a" * 3000)  # 20 segments
    write("gsm_text", b"\x00\x07" + "😀".encode() * 600)


def smpp_pdu(command_id, body=b"", status=0, sequence=1):
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def smpp_short_message(short_message, esm=0, data_coding=0, tlvs=b"", source=b"393331234567"):
    body = b"\0" + b"\x01\x01" + source + b"\0" + b"\x05\x00ACME\0" + bytes([esm, 0, 0]) + b"\0\0"
    return body + bytes([0, 0, data_coding, 0, len(short_message)]) + short_message + tlvs


def tlv(tag, value):
    return struct.pack(">HH", tag, len(value)) + value


def smpp_seeds():
    deliver, submit_resp, bind_resp = 0x00000005, 0x80000004, 0x80000009
    pdus = [
        smpp_pdu(bind_resp, b"SMSC\0" + tlv(0x0210, b"\x34")),
        smpp_pdu(bind_resp, status=0x0E),
        smpp_pdu(0x80000001, b"SMSC\0"), smpp_pdu(0x80000002, b"SMSC\0"),
        smpp_pdu(submit_resp, b"0A1B2C3D\0", sequence=2),
        smpp_pdu(submit_resp, status=0x58, sequence=3),
        smpp_pdu(0x00000015), smpp_pdu(0x80000015), smpp_pdu(0x00000006), smpp_pdu(0x80000006),
        smpp_pdu(0x80000000, status=0x03), smpp_pdu(0x80000005, b"\0"),
        smpp_pdu(0x00000009, b"acme\0secret\0\0\x34\x00\x00\0"),
        smpp_pdu(0x00000004, smpp_short_message(b"Ciao", tlvs=tlv(0x020C, b"\x12\x34") + tlv(0x020E, b"\x02")
                                                + tlv(0x020F, b"\x01"))),
        smpp_pdu(deliver, smpp_short_message(b"Ciao, a presto")),
        smpp_pdu(deliver, smpp_short_message("Ciao 😀".encode("utf-16-be"), data_coding=8)),
        smpp_pdu(deliver, smpp_short_message(b"\x05\x00\x03\x2a\x02\x01" + b"Part one", esm=0x40)),
        smpp_pdu(deliver, smpp_short_message(b"", tlvs=tlv(0x0424, b"A long text in message_payload " * 10))),
        smpp_pdu(deliver, smpp_short_message(b"", esm=4, tlvs=tlv(0x001E, b"0A1B2C3D\0") + tlv(0x0427, b"\x02")
                                             + tlv(0x0423, b"\x03\x00\x01"))),
    ]
    receipts = []
    for name in ("delivery_smpp_codec_test.cc", "delivery_smpp_bind_test.cc"):
        receipts += [t for t in c_string_literals(os.path.join(ROOT, "tests", "unit", name)) if t.startswith(b"id:")]
    for text in receipts:
        pdus.append(smpp_pdu(deliver, smpp_short_message(text[:254], esm=4)))
        ucs2 = b"".join(b"\0" + bytes([c]) for c in text[:127])
        pdus.append(smpp_pdu(deliver, smpp_short_message(ucs2, esm=4, data_coding=8)))
    for p in pdus:
        write("smpp_pdu", p)
    write("smpp_pdu", b"".join(pdus[:6]))  # a stream: several PDUs in one read


def config_seeds():
    texts = [open(os.path.join(ROOT, "docs", "config.example.toml"), "rb").read()]
    block = []
    for line in open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().split("\n") + [""]:
        if line.startswith("    "):
            block.append(line[4:])
            continue
        if block and re.match(r"\[|\w+ = ", block[0]):
            texts.append(("\n".join(block) + "\n").encode())
        block = []
    test = os.path.join(ROOT, "tests", "unit", "core_config_test.cc")
    texts += [t for t in c_string_literals(test) if b"\n" in t and (b"=" in t or b"[" in t)]
    for t in texts:
        write("config", t)


def main():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.in"))):
        stream = golden_stream(path)
        write("smtp_session", b"\0" + stream)
        for m in re.finditer(rb"\r\nDATA\r\n", stream):
            write("data_scanner", b"\0\xff" + stream[m.end():])
        for m in re.finditer(rb"AUTH (?:PLAIN|LOGIN) ([A-Za-z0-9+/=]+)\r\n", stream):
            write("base64", m.group(1))
    for seed in (b"", b"ZGVtbw==", b"AG15dXNlcmlkAG15cGFzc3dvcmQ=", b"YQ==", b"YWI=", b"====", b"ab*d"):
        write("base64", seed)
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "*", "journal-*", "segment-*.log"))):
        for version, rtype, payload in journal_records(path):
            write("journal_record", bytes([version, rtype]) + payload)
    mime_seeds()
    gsm_seeds()
    smpp_seeds()
    config_seeds()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Writes the fuzz targets' seed corpora.")
    parser.add_argument("--out", default=OUT, help="where the <target>/ directories go (default %(default)s)")
    parser.add_argument("targets", nargs="*", help="only these (default: all): " + ", ".join(TARGETS))
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error("no such target: " + ", ".join(sorted(unknown)))
    OUT = args.out
    WANTED = set(args.targets or TARGETS)
    main()
