#!/usr/bin/env python3
"""Records the client side of SMTP sessions for postino-replay (tests/replay/*.txt).

A minimal SMTP responder in the manner of Postfix's smtp-sink (greeting, EHLO
with PIPELINING and AUTH, 235, 250, 354, 250 after the text, 221) listens on
127.0.0.1 for ONE connection and writes OUT: the --header lines, a
`# reads:` line with the size of every recv() as it arrived, then every byte
the client sent, exactly as received. It answers each command as soon as it
has the line, so a pipelining client's write groups arrive (and are
recorded) as it wrote them.

  tests/replay/record.py OUT --port 2599 --header 'messages: 10' &
  postino-load --server 127.0.0.1:2599 --sessions 1 --messages 10 ...
"""
import argparse
import asyncio


async def serve_one(reader, writer, out, done):
    data = bytearray()
    reads = []
    buf = b""
    in_data = False
    queued = 0
    writer.write(b"220 record.replay ESMTP\r\n")
    await writer.drain()
    auth_steps = 0
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
        reads.append(len(chunk))
        buf += chunk
        replies = []
        closing = False
        while True:
            if in_data:
                end = buf.find(b"\r\n.\r\n")
                if end < 0 and buf.startswith(b".\r\n"):
                    end, skip = 0, 3
                elif end >= 0:
                    skip = end + 5
                else:
                    break
                buf = buf[skip:]
                in_data = False
                queued += 1
                replies.append(b"250 2.0.0 Ok: queued as R%d" % queued)
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl].rstrip(b"\r"), buf[nl + 1:]
            if auth_steps:
                auth_steps -= 1
                replies.append(b"334 UGFzc3dvcmQ6" if auth_steps else b"235 2.7.0 Authentication successful")
                continue
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                replies.append(b"250-record.replay\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME")
            elif verb == b"AUTH":
                words = line.split()
                if words[1].upper() == b"LOGIN":
                    auth_steps = 2 if len(words) == 2 else 1
                    replies.append(b"334 VXNlcm5hbWU6" if len(words) == 2 else b"334 UGFzc3dvcmQ6")
                else:
                    replies.append(b"235 2.7.0 Authentication successful")
            elif verb == b"DATA":
                in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>")
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 Bye")
                closing = True
                break
            else:
                replies.append(b"250 2.0.0 Ok")
        if replies:
            writer.write(b"".join(r + b"\r\n" for r in replies))
            await writer.drain()
        if closing:
            break
    writer.close()
    out.write(b"# reads: " + b" ".join(b"%d" % n for n in reads) + b"\n")
    out.write(bytes(data))
    out.flush()
    done.release()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--port", type=int, default=2599)
    ap.add_argument("--header", action="append", default=[])
    args = ap.parse_args()
    with open(args.out, "wb") as out:
        for h in args.header:
            out.write(b"# " + h.encode() + b"\n")
        done = asyncio.Semaphore(0)
        server = await asyncio.start_server(lambda r, w: serve_one(r, w, out, done), "127.0.0.1", args.port)
        async with server:
            await done.acquire()


asyncio.run(main())
