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

Run it again when goldens or fixtures change; libFuzzer's -merge=1 can then
minimise (scripts/fuzz keeps its finds in build-fuzz/corpus/).
"""
import glob
import hashlib
import os
import re
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


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


if __name__ == "__main__":
    main()
