#!/usr/bin/env python3
"""Composes the messages of content_test.cc with Python's own `email` package,
the way scripts and mail libraries build them (nothing is written by hand),
and sends message files through the running gateway with smtplib.

  content_mail.py compose DIR
      writes DIR/<KIND>.eml for every kind below, CRLF line ends, exactly the
      bytes that go into DATA (before dot-stuffing, which smtplib does)
  content_mail.py send PORT USER PASS FROM FILE RCPT...
      one transaction; prints {"code": N, "msg": "..."} for the end of DATA

It bounds its own time with socket timeouts."""
import json
import smtplib
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from email import policy

SMTP_POLICY = policy.default.clone(linesep="\r\n")

# A tiny but real PNG (1x1, red) and JPEG header+data, as the image parts.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc000000301010018dd8db40000000049454e44ae426082")
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + bytes(range(64)) + b"\xff\xd9"


def base(subject, sender="Negozio <shop@example.com>"):
    m = EmailMessage(policy=policy.default)
    m["From"] = sender
    m["To"] = "+393331234567@sms.example.com"
    m["Subject"] = subject
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = make_msgid(domain="example.com")
    return m


def plain():
    m = base("Avviso")
    m.set_content("Il tuo ordine 1234 è pronto per il ritiro.\nGrazie!\n")
    return m


def alternative():
    m = base("Offerta")
    m.set_content("Offerta: 2x1 su tutte le pizze fino a domenica.\n")
    m.add_alternative("<html><body><p>Offerta: <b>2x1</b> su tutte le pizze fino a "
                      "<i>domenica</i>.</p></body></html>\n", subtype="html")
    return m


def quoted_printable():
    m = base("Fattura")
    m.set_content("Gentile cliente, la fattura di marzo è disponibile nell'area riservata: importo 45,90 € "
                  "da pagare entro il 30 aprile. Grazie per aver scelto i nostri servizi di fornitura.\n",
                  cte="quoted-printable")
    return m


def base64_text():
    m = base("Codice")
    m.set_content("Codice di accesso: 493021. Non condividerlo con nessuno.\n", cte="base64")
    return m


def latin1():
    m = base("Colazione")
    m.set_content("Caffè e cornetto a 2 euro, perché sì.\n", charset="iso-8859-1")
    return m


def emoji():
    m = base("Festa")
    m.set_content("Buon compleanno Giulia! 🎉🎂 Ci vediamo stasera alle 20 al solito posto, "
                  "porta anche Marco e Sara.\n")
    return m


def encoded_subject():
    m = base("Promemoria: caffè ☕ alle 10")
    m.set_content("Ci vediamo al bar.\n-- \nMario Rossi\nVia Roma 1\n")
    return m


def thunderbird_html():
    # Thunderbird's HTML-only message: its headers, its markup, its signature.
    m = base("Riunione", sender="Anna Bianchi <anna@example.com>")
    m["User-Agent"] = "Mozilla Thunderbird"
    m["Content-Language"] = "it-IT"
    m.set_content("""<!DOCTYPE html>
<html>
  <head>

    <meta http-equiv="content-type" content="text/html; charset=UTF-8">
  </head>
  <body>
    <p>Ciao Luca,</p>
    <p>la riunione è spostata alle <b>15:30</b>, in <a
        href="https://meet.example.com/r/42">sala Verdi</a>.<br>
    </p>
    <div class="moz-signature">-- <br>
      Anna Bianchi</div>
  </body>
</html>
""", subtype="html", cte="8bit")
    return m


def inline_image():
    m = base("Volantino")
    cid = make_msgid(domain="example.com")
    m.set_content("<html><body><p>Ecco il nuovo volantino:</p>"
                  '<p><img src="cid:%s" alt="volantino"></p>'
                  "<p>Offerte valide fino al 31.</p></body></html>\n" % cid[1:-1], subtype="html")
    m.add_related(PNG, "image", "png", cid=cid, filename="volantino.png")
    return m


def mm4_forward():
    # 3GPP TS 23.140 MM4_forward.REQ: the MM4 headers and a multipart/related
    # body with the SMIL layout, the text and the image.
    m = EmailMessage(policy=policy.default)
    m["X-Mms-3GPP-MMS-Version"] = "6.10.0"
    m["X-Mms-Message-Type"] = "MM4_forward.REQ"
    m["X-Mms-Transaction-ID"] = "T-20240101-0001"
    m["X-Mms-Message-ID"] = "<20240101-0001@mms.example.net>"
    m["X-Mms-Ack-Request"] = "Yes"
    m["X-Mms-Originator-System"] = "system-user@mms.example.net"
    m["From"] = "+393401234567/TYPE=PLMN@mms.example.net"
    m["To"] = "+393331234567/TYPE=PLMN@mms.example.net"
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = "<smtp-0001@mms.example.net>"
    m.set_content('<smil><head><layout/></head><body><par dur="5s"><img src="cid:img1"/>'
                  '<text src="cid:txt1"/></par></body></smil>\n', subtype="smil", cte="7bit")
    # set_content gives text/smil; MM4 uses application/smil.
    m.replace_header("Content-Type", "application/smil")
    m.add_related("Auguri da Roma!\n", subtype="plain", cid="<txt1>")
    m.add_related(JPEG, "image", "jpeg", cid="<img1>", filename="foto.jpg")
    return m


KINDS = {
    "PLAIN": plain, "ALT": alternative, "QP": quoted_printable, "BASE64": base64_text, "LATIN1": latin1,
    "EMOJI": emoji, "SUBJECT": encoded_subject, "TBIRD": thunderbird_html, "RELATED": inline_image,
    "MM4": mm4_forward,
}


def compose(directory):
    for kind, build in KINDS.items():
        with open("%s/%s.eml" % (directory, kind), "wb") as f:
            f.write(build().as_bytes(policy=SMTP_POLICY))


def send(port, user, password, sender, path, recipients):
    with open(path, "rb") as f:
        data = f.read()
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.example")
        s.login(user, password)
        code, msg = s.mail(sender)
        if code != 250:
            print(json.dumps({"code": code, "msg": msg.decode()}))
            return
        for r in recipients:
            code, msg = s.rcpt(r)
            if code != 250:
                print(json.dumps({"code": code, "msg": msg.decode()}))
                return
        # data() dot-stuffs and ends the text; its reply is the end of DATA's.
        code, msg = s.data(data)
    print(json.dumps({"code": code, "msg": msg.decode()}))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "compose":
        compose(sys.argv[2])
    elif len(sys.argv) >= 8 and sys.argv[1] == "send":
        send(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:])
    else:
        sys.exit("usage: content_mail.py compose DIR | send PORT USER PASS FROM FILE RCPT...")


if __name__ == "__main__":
    main()
