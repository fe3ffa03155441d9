#!/usr/bin/env python3
"""The interop matrix's Python clients (interop_matrix_test.cc): sends the
text read from stdin (UTF-8) as an e-mail through smtplib or aiosmtplib, as a
script using the standard mail library does (EmailMessage, send_message).
Usage: clients.py smtplib|aiosmtplib|smtplib-cp1252 PORT USER PASSWORD.
smtplib-cp1252 encodes the text as Windows-1252 and declares it so (real
8-bit Latin bytes, the other direction of issue 13 item 4). Prints one JSON
object: the library's version and the server's reply to the message. Exits
77 (skipped) with the reason on stderr when the library is missing; bounds its
own time with the clients' timeouts."""
import email.message
import json
import sys

SENDER = "+393401234567@sms.example.com"
RECIPIENT = "+393331234567@sms.example.com"


def message(text, charset):
    msg = email.message.EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = "prova"
    msg.set_content(text, charset=charset)
    return msg


def with_smtplib(port, user, password, msg):
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.login(user, password)
        # send_message() hides the DATA reply; mail/rcpt/data are its steps.
        s.ehlo_or_helo_if_needed()
        code, text = s.mail(SENDER)
        if code != 250:
            return f"{code} {text.decode()}"
        code, text = s.rcpt(RECIPIENT)
        if code not in (250, 251):
            return f"{code} {text.decode()}"
        code, text = s.data(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
        return f"{code} {text.decode()}"


def with_aiosmtplib(port, user, password, msg):
    import asyncio

    import aiosmtplib

    async def run():
        # send_message() returns the DATA reply's text without its code; mail/rcpt/data are its steps.
        s = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, use_tls=False, start_tls=False)
        await s.connect()
        try:
            await s.login(user, password)
            await s.mail(SENDER)
            await s.rcpt(RECIPIENT)
            reply = await s.data(msg.as_bytes())
            return f"{reply.code} {reply.message}"
        except aiosmtplib.SMTPResponseException as e:
            return f"{e.code} {e.message}"
        finally:
            s.close()

    return asyncio.run(run())


def main():
    client, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    text = sys.stdin.buffer.read().decode("utf-8")
    if client == "aiosmtplib":
        try:
            import aiosmtplib
        except ImportError as e:
            print(f"aiosmtplib not installed for {sys.executable} ({e}); scripts/deps installs python3-aiosmtplib",
                  file=sys.stderr)
            sys.exit(77)
        version = "aiosmtplib " + getattr(aiosmtplib, "__version__", "?")
        reply = with_aiosmtplib(port, user, password, message(text, "utf-8"))
    else:
        charset = "cp1252" if client == "smtplib-cp1252" else "utf-8"
        version = "Python smtplib " + sys.version.split()[0]
        reply = with_smtplib(port, user, password, message(text, charset))
    print(json.dumps({"version": version, "reply": reply}))


if __name__ == "__main__":
    main()
