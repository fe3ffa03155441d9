#!/usr/bin/env python3
"""TLS dialogues with the gateway for tls_test.cc, each verifying the server
certificate against the test's own CA file (the self-signed certificate):

  smtplib-starttls PORT USER PASS CA   smtplib.SMTP + starttls(), one message
  smtplib-ssl      PORT USER PASS CA   smtplib.SMTP_SSL (implicit TLS), one message
  injection        PORT CA             "STARTTLS\\r\\nRSET\\r\\n" in one packet, then
                                       the handshake: prints what came in the
                                       clear and what came first inside TLS
  resume           PORT USER PASS CA N N connections with implicit TLS, each
                                       offering the previous one's session;
                                       prints how many resumed

Prints one JSON object. Bounds its own time with socket timeouts."""
import json
import smtplib
import socket
import ssl
import sys

TEXT = "Hello over TLS\n"


def context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


def send_one(s, user, password):
    s.login(user, password)
    refused = s.sendmail("ACME", ["+393331234567"], TEXT)
    reply = s.noop()
    return {"refused": list(refused), "cipher": s.sock.cipher()[0], "version": s.sock.version(), "noop": reply[0]}


def smtplib_starttls(port, user, password, ca):
    with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as s:
        s.ehlo()
        before = s.has_extn("auth")
        s.starttls(context=context(ca))
        s.ehlo()
        out = send_one(s, user, password)
        out["auth_offered_before_tls"] = before
        out["auth_offered_after_tls"] = s.has_extn("auth")
        return out


def smtplib_ssl(port, user, password, ca):
    with smtplib.SMTP_SSL("127.0.0.1", int(port), timeout=30, context=context(ca)) as s:
        return send_one(s, user, password)


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return lines
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return lines


def injection(port, ca):
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=15)
    f = raw.makefile("rb")
    clear = read_reply(f)                       # greeting
    raw.sendall(b"EHLO client\r\n")
    clear += read_reply(f)
    raw.sendall(b"STARTTLS\r\nRSET\r\n")        # one packet: RSET must never run
    clear += read_reply(f)                      # 220 Ready to start TLS
    # Whatever else came in the clear is an answer to the injected RSET.
    raw.setblocking(False)
    try:
        extra = raw.recv(4096)
    except BlockingIOError:
        extra = b""
    raw.setblocking(True)
    raw.settimeout(15)
    tls = context(ca).wrap_socket(raw, server_hostname="127.0.0.1")
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client\r\n")
    inside = read_reply(tf)
    tls.sendall(b"QUIT\r\n")
    inside += read_reply(tf)
    tls.close()
    return {"clear": clear, "clear_extra": extra.decode(errors="replace"), "inside": inside}


def resume(port, user, password, ca, count):
    ctx = context(ca)
    session = None
    resumed = 0
    for _ in range(int(count)):
        raw = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        s = smtplib.SMTP(timeout=30)  # not connected: it speaks over our socket
        s.sock = tls
        s.getreply()
        s.ehlo()
        s.login(user, password)
        resumed += 1 if tls.session_reused else 0
        session = tls.session  # holds the ticket by now (it came after the handshake)
        s.docmd("QUIT")
        # OpenSSL keeps a session resumable only if the connection ended with
        # close_notify (the gateway sends its own after the 221).
        tls.unwrap().close()
    return {"connections": int(count), "resumed": resumed}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    try:
        if mode == "smtplib-starttls":
            out = smtplib_starttls(*args)
        elif mode == "smtplib-ssl":
            out = smtplib_ssl(*args)
        elif mode == "injection":
            out = injection(*args)
        elif mode == "resume":
            out = resume(*args)
        else:
            print("unknown mode " + mode, file=sys.stderr)
            return 2
    except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
        out = {"error": repr(e)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
