#!/usr/bin/env python3
"""Drives the gateway with Python's smtplib, the way scripts and mail libraries
do, and prints one JSON object with every reply it got. Used by
smtplib_test.cc; it bounds its own time with socket timeouts."""
import json
import smtplib
import sys


def send(port, user, password, sender, recipients, text, use_sendmail=False):
    out = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        out["ehlo"] = list(s.ehlo("client.example"))
        out["ehlo"][1] = out["ehlo"][1].decode()
        try:
            code, msg = s.login(user, password)
            out["auth"] = [code, msg.decode()]
        except smtplib.SMTPAuthenticationError as e:
            out["auth"] = [e.smtp_code, e.smtp_error.decode()]
            return out
        if use_sendmail:
            # sendmail() is what scripts use: MAIL, RCPT x N, DATA, each
            # waiting for its reply (smtplib does not pipeline).
            try:
                refused = s.sendmail(sender, recipients, text)
                out["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
            except smtplib.SMTPException as e:
                out["error"] = repr(e)
            return out
        code, msg = s.mail(sender)
        out["mail"] = [code, msg.decode()]
        out["rcpt"] = []
        for r in recipients:
            code, msg = s.rcpt(r)
            out["rcpt"].append([code, msg.decode()])
        code, msg = s.data(text)
        out["data"] = [code, msg.decode()]
    return out


def main():
    cmd = sys.argv[1]
    port = int(sys.argv[2])
    if cmd == "bulk":
        user, password, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
        recipients = ["+39333%07d" % i for i in range(n)]
        print(json.dumps(send(port, user, password, "ACME", recipients, "Promo: 20% off today\r\n")))
    elif cmd == "sendmail":
        user, password, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
        recipients = ["+39347%07d" % i for i in range(n)]
        print(json.dumps(send(port, user, password, "+393401234567", recipients, "hello\r\n", use_sendmail=True)))
    elif cmd == "login":
        user, password = sys.argv[3], sys.argv[4]
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.example")
            try:
                code, msg = s.login(user, password)
                print(json.dumps({"auth": [code, msg.decode()]}))
            except smtplib.SMTPAuthenticationError as e:
                print(json.dumps({"auth": [e.smtp_code, e.smtp_error.decode()]}))
    else:
        sys.exit("usage: smtp_client.py bulk|sendmail|login PORT ...")


if __name__ == "__main__":
    main()
