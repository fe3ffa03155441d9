// Unit tests for the content step (src/mime): e-mail detection, the GMime
// e-mail reader (text choice, transfer encodings, charsets, encoded-word
// subjects, format=flowed, signature and subject rules), the libxml2 HTML
// reduction, MMS recognition and every refusal (its kind and numbers; the
// SMTP words for them are tested in smtp_command_table_test.cc). The messages here are small
// hand-made MIME texts that pin one rule each; mail produced by real composers
// (Python's email, nodemailer) is tested end to end in
// tests/integration/content_test.cc. All buffers are test-owned.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "postino/mime.h"

namespace postino::mime {

// gtest's message for a refusal that is not the expected one.
void PrintTo(const content_refusal& r, std::ostream* os) {
  *os << refusal_name(r.kind) << " (count " << r.count << ", limit " << r.limit << ")";
}

namespace {

// Test messages are written with LF and sent as the session stores them: CRLF.
std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += "\r\n";
    else out += c;
  }
  return out;
}

account_settings account() {
  account_settings a;
  a.id = 7;
  a.username = "acme";
  return a;
}

// An account that keeps signatures (the default cuts them since issue 13),
// for tests that pin another rule on a mail that has one.
account_settings keeping_signature() {
  account_settings a = account();
  a.strip_signature = false;
  return a;
}

// ---------------------------------------------------------------- detection

TEST(mime_detect, the_protocol_rule) {
  EXPECT_TRUE(looks_like_email(crlf("MIME-Version: 1.0\nSubject: x\n\nhello\n")));
  EXPECT_TRUE(looks_like_email(crlf("Content-Type: text/plain\n\nhello\n")));
  EXPECT_TRUE(looks_like_email(crlf("From: a@b.c\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nhello\n")));
  // From without Date (the seed's hand-typed session) is raw text.
  EXPECT_FALSE(looks_like_email(crlf("From: a@b.c\nTo: d@e.f\nSubject: test\n\nHello,\npippo\n")));
  // A bulk text that happens to look like one header field stays raw.
  EXPECT_FALSE(looks_like_email(crlf("Nota: domani l'ufficio resta chiuso.\n")));
  EXPECT_FALSE(looks_like_email(crlf("Nota: x\nMIME-Version: 1.0\nnot a header\n\nbody\n")));
  EXPECT_FALSE(looks_like_email(crlf("Ciao a tutti\nMIME-Version: 1.0\n\nbody\n")));
  EXPECT_FALSE(looks_like_email(""));
  EXPECT_FALSE(looks_like_email(crlf("\nMIME-Version: 1.0\n")));
}

TEST(mime_detect, folding_and_obsolete_blanks) {
  EXPECT_TRUE(looks_like_email(crlf("Subject: a long\n subject folded\nMIME-Version : 1.0\n\nx\n")));
  // A folded line cannot come first; a space inside a field name is no name.
  EXPECT_FALSE(looks_like_email(crlf(" Subject: x\nMIME-Version: 1.0\n\nx\n")));
  EXPECT_FALSE(looks_like_email(crlf("Dear John: hello\nMIME-Version: 1.0\n\nx\n")));
  // Bare LF line ends are read too.
  EXPECT_TRUE(looks_like_email("MIME-Version: 1.0\n\nx\n"));
}

TEST(mime_detect, mm4_forward_request) {
  EXPECT_TRUE(is_mm4_forward(crlf("X-Mms-3GPP-MMS-Version: 6.10.0\nX-Mms-Message-Type:  mm4_forward.req \n\nx\n")));
  EXPECT_FALSE(is_mm4_forward(crlf("X-Mms-Message-Type: MM4_forward.RES\n\n")));
  EXPECT_FALSE(is_mm4_forward(crlf("hello\nX-Mms-Message-Type: MM4_forward.REQ\n\n")));
  EXPECT_FALSE(is_mm4_forward(crlf("Subject: x\n\nX-Mms-Message-Type: MM4_forward.REQ\n")));
}

// ---------------------------------------------------------------- raw mode

TEST(mime_content, raw_text_is_cleaned_and_counted) {
  auto r = read_content(crlf("Promo: 20% off today\n\n\n"), account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_FALSE(r.email);
  EXPECT_EQ(r.text, "Promo: 20% off today");
  EXPECT_EQ(r.segments, 1u);
  EXPECT_EQ(r.encoding, sms::sms_encoding::gsm7);
}

TEST(mime_content, empty_and_too_long) {
  EXPECT_EQ(read_content("", account()).refusal.kind, refusal_kind::empty);
  EXPECT_EQ(read_content(crlf("\n  \n\t\n"), account()).refusal.kind, refusal_kind::empty);
  EXPECT_TRUE(read_content(std::string(160, 'a'), account()).ok);
  auto r = read_content(std::string(161, 'a'), account());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.refusal, (content_refusal{refusal_kind::too_many_segments, 2, 1}));
  auto a = account();
  a.max_segments = 2;
  EXPECT_TRUE(read_content(std::string(306, 'a'), a).ok);
  EXPECT_EQ(read_content(std::string(307, 'a'), a).refusal, (content_refusal{refusal_kind::too_many_segments, 3, 2}));
  // The cap is what an 8-bit UDH can number.
  a.max_segments = 1000;
  EXPECT_EQ(read_content(std::string(153 * 255 + 1, 'a'), a).refusal,
            (content_refusal{refusal_kind::too_many_segments, 256, 255}));
}

TEST(mime_content, ucs2_counts_code_units) {
  auto r = read_content("Ciao \xF0\x9F\x98\x80", account());  // an emoji: two UTF-16 units
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.encoding, sms::sms_encoding::ucs2);
  EXPECT_EQ(r.segments, 1u);
}

TEST(mime_content, transliteration_stores_the_gsm_text) {
  auto a = account();
  a.transliterate = true;
  auto r = read_content("\xE2\x80\x9C" "Ciao\xE2\x80\x9D \xE2\x80\x94 a presto\xE2\x80\xA6", a);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.text, "\"Ciao\" - a presto...");
  EXPECT_EQ(r.encoding, sms::sms_encoding::gsm7);
  // Something transliteration cannot help leaves the text as written.
  r = read_content("\xE2\x80\x9C\xD0\x9F\xD1\x80\xD0\xB8\xE2\x80\x9D", a);
  EXPECT_EQ(r.text, "\xE2\x80\x9C\xD0\x9F\xD1\x80\xD0\xB8\xE2\x80\x9D");
  EXPECT_EQ(r.encoding, sms::sms_encoding::ucs2);
}

TEST(mime_content, content_mode_forces_either_way) {
  const std::string mail = crlf("MIME-Version: 1.0\nContent-Type: text/plain\n\nhello\n");
  auto a = account();
  EXPECT_EQ(read_content(mail, a).text, "hello");
  a.content = content_mode::raw;
  EXPECT_EQ(read_content(mail, a).text, "MIME-Version: 1.0\nContent-Type: text/plain\n\nhello");
  a.content = content_mode::email;
  auto r = read_content(crlf("Subject: only a subject line\n\nthe text\n"), a);
  EXPECT_TRUE(r.email);
  EXPECT_EQ(r.text, "the text");
}

// ---------------------------------------------------------------- e-mail mode

TEST(mime_email, plain_quoted_printable_latin1) {
  auto r = read_content(crlf("MIME-Version: 1.0\n"
                             "Content-Type: text/plain; charset=\"iso-8859-1\"\n"
                             "Content-Transfer-Encoding: quoted-printable\n"
                             "Subject: ignored\n\n"
                             "Caff=E8 pronto, costa 2=80 =\n"
                             "(euro).\n\n-- \nMario\n"),
                        keeping_signature());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_TRUE(r.email);
  // ISO-8859-1 is read as Windows-1252, so 0x80 is the euro sign.
  EXPECT_EQ(r.text, "Caff\xC3\xA8 pronto, costa 2\xE2\x82\xAC (euro).\n\n-- \nMario");
}

TEST(mime_email, signature_and_subject_rules) {
  const std::string mail = crlf("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                                "Subject: =?UTF-8?B?Umlub3Zv?= =?UTF-8?Q?_=C3=A8_pronto?=\n\n"
                                "Passa in negozio.\n-- \nMario Rossi\n");
  auto a = account();
  EXPECT_EQ(read_content(mail, a).text, "Passa in negozio.") << "the signature is cut by default";
  a.subject_prefix = true;
  EXPECT_EQ(read_content(mail, a).text, "Rinovo \xC3\xA8 pronto\nPassa in negozio.");
  // A subject alone is a message.
  auto r = read_content(crlf("MIME-Version: 1.0\nSubject: Solo oggetto\n\n"), a);
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "Solo oggetto");
  a.subject_prefix = false;
  a.subject_as_text = false;
  EXPECT_EQ(read_content(crlf("MIME-Version: 1.0\nSubject: Solo oggetto\n\n"), a).refusal.kind, refusal_kind::empty);
}

TEST(mime_email, alternative_prefers_plain) {
  auto r = read_content(crlf("MIME-Version: 1.0\n"
                             "Content-Type: multipart/alternative; boundary=\"b1\"\n\n"
                             "--b1\nContent-Type: text/html; charset=utf-8\n\n<p>HTML <b>version</b></p>\n"
                             "--b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                             "UGxhaW4gdmVyc2lvbiDimLo=\n"
                             "--b1--\n"),
                        account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "Plain version \xE2\x98\xBA");
  EXPECT_EQ(r.encoding, sms::sms_encoding::ucs2);
}

TEST(mime_email, html_only_becomes_readable_text) {
  auto r = read_content(crlf("MIME-Version: 1.0\nContent-Type: text/html; charset=UTF-8\n"
                             "Content-Transfer-Encoding: 7bit\n\n"
                             "<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=UTF-8\">"
                             "<style>p{color:red}</style><title>T</title></head>\n<body>\n"
                             "<p>Ciao&nbsp;Anna,</p>\n<p>il codice &egrave; <b>1234</b>.<br>\n"
                             "Vedi <a href=\"https://example.com/x\">il sito</a> o "
                             "<a href=\"https://example.com\">https://example.com</a>.</p>\n"
                             "<script>alert(1)</script>\n"
                             "<ul><li>uno</li><li>due</li></ul>\n"
                             "<div class=\"moz-signature\">-- <br>\nAnna</div>\n</body></html>\n"),
                        keeping_signature());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text,
            "Ciao Anna,\nil codice \xC3\xA8 1234.\nVedi il sito (https://example.com/x) o https://example.com.\n"
            "- uno\n- due\n--\nAnna");
  EXPECT_EQ(r.encoding, sms::sms_encoding::gsm7) << "no-break spaces do not force UCS-2";
  auto a = account();
  EXPECT_EQ(read_content(crlf("MIME-Version: 1.0\nContent-Type: text/html\n\n"
                              "<p>Testo</p><div class=\"moz-signature\">-- <br>Anna</div>\n"),
                         a)
                .text,
            "Testo");
}

TEST(mime_email, format_flowed_is_unwrapped) {
  auto r = read_content(crlf("MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8; format=flowed\n\n"
                             "Questo testo va a capo \ndove il client vuole, \nma e' una riga.\n"
                             "Seconda riga.\n"),
                        account());
  ASSERT_TRUE(r.ok);
  auto a = account();
  a.max_segments = 2;
  EXPECT_EQ(read_content(crlf("MIME-Version: 1.0\nContent-Type: text/plain; format=flowed; delsp=yes\n\n"
                              "uno \ndue\n"),
                         a)
                .text,
            "unodue");
  EXPECT_EQ(r.text, "Questo testo va a capo dove il client vuole, ma e' una riga.\nSeconda riga.");
}

TEST(mime_email, mixed_with_attachment_takes_the_body) {
  auto r = read_content(crlf("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n"
                             "--zz\nContent-Type: text/plain; charset=windows-1252\n"
                             "Content-Transfer-Encoding: 8bit\n\nTotale: 10\x80\n"
                             "--zz\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\n"
                             "not the text\n"
                             "--zz--\n"),
                        account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "Totale: 10\xE2\x82\xAC");
}

// Issue 13 item 4: PHPMailer's default declares ISO-8859-1 over UTF-8
// bytes; such a part is read as UTF-8. Real Latin-1 (or 1252) bytes, which
// are not valid UTF-8, are still read as Windows-1252.
TEST(mime_email, latin1_declared_over_utf8_is_read_as_utf8) {
  const std::string utf8 = "Ciao Gi\xC3\xB2, il caff\xC3\xA8 costa 2\xE2\x82\xAC";
  for (const char* label : {"iso-8859-1", "ISO-8859-1", "windows-1252", "latin1"})
    EXPECT_EQ(to_utf8(utf8, label), utf8) << label;
  EXPECT_EQ(to_utf8("Ciao Gi\xF2, il caff\xE8 costa 2\x80", "iso-8859-1"), utf8) << "real Windows-1252";
  EXPECT_EQ(to_utf8("plain ascii", "iso-8859-1"), "plain ascii");
  auto r = read_content(crlf("MIME-Version: 1.0\n"
                             "Content-Type: text/plain; charset=iso-8859-1\n"
                             "Content-Transfer-Encoding: 8bit\n"
                             "Subject: x\n\n" +
                             utf8 + "\n"),
                        account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, utf8);
  r = read_content(crlf("MIME-Version: 1.0\n"
                        "Content-Type: text/plain; charset=iso-8859-1\n"
                        "Content-Transfer-Encoding: quoted-printable\n"
                        "Subject: x\n\n"
                        "Ciao Gi=C3=B2, il caff=C3=A8 costa 2=E2=82=AC\n"),
                   account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, utf8) << "quoted-printable UTF-8 under a Latin-1 label";
}

TEST(mime_email, other_charsets_go_through_iconv) {
  EXPECT_EQ(to_utf8("\xE0\xE8", "iso-8859-7"), "\xCE\xB0\xCE\xB8");  // Greek ΰθ
  EXPECT_EQ(to_utf8("\xCF\xF0\xE8\xE2\xE5\xF2", "windows-1251"), "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
  // An unknown charset, or bytes that are not UTF-8, fall back to Windows-1252.
  EXPECT_EQ(to_utf8("caff\xE8", "x-unknown-charset"), "caff\xC3\xA8");
  EXPECT_EQ(to_utf8("caff\xE8", "utf-8"), "caff\xC3\xA8");
  EXPECT_EQ(to_utf8("\xEF\xBB\xBFok", ""), "ok");
}

TEST(mime_email, inline_image_without_mms_is_text) {
  const std::string mail = crlf("MIME-Version: 1.0\nContent-Type: multipart/related; boundary=r\n\n"
                                "--r\nContent-Type: text/html; charset=utf-8\n\n"
                                "<p>Guarda <img src=\"cid:logo\" alt=\"logo\"> che bello</p>\n"
                                "--r\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n"
                                "iVBORw0KGgo=\n--r--\n");
  auto r = read_content(mail, account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_FALSE(r.mms);
  EXPECT_EQ(r.text, "Guarda che bello");
  auto a = account();
  a.mms_enabled = true;
  r = read_content(mail, a);
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_TRUE(r.mms);
  EXPECT_FALSE(r.ack_owed);
}

// ------------------------------------- issue 13: signature, quoted reply, subject

// A text/plain UTF-8 mail with this body (LF, sent as CRLF).
std::string plain_mail(std::string_view body, std::string_view subject = "Re: prova") {
  return crlf("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nSubject: " + std::string(subject) +
              "\n\n" + std::string(body));
}

TEST(mime_email_defaults, signature_cut_by_default_and_kept_when_off) {
  const std::string mail = plain_mail("Il pacco arriva domani.\n\n-- \nMario Rossi\nACME S.p.A.\n");
  EXPECT_EQ(read_content(mail, account()).text, "Il pacco arriva domani.");
  EXPECT_EQ(read_content(mail, keeping_signature()).text, "Il pacco arriva domani.\n\n-- \nMario Rossi\nACME S.p.A.");
}

TEST(mime_email_defaults, the_issue_message_is_one_segment_again) {
  // 150 characters of text and a 30-character signature: 1 segment cut, 2 kept.
  const std::string text(150, 'a');
  const std::string mail = plain_mail(text + "\n-- \nMario Rossi, ACME S.p.A.\n");
  auto cut = read_content(mail, account());
  ASSERT_TRUE(cut.ok) << refusal_name(cut.refusal.kind);
  EXPECT_EQ(cut.segments, 1u);
  auto a = keeping_signature();
  a.max_segments = 3;
  EXPECT_EQ(read_content(mail, a).segments, 2u);
}

TEST(mime_email_defaults, top_posted_reply_drops_the_quote_and_its_attribution) {
  const std::string mail = plain_mail(
      "Va bene, a domani.\n\nOn Mon, 30 Nov 2026 at 10:12, Anna Bianchi <anna@example.com> wrote:\n"
      "> Ci vediamo domani alle 10?\n>\n> Anna\n");
  EXPECT_EQ(read_content(mail, account()).text, "Va bene, a domani.");
  auto off = account();
  off.strip_quoted_reply = false;
  EXPECT_EQ(read_content(mail, off).text,
            "Va bene, a domani.\n\nOn Mon, 30 Nov 2026 at 10:12, Anna Bianchi <anna@example.com> wrote:\n"
            "> Ci vediamo domani alle 10?\n>\n> Anna");
}

TEST(mime_email_defaults, localized_attribution_lines) {
  const char* attributions[] = {
      "Il giorno lun 30 nov 2026 alle ore 10:12 Anna Bianchi <anna@example.com> ha scritto:",
      "Il 30/11/2026 10:12, Anna Bianchi ha scritto:",
      "Am 30.11.2026 um 10:12 schrieb Anna Bianchi <anna@example.com>:",
      "Anna Bianchi schrieb:",
      "Le lun. 30 nov. 2026 à 10:12, Anna Bianchi <anna@example.com> a écrit :",
      "Le 30/11/2026 à 10:12, Anna Bianchi a\xC2\xA0\xC3\xA9\x63rit\xC2\xA0:",  // no-break spaces
      "El lun, 30 nov 2026 a las 10:12, Anna Bianchi (<anna@example.com>) escribió:",
      "Em seg., 30 de nov. de 2026 às 10:12, Anna Bianchi escreveu:",
      "Op ma 30 nov 2026 om 10:12 schreef Anna Bianchi <anna@example.com>:",
      "ON MON, 30 NOV 2026, ANNA WROTE:",
      "Anna Bianchi <anna@example.com> wrote:",
  };
  for (const char* line : attributions) {
    const std::string mail = plain_mail(std::string("Ok, grazie.\n\n") + line + "\n\n> Domani?\n> A.\n");
    EXPECT_EQ(read_content(mail, account()).text, "Ok, grazie.") << line;
  }
  // Gmail wraps a long attribution line.
  const std::string wrapped = plain_mail(
      "Ok.\n\nOn Mon, 30 Nov 2026 at 10:12, Anna Maria Bianchi-Verdi <anna.maria@example.com>\nwrote:\n\n> Domani?\n");
  EXPECT_EQ(read_content(wrapped, account()).text, "Ok.");
}

TEST(mime_email_defaults, nested_quotes_and_outlook_separators) {
  EXPECT_EQ(read_content(plain_mail("Confermo.\n\nOn Tue, Anna wrote:\n> Allora?\n>\n>> On Mon, Bob wrote:\n"
                                    ">> Quando?\n>>> prima\n"),
                         account())
                .text,
            "Confermo.");
  EXPECT_EQ(read_content(plain_mail("Confermo.\n\n-----Original Message-----\nFrom: Anna\nSent: Monday\n"
                                    "Subject: x\n\nAllora?\n"),
                         account())
                .text,
            "Confermo.");
  EXPECT_EQ(read_content(plain_mail("Confermo.\n-----Messaggio originale-----\nDa: Anna\nOggetto: x\n\nAllora?\n"),
                         account())
                .text,
            "Confermo.");
  // Outlook's newer header block, under its underscore line or bare.
  EXPECT_EQ(read_content(plain_mail("Confermo.\n\n________________________________\nFrom: Anna <anna@example.com>\n"
                                    "Sent: Monday, November 30, 2026 10:12 AM\nTo: Mario\nSubject: x\n\nAllora?\n"),
                         account())
                .text,
            "Confermo.");
  EXPECT_EQ(read_content(plain_mail("Confermo.\n\nDa: Anna\nInviato: luned\xC3\xAC 30 novembre 2026 10:12\n"
                                    "A: Mario\nOggetto: x\n\nAllora?\n"),
                         account())
                .text,
            "Confermo.");
  EXPECT_EQ(read_content(plain_mail("OK\n\nDe : Anna\nEnvoy\xC3\xA9 : lundi 30 novembre 2026\n\nAlors ?\n"), account())
                .text,
            "OK");
  EXPECT_EQ(read_content(plain_mail("Da: Mario\nTel. 333\n"), account()).text, "Da: Mario\nTel. 333")
      << "one header-like line is the sender's own";
  // A line of dashes of the sender's own is not a separator.
  EXPECT_EQ(read_content(plain_mail("Totale\n-----\n12 euro\n"), account()).text, "Totale\n-----\n12 euro");
}

TEST(mime_email_defaults, interleaved_reply_keeps_the_senders_lines) {
  const std::string mail = plain_mail(
      "On Mon, 30 Nov 2026, Anna wrote:\n> Vieni alle 10?\n\nSi.\n\n> E porti il libro?\n\nNo, domani.\n");
  EXPECT_EQ(read_content(mail, account()).text, "Si.\n\nNo, domani.");
  // Bottom-posted: the quote first, the answer after.
  EXPECT_EQ(read_content(plain_mail("> Vieni?\n\nSi.\n"), account()).text, "Si.");
}

TEST(mime_email_defaults, quotes_only_mail_is_kept_not_emptied) {
  // The cut never empties a text that was not empty: a mail made of quotes
  // alone goes out as it is, rather than as a silent 554 Empty message.
  const std::string mail = plain_mail("On Mon, Anna wrote:\n> Vieni alle 10?\n");
  auto r = read_content(mail, account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "On Mon, Anna wrote:\n> Vieni alle 10?");
  EXPECT_EQ(cut_quoted_reply("> a\n>> b\n"), "> a\n>> b\n");
  EXPECT_EQ(cut_quoted_reply(""), "");
  EXPECT_EQ(cut_quoted_reply("plain text\n"), "plain text\n");
  EXPECT_EQ(cut_quoted_reply("new\r\n\r\nOn Mon, A wrote:\r\n> old\r\n"), "new\r\n\r\n");
}

TEST(mime_email_defaults, subject_is_the_text_of_an_empty_body) {
  auto r = read_content(crlf("MIME-Version: 1.0\nContent-Type: text/plain\nSubject: Arrivo alle 10\n\n"), account());
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "Arrivo alle 10");
  EXPECT_EQ(r.segments, 1u);
  // No body at all (s-nail's `< /dev/null`), and a body of blank lines.
  EXPECT_EQ(read_content(crlf("From: a@b.c\nDate: Mon, 30 Nov 2026 10:00:00 +0000\nSubject: Solo\n"), account()).text,
            "Solo");
  EXPECT_EQ(read_content(plain_mail("\n  \n\n", "Solo"), account()).text, "Solo");
  // A body the signature cut empties.
  EXPECT_EQ(read_content(plain_mail("-- \nMario\n", "Solo"), account()).text, "Solo");
  // RFC 2047: decoded, and priced as any text (the euro sign is GSM's extension).
  auto encoded = read_content(crlf("MIME-Version: 1.0\nSubject: =?UTF-8?Q?Caff=C3=A8_a_2=E2=82=AC?=\n\n"), account());
  ASSERT_TRUE(encoded.ok);
  EXPECT_EQ(encoded.text, "Caff\xC3\xA8 a 2\xE2\x82\xAC");
  EXPECT_EQ(encoded.encoding, sms::sms_encoding::gsm7);
  // With subject_prefix the text is the subject alone, no line break after.
  auto a = account();
  a.subject_prefix = true;
  EXPECT_EQ(read_content(plain_mail("", "Solo"), a).text, "Solo");
  a.subject_as_text = false;
  EXPECT_EQ(read_content(plain_mail("", "Solo"), a).text, "Solo") << "subject_prefix alone includes the subject";
  // Off: the refusal of before.
  auto off = account();
  off.subject_as_text = false;
  EXPECT_EQ(read_content(plain_mail("", "Solo"), off).refusal.kind, refusal_kind::empty);
  // No subject either: still empty.
  EXPECT_EQ(read_content(crlf("MIME-Version: 1.0\nSubject: \n\n"), account()).refusal.kind, refusal_kind::empty);
  // Raw mode has no subject: a blank raw body is refused as before.
  EXPECT_EQ(read_content("\r\n", account()).refusal.kind, refusal_kind::empty);
}

TEST(mime_email_defaults, subject_is_not_added_to_a_body_with_text) {
  EXPECT_EQ(read_content(plain_mail("Testo\n", "Oggetto"), account()).text, "Testo");
}

// ---------------------------------------------------------------- MMS

std::string mm4_request(bool ack) {
  return crlf(std::string("X-Mms-3GPP-MMS-Version: 6.10.0\n"
                          "X-Mms-Message-Type: MM4_forward.REQ\n"
                          "X-Mms-Transaction-ID: T0001\n"
                          "X-Mms-Message-ID: <MSG-42@mms.example.net>\n") +
              (ack ? "X-Mms-Ack-Request: Yes\n" : "") +
              "X-Mms-Originator-System: system-user@mms.example.net\n"
              "From: +393401234567/TYPE=PLMN@mms.example.net\n"
              "To: +393331234567/TYPE=PLMN@mms.example.net\n"
              "Message-ID: <smtp-1@mms.example.net>\n"
              "MIME-Version: 1.0\n"
              "Content-Type: multipart/related; boundary=m; type=\"application/smil\"\n\n"
              "--m\nContent-Type: application/smil\n\n<smil><body><par><img src=\"a.jpg\"/></par></body></smil>\n"
              "--m\nContent-Type: text/plain; charset=utf-8\n\nAuguri!\n"
              "--m\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n/9j/4AAQSkZJRgABAQ==\n"
              "--m--\n");
}

// Issue 13 item 7: the MMS id is stored in one form, without the msg-id's
// angle brackets (RFC 5322 3.6.4: they are not part of the id), whichever
// header carried it and whether or not the peer bracketed it. Before, the
// X-Mms-Message-ID kept them and the Message-ID (GMime) did not.
TEST(mime_mms, message_id_in_one_form) {
  auto a = account();
  a.mms_enabled = true;
  auto replace = [](std::string s, std::string_view from, std::string_view to) {
    return s.replace(s.find(from), from.size(), to);
  };
  const std::string x_mms = "X-Mms-Message-ID: <MSG-42@mms.example.net>\r\n";
  auto bracketed = read_content(mm4_request(false), a);
  auto bare = read_content(replace(mm4_request(false), x_mms, "X-Mms-Message-ID: MSG-42@mms.example.net\r\n"), a);
  auto from_message_id = read_content(replace(mm4_request(false), x_mms, ""), a);
  ASSERT_TRUE(bracketed.ok && bare.ok && from_message_id.ok);
  EXPECT_EQ(bracketed.mm4_message_id, "MSG-42@mms.example.net");
  EXPECT_EQ(bare.mm4_message_id, "MSG-42@mms.example.net");
  EXPECT_EQ(from_message_id.mm4_message_id, "smtp-1@mms.example.net");
}

TEST(mime_mms, mm4_forward_for_an_mms_account) {
  auto a = account();
  a.mms_enabled = true;
  auto r = read_content(mm4_request(true), a);
  ASSERT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_TRUE(r.mms);
  EXPECT_TRUE(r.ack_owed);
  EXPECT_EQ(r.segments, 1u);
  EXPECT_EQ(r.text, "Auguri!");
  EXPECT_EQ(r.mm4_message_id, "MSG-42@mms.example.net");
  EXPECT_EQ(r.mm4_transaction_id, "T0001");
  EXPECT_EQ(r.mm4_originator_system, "system-user@mms.example.net");
  EXPECT_FALSE(read_content(mm4_request(false), a).ack_owed);
  // content_mode raw does not hide an MM4 request.
  a.content = content_mode::raw;
  EXPECT_TRUE(read_content(mm4_request(true), a).mms);
}

TEST(mime_mms, refusals) {
  EXPECT_EQ(read_content(mm4_request(true), account()).refusal.kind, refusal_kind::mms_not_enabled);
  auto a = account();
  a.mms_enabled = true;
  a.max_mms_bytes = 200;
  const content_refusal big = read_content(mm4_request(true), a).refusal;
  EXPECT_EQ(big.kind, refusal_kind::mms_too_big);
  EXPECT_GT(big.count, 200u);
  EXPECT_EQ(big.limit, 200u);
  a.max_mms_bytes = default_max_mms_bytes;
  EXPECT_EQ(read_content(crlf("X-Mms-Message-Type: MM4_forward.REQ\nMIME-Version: 1.0\n\n"), a).refusal.kind,
            refusal_kind::empty);
}

// ---------------------------------------------------------------- HTML

TEST(mime_html, blocks_links_tables_and_entities) {
  EXPECT_EQ(html_to_text("<div>a</div><div>b</div><p>c<br><br>d</p>"), "a\nb\nc\n\nd");
  EXPECT_EQ(html_to_text("<table><tr><td>Totale</td><td>10 &euro;</td></tr><tr><td>IVA</td><td>2</td></tr></table>"),
            "Totale 10 \xE2\x82\xAC\nIVA 2");
  EXPECT_EQ(html_to_text("<ol><li>uno</li><li>due</li></ol>"), "1. uno\n2. due");
  EXPECT_EQ(html_to_text("<a href=\"mailto:a@b.it\">a@b.it</a> <a href=\"#top\">su</a> <a href=\"x\"></a>"),
            "a@b.it su x");
  EXPECT_EQ(html_to_text("<pre>a  b\n  c</pre>"), "a  b\n  c");
  EXPECT_EQ(html_to_text("caf&eacute;&#8203; &lt;ok&gt;"), "caf\xC3\xA9 <ok>");
  EXPECT_EQ(html_to_text(""), "");
}

TEST(mime_html, the_declared_meta_charset_does_not_override_utf8) {
  // The part was already converted to UTF-8; a stale meta must not re-decode it.
  EXPECT_EQ(html_to_text("<html><head><meta charset=\"iso-8859-1\"></head><body>caff\xC3\xA8</body></html>"),
            "caff\xC3\xA8");
}

TEST(mime_html, deep_nesting_does_not_exhaust_the_stack) {
  std::string html;
  for (int i = 0; i < 200; ++i) html += "<span>";
  EXPECT_EQ(html_to_text(html + "deep"), "deep");
  // libxml2 stops at its own depth limit; what matters is that nothing breaks.
  for (int i = 0; i < 100000; ++i) html += "<div>";
  html_to_text(html + "deeper");
}

// ---------------------------------------------------------------- threads

TEST(mime_email, independent_messages_parse_on_many_threads) {
  const std::string mail = crlf("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n"
                                "--b\nContent-Type: text/plain; charset=iso-8859-15\n"
                                "Content-Transfer-Encoding: quoted-printable\n\nPrezzo 5=A4\n"
                                "--b\nContent-Type: text/html\n\n<p>x</p>\n--b--\n");
  std::vector<std::thread> threads;
  std::vector<int> good(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        if (read_content(mail, account()).text == "Prezzo 5\xE2\x82\xAC") ++good[t];
    });
  for (auto& th : threads) th.join();
  for (int g : good) EXPECT_EQ(g, 200);
}


// ---- The MIME structure bound (src/mime/structure.cc, PROTOCOL.md 5) ----

std::string multipart_of(int parts) {
  std::string m = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n";
  for (int i = 0; i < parts; ++i) m += "--sep\r\nContent-Type: text/plain\r\n\r\npart\r\n";
  return m + "--sep--\r\n";
}

TEST(mime_structure, counts_every_entity_and_stops_one_past_the_bound) {
  const content_limits limits{1000, 20};
  auto ok = check_structure(multipart_of(999), limits);  // 999 parts + the multipart
  EXPECT_FALSE(ok.too_many_parts);
  EXPECT_EQ(ok.parts, 1000u);
  EXPECT_EQ(ok.depth, 1u);
  auto over = check_structure(multipart_of(200000), limits);
  EXPECT_TRUE(over.too_many_parts);
  EXPECT_EQ(over.parts, 1001u);
}

TEST(mime_structure, the_200000_part_message_is_refused_before_gmime_parses_it) {
  const std::string body = multipart_of(200000);
  auto r = read_content(body, account());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.refusal.kind, refusal_kind::too_many_parts);
  EXPECT_EQ(r.refusal.limit, 1000u);
}

TEST(mime_structure, nesting_is_bounded_and_an_outer_boundary_ends_the_inner_parts) {
  std::string m = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=l0\r\n\r\n";
  for (int d = 1; d <= 25; ++d)
    m += "--l" + std::to_string(d - 1) + "\r\nContent-Type: multipart/mixed; boundary=l" + std::to_string(d) + "\r\n\r\n";
  m += "--l25\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--l0--\r\n";
  auto deep = check_structure(m, {1000, 20});
  EXPECT_TRUE(deep.too_deep);
  const content_refusal too_deep = read_content(m, account()).refusal;
  EXPECT_EQ(too_deep.kind, refusal_kind::too_deep);
  EXPECT_EQ(too_deep.limit, 20u);
  EXPECT_EQ(too_deep.count, 21u);  // one over the bound (it said 20: the fuzz target's find)
  auto fine = check_structure(m, {1000, 30});
  EXPECT_FALSE(fine.too_deep);
  EXPECT_EQ(fine.depth, 26u);
  // "--l0--" closed every level: nothing after it is a part.
  EXPECT_EQ(check_structure(m + "--l3\r\n\r\nx\r\n", {1000, 30}).parts, fine.parts);
}

TEST(mime_structure, rfc2231_boundaries_and_attached_messages_are_followed) {
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary*0*=utf-8''ab; boundary*1*=c%64\r\n\r\n"
      "--abcd\r\nContent-Type: message/rfc822\r\n\r\n"
      "Subject: inner\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
      "--in\r\nContent-Type: text/plain\r\n\r\nx\r\n--in--\r\n"
      "--abcd--\r\n";
  auto s = check_structure(m, {1000, 20});
  // mixed, the rfc822 part, the inner message's alternative, its text part
  EXPECT_EQ(s.parts, 4u);
  EXPECT_EQ(s.depth, 3u);
  EXPECT_TRUE(check_structure(m, {1000, 2}).too_deep);
}

// The shapes GMime reads as parts that a blank-line-only reading would miss
// (found in review): delimiters inside header blocks, message/news, and a
// digest's untyped parts.
TEST(mime_structure, every_shape_gmime_builds_parts_from_is_counted) {
  std::string headers_only = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n";
  for (int i = 0; i < 5000; ++i) headers_only += "--a\r\nX:y\r\n";
  EXPECT_TRUE(check_structure(headers_only, {1000, 20}).too_many_parts);
  EXPECT_EQ(read_content(headers_only, account()).refusal, (content_refusal{refusal_kind::too_many_parts, 1001, 1000}));

  std::string news = "MIME-Version: 1.0\r\nContent-Type: message/news\r\n\r\n"
                     "Content-Type: multipart/mixed; boundary=n\r\n\r\n";
  for (int i = 0; i < 5000; ++i) news += "--n\r\n\r\nx\r\n";
  EXPECT_TRUE(check_structure(news, {1000, 20}).too_many_parts);

  std::string digest = "MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
                       "Content-Type: multipart/mixed; boundary=inner\r\n\r\n";
  for (int i = 0; i < 5000; ++i) digest += "--inner\r\n\r\nx\r\n";
  const auto d = check_structure(digest, {1000, 20});
  EXPECT_TRUE(d.too_many_parts);
  EXPECT_EQ(check_structure(digest, {100000, 20}).depth, 3u);  // digest, its message, the inner multipart's parts
}

// What GMime builds, counted without a bound: the scan must never count
// fewer parts or levels, or its bound can be walked past.
void expect_scan_sees_what_gmime_builds(const std::string& body, std::uint32_t parts, std::uint32_t depth) {
  email_options unbounded;
  unbounded.limits = {1u << 30, 1u << 30};
  const email_content e = parse_email(body, unbounded);
  const structure_check s = check_structure(body, {1u << 30, 1u << 30});
  EXPECT_EQ(e.parts, parts) << body;
  EXPECT_EQ(e.depth, depth) << body;
  EXPECT_EQ(s.parts, e.parts) << body;
  EXPECT_EQ(s.depth, e.depth) << body;
}

// Content-Type fields the scan read otherwise than GMime, each of which let
// GMime build what the scan did not count (found by the mime_content fuzz
// target; its reproducer is in tests/fuzz/corpus/mime_content/): a comment
// before the type, a control character after the subtype, a field name
// GMime ignores, an empty boundary, two boundaries (GMime takes the
// first), a NUL in the value (GMime's C string ends there), an RFC 2047
// encoded boundary (GMime decodes the value first) and RFC 2231 pieces.
TEST(mime_structure, content_type_is_read_as_gmime_reads_it) {
  const std::string parts = "\r\n--x\r\n\r\na\r\n--x\r\n\r\nb\r\n--x--\r\n";
  expect_scan_sees_what_gmime_builds("MIME-Version: 1.0\r\nContent-Type: (c) multipart/mixed; boundary=x\r\n" + parts,
                                     3, 1);
  expect_scan_sees_what_gmime_builds(
      "MIME-Version: 1.0\r\nContent-Type: multipart /(c) mixed;\r\n\tboundary=(c)x\r\n" + parts, 3, 1);
  expect_scan_sees_what_gmime_builds("MIME-Version: 1.0\r\nContent-Type: message/rfc822\v\r\n\r\n"
                                     "Content-Type: message/rfc822\x01\r\n\r\nSubject: x\r\n\r\ntext\r\n",
                                     3, 2);
  expect_scan_sees_what_gmime_builds("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n"
                                     "Content-Type\r: text/plain\r\nContent Type: text/plain\r\n" + parts, 3, 1);
  expect_scan_sees_what_gmime_builds("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n"
                                     "--\r\n\r\na\r\n--\r\n\r\nb\r\n----\r\n", 3, 1);
  expect_scan_sees_what_gmime_builds("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x; boundary=y\r\n" +
                                     parts, 3, 1);
  std::string nul = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x";
  nul += '\0';
  expect_scan_sees_what_gmime_builds(nul + "y\r\n" + parts, 3, 1);
  expect_scan_sees_what_gmime_builds(
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=?us-ascii?q?x?=\"\r\n" + parts, 3, 1);
  expect_scan_sees_what_gmime_builds(
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary*0=\"a\"; boundary*1*=utf-8''b\r\n\r\n"
      "--autf-8''b\r\n\r\na\r\n--autf-8''b--\r\n", 2, 1);

  // Hidden from the old scan, 5,000 parts went to GMime whole.
  std::string hidden = "MIME-Version: 1.0\r\nContent-Type: (c) multipart/mixed; boundary=x\r\n\r\n";
  for (int i = 0; i < 5000; ++i) hidden += "--x\r\n\r\na\r\n";
  EXPECT_TRUE(check_structure(hidden, {1000, 20}).too_many_parts);
  EXPECT_EQ(read_content(hidden, account()).refusal, (content_refusal{refusal_kind::too_many_parts, 1001, 1000}));
}

TEST(mime_structure, mail_within_the_bounds_reads_as_before) {
  auto r = read_content(multipart_of(3), account());
  EXPECT_TRUE(r.ok) << refusal_name(r.refusal.kind);
  EXPECT_EQ(r.text, "part");
  content_result cheap;
  ASSERT_TRUE(read_content_if_cheap("a raw text", account(), cheap));
  EXPECT_EQ(cheap.text, "a raw text");
  content_result untouched;
  EXPECT_FALSE(read_content_if_cheap(multipart_of(3), account(), untouched));
  EXPECT_FALSE(read_content_if_cheap(std::string(100000, 'a'), account(), untouched));
  EXPECT_FALSE(untouched.ok);
}

}  // namespace
}  // namespace postino::mime
