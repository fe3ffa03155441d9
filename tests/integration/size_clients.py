#!/usr/bin/env python3
"""Sends one e-mail with LF line ends through Python's smtplib or aiosmtplib
the way bulk scripts do (sendmail() with msg.as_bytes()), so that the client
declares SIZE= as the octets of the LF text, fewer than the CRLF text the
server stores. Used by real_clients_size_test.cc. Prints one JSON object:
the SIZE the client declared, the refused recipients or the error. Exits 77
(skipped) with the reason on stderr when the library is missing. Bounds its
own time with the clients' timeouts."""
import email.message
import json
import sys

TEXT = "Ciao da {client},\nseconda riga del messaggio.\n"


def message(client):
    msg = email.message.EmailMessage()  # policy.default: LF line ends in as_bytes()
    msg["From"] = "script@example.com"
    msg["To"] = "+393331234567@sms.example.com"
    msg["Subject"] = "prova"
    msg.set_content(TEXT.format(client=client))
    return msg.as_bytes()


def with_smtplib(port, user, password, data):
    import smtplib

    out = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.login(user, password)
        try:
            refused = s.sendmail("+393401234567", ["+393331234567"], data)
            out["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
        except smtplib.SMTPException as e:
            out["error"] = repr(e)
    return out


def with_aiosmtplib(port, user, password, data):
    import asyncio

    import aiosmtplib

    async def run():
        out = {}
        s = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, use_tls=False, start_tls=False)
        await s.connect()
        try:
            await s.login(user, password)
            try:
                errors, reply = await s.sendmail("+393401234567", ["+393331234567"], data)
                out["refused"] = {k: [v.code, v.message] for k, v in errors.items()}
                out["reply"] = reply
            except aiosmtplib.SMTPException as e:
                out["error"] = repr(e)
        finally:
            try:
                await s.quit()
            except aiosmtplib.SMTPException:
                s.close()
        return out

    return asyncio.run(run())


def main():
    client, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if client == "aiosmtplib":
        try:
            import aiosmtplib  # noqa: F401
        except ImportError as e:
            print(f"aiosmtplib not installed for {sys.executable} ({e}); scripts/deps installs python3-aiosmtplib",
                  file=sys.stderr)
            sys.exit(77)
    send = with_aiosmtplib if client == "aiosmtplib" else with_smtplib
    data = message(client)
    out = send(port, user, password, data)
    out["declared"] = len(data)  # what both libraries put in SIZE=
    print(json.dumps(out))


if __name__ == "__main__":
    main()
