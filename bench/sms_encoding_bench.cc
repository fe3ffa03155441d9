// Micro-benchmarks for the SMS text path (src/sms/text.cc, src/sms/gsm.cc):
// ns per message for count_segments (the pricing path, no allocation) and
// encode_sms (the delivery path) on a one-segment GSM text, a three-segment
// GSM text and a two-segment UCS-2 text, and for the raw-mode clean-up of a
// 1 KiB body in UTF-8 and in Windows-1252. Texts are built once, benchmark-owned.
#include <benchmark/benchmark.h>

#include <string>

#include "postino/sms.h"

namespace {

using postino::sms::clean_raw_text;
using postino::sms::count_segments;
using postino::sms::encode_sms;

// Exactly `n` characters of `base` repeated (base is ASCII or 2-byte UTF-8 as given by `char_bytes`).
std::string take_chars(std::string_view base, std::size_t n, std::size_t char_bytes) {
  std::string out;
  while (out.size() < n * char_bytes) out += base;
  out.resize(n * char_bytes);
  return out;
}

// 100 GSM characters with accents and one euro sign (101 septets).
const std::string& gsm_100() {
  static const std::string s = [] {
    std::string t = "Gentile cliente, il suo ordine è in consegna: totale 25€. Grazie e a presto dal servizio clienti!";
    while (t.size() < 103) t += '.';  // è and € take 2 and 3 bytes: 100 characters
    return t;
  }();
  return s;
}

const std::string& gsm_400() {
  static const std::string s =
      take_chars("Promemoria: l'appuntamento di domani alle 10:30 presso lo studio e' confermato. ", 400, 1);
  return s;
}

// 100 Cyrillic letters and spaces: UCS-2, 100 units, two segments.
const std::string& ucs2_100() {
  static const std::string s = [] {
    const std::string word = "Привет мир ";  // 11 characters, all 2 bytes except the spaces
    std::string t;
    std::size_t chars = 0;
    for (std::size_t i = 0; chars < 100; ++chars) {
      const unsigned char b = static_cast<unsigned char>(word[i]);
      const std::size_t len = b < 0x80 ? 1 : 2;
      t.append(word, i, len);
      i = (i + len) % word.size();
    }
    return t;
  }();
  return s;
}

std::string body_1k(bool windows1252) {
  const std::string line = windows1252 ? "Caff\xE8 a 5\x80 per tutti i clienti del negozio, fino a domenica.\r\n"
                                       : "Caffè a 5€ per tutti i clienti del negozio, fino a domenica.\r\n";
  std::string b;
  while (b.size() + line.size() <= 1024) b += line;
  while (b.size() < 1020) b += 'x';
  b += "\r\n\r\n";
  return b;
}

void check(benchmark::State& state, const std::string& text, postino::sms::sms_encoding enc, std::uint32_t segs) {
  const auto c = count_segments(text);
  if (c.encoding != enc || c.segments != segs) state.SkipWithError("benchmark text has the wrong shape");
}

void BM_count_gsm_100(benchmark::State& state) {
  check(state, gsm_100(), postino::sms::sms_encoding::gsm7, 1);
  for (auto _ : state) benchmark::DoNotOptimize(count_segments(gsm_100()));
}
BENCHMARK(BM_count_gsm_100);

void BM_encode_gsm_100(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(encode_sms(gsm_100(), 1));
}
BENCHMARK(BM_encode_gsm_100);

void BM_count_gsm_400_3seg(benchmark::State& state) {
  check(state, gsm_400(), postino::sms::sms_encoding::gsm7, 3);
  for (auto _ : state) benchmark::DoNotOptimize(count_segments(gsm_400()));
}
BENCHMARK(BM_count_gsm_400_3seg);

void BM_encode_gsm_400_3seg(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(encode_sms(gsm_400(), 1));
}
BENCHMARK(BM_encode_gsm_400_3seg);

void BM_count_ucs2_100(benchmark::State& state) {
  check(state, ucs2_100(), postino::sms::sms_encoding::ucs2, 2);
  for (auto _ : state) benchmark::DoNotOptimize(count_segments(ucs2_100()));
}
BENCHMARK(BM_count_ucs2_100);

void BM_encode_ucs2_100(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(encode_sms(ucs2_100(), 1));
}
BENCHMARK(BM_encode_ucs2_100);

// 100 characters, 7 of them transliterated (quotes, dash, È, ellipsis).
void BM_count_gsm_100_transliterate(benchmark::State& state) {
  static const std::string text =
      "“Gentile cliente” – il suo ordine È in consegna… totale 25€. Grazie e a presto, ‘servizio clienti’!!";
  for (auto _ : state) benchmark::DoNotOptimize(count_segments(text, true));
}
BENCHMARK(BM_count_gsm_100_transliterate);

void BM_clean_raw_1k_utf8(benchmark::State& state) {
  const std::string body = body_1k(false);
  for (auto _ : state) benchmark::DoNotOptimize(clean_raw_text(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_clean_raw_1k_utf8);

void BM_clean_raw_1k_windows1252(benchmark::State& state) {
  const std::string body = body_1k(true);
  for (auto _ : state) benchmark::DoNotOptimize(clean_raw_text(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_clean_raw_1k_windows1252);

}  // namespace
