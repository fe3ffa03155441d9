// Micro-benchmarks for the content step (src/mime): ns per message for the
// whole step the session runs at the terminator (read_content: detection,
// parse, clean-up, encoding and segment count) on a raw bulk text, a
// single-part text/plain e-mail, a multipart/alternative e-mail, an HTML-only
// e-mail and an MM4 MMS, plus the GMime parse alone for the two e-mails the
// issue names. The messages are built once and owned by the benchmark.
#include <benchmark/benchmark.h>

#include <string>

#include "postino/mime.h"

namespace {

using postino::account_settings;
using postino::mime::parse_email;
using postino::mime::read_content;

std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += "\r\n";
    else out += c;
  }
  return out;
}

// Headers as a mail library writes them (Python's email, nodemailer).
const std::string headers =
    "From: Negozio <shop@example.com>\n"
    "To: +393331234567@sms.example.com\n"
    "Subject: =?utf-8?q?Il_tuo_ordine_=C3=A8_pronto?=\n"
    "Date: Mon, 23 Nov 2026 09:54:16 +0000\n"
    "Message-ID: <179542765639.11244.13681658709734229057@example.com>\n"
    "MIME-Version: 1.0\n";

const std::string& raw_text() {
  static const std::string s = crlf("Promo: 20% di sconto su tutto il negozio fino a domenica. Ti aspettiamo!\n");
  return s;
}

const std::string& plain_mail() {
  static const std::string s = crlf(headers +
                                    "Content-Type: text/plain; charset=\"utf-8\"\n"
                                    "Content-Transfer-Encoding: quoted-printable\n\n"
                                    "Il tuo ordine 1234 =C3=A8 pronto per il ritiro in negozio.\nGrazie!\n");
  return s;
}

const std::string& alternative_mail() {
  static const std::string s = crlf(
      headers +
      "Content-Type: multipart/alternative; boundary=\"===============2542144082519494459==\"\n\n"
      "--===============2542144082519494459==\n"
      "Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: quoted-printable\n\n"
      "Il tuo ordine 1234 =C3=A8 pronto per il ritiro in negozio.\nGrazie!\n\n"
      "--===============2542144082519494459==\n"
      "Content-Type: text/html; charset=\"utf-8\"\nContent-Transfer-Encoding: quoted-printable\n\n"
      "<html><body><p>Il tuo ordine <b>1234</b> =C3=A8 pronto per il ritiro in negozio.</p>"
      "<p>Grazie!</p></body></html>\n\n"
      "--===============2542144082519494459==--\n");
  return s;
}

const std::string& html_mail() {
  static const std::string s = crlf(headers +
                                    "Content-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n"
                                    "<!DOCTYPE html>\n<html>\n  <head>\n"
                                    "    <meta http-equiv=\"content-type\" content=\"text/html; charset=UTF-8\">\n"
                                    "  </head>\n  <body>\n    <p>Ciao Luca,</p>\n"
                                    "    <p>la riunione \xC3\xA8 spostata alle <b>15:30</b>, in <a\n"
                                    "        href=\"https://meet.example.com/r/42\">sala Verdi</a>.<br>\n    </p>\n"
                                    "    <div class=\"moz-signature\">-- <br>\n      Anna Bianchi</div>\n"
                                    "  </body>\n</html>\n");
  return s;
}

const std::string& mm4_mail() {
  static const std::string s = [] {
    std::string image;
    for (int i = 0; i < 400; ++i) image += "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhsc\n";
    return crlf("X-Mms-3GPP-MMS-Version: 6.10.0\nX-Mms-Message-Type: MM4_forward.REQ\n"
                "X-Mms-Transaction-ID: T-1\nX-Mms-Message-ID: <1@mms.example.net>\nX-Mms-Ack-Request: Yes\n"
                "From: +393401234567/TYPE=PLMN@mms.example.net\nTo: +393331234567/TYPE=PLMN@mms.example.net\n"
                "MIME-Version: 1.0\nContent-Type: multipart/related; boundary=\"b\"\n\n"
                "--b\nContent-Type: application/smil\n\n<smil><body><par><img src=\"cid:i\"/></par></body></smil>\n"
                "--b\nContent-Type: text/plain; charset=utf-8\n\nAuguri!\n"
                "--b\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n" +
                image + "--b--\n");
  }();
  return s;
}

account_settings account() {
  account_settings a;
  a.mms_enabled = true;
  return a;
}

void run_content(benchmark::State& state, const std::string& body) {
  const account_settings a = account();
  for (auto _ : state) {
    auto r = read_content(body, a);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}

void run_parse(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto e = parse_email(body, {});
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_content_raw_text(benchmark::State& s) { run_content(s, raw_text()); }
void BM_content_email_plain(benchmark::State& s) { run_content(s, plain_mail()); }
void BM_content_email_alternative(benchmark::State& s) { run_content(s, alternative_mail()); }
void BM_content_email_html_only(benchmark::State& s) { run_content(s, html_mail()); }
void BM_content_mm4_30k(benchmark::State& s) { run_content(s, mm4_mail()); }
void BM_email_parse_plain(benchmark::State& s) { run_parse(s, plain_mail()); }
void BM_email_parse_alternative(benchmark::State& s) { run_parse(s, alternative_mail()); }

// A top-posted reply: two lines of text, an attribution, a 40-line quote
// with a nested one (the text a phone's "Re:" carries).
std::string reply_text() {
  std::string t = "Va bene, ci vediamo domani alle 10.\nPorto io i documenti.\n\n"
                  "On Mon, 30 Nov 2026 at 10:12, Anna Bianchi <anna@example.com> wrote:\n";
  for (int i = 0; i < 30; ++i) t += "> Riga " + std::to_string(i) + " del messaggio originale, con un po' di testo.\n";
  t += ">\n>> On Sun, Bob wrote:\n";
  for (int i = 0; i < 10; ++i) t += ">> riga annidata " + std::to_string(i) + "\n";
  return t;
}

// The quoted-reply cut alone (src/mime/quoted_reply.cc), per reply and per byte.
void BM_quoted_reply_cut(benchmark::State& state) {
  const std::string text = reply_text();
  for (auto _ : state) {
    auto out = postino::mime::cut_quoted_reply(text);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

// A megabyte of quoted lines: the cut stays linear.
void BM_quoted_reply_cut_1mb(benchmark::State& state) {
  std::string text = "Ok.\n\nOn Mon, Anna wrote:\n";
  while (text.size() < 1024 * 1024) text += "> una riga citata di un messaggio lungo\n";
  for (auto _ : state) {
    auto out = postino::mime::cut_quoted_reply(text);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

BENCHMARK(BM_quoted_reply_cut);
BENCHMARK(BM_quoted_reply_cut_1mb);
BENCHMARK(BM_content_raw_text);
BENCHMARK(BM_content_email_plain);
BENCHMARK(BM_content_email_alternative);
BENCHMARK(BM_content_email_html_only);
BENCHMARK(BM_content_mm4_30k);
BENCHMARK(BM_email_parse_plain);
BENCHMARK(BM_email_parse_alternative);

}  // namespace
