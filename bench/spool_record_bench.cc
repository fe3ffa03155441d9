// Micro-benchmarks for the journal record encoder (src/spool/record_codec.h):
// encode_message (header, payload and the CRC32C over everything, body
// included; the body itself is written by the journal, not copied here) for
// the W1 message (1 recipient, 100 characters), a 5-recipient bulk message,
// the W2 message (1,000 recipients) and a 10 KiB body; and the CRC32C alone
// in bytes/s. The transactions are owned by the benchmark; the staging string
// keeps its capacity between iterations, as the journal's group buffer does.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>

#include "../src/spool/record_codec.h"
#include "bench_inputs.h"

namespace {

using namespace postino;
namespace codec = postino::spool::codec;

message sample_message(std::size_t recipients, std::size_t body_chars) {
  message tx;
  tx.account = 7;
  tx.originator = "+393401234567";
  tx.originator_type = originator_kind::numeric_long;
  for (std::size_t i = 0; i < recipients; ++i) tx.recipients.push_back("+39333" + std::to_string(1000000 + i));
  tx.body = postino::bench::gsm_text(body_chars) + "\r\n";
  tx.sms_text = postino::bench::gsm_text(std::min<std::size_t>(body_chars, 160));
  tx.price = static_cast<credit_units>(recipients);
  return tx;
}

// Arg 0: recipients, arg 1: body characters.
void BM_encode_message(benchmark::State& state) {
  const message tx = sample_message(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  std::string out;
  out.reserve(codec::message_size(tx));
  std::uint64_t sequence = 0;
  for (auto _ : state) {
    out.clear();
    codec::encode_message(out, ++sequence, 1767225600000, 0, tx);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * codec::message_size(tx)));
  state.counters["record_bytes"] = static_cast<double>(codec::message_size(tx));
}
BENCHMARK(BM_encode_message)->ArgNames({"rcpts", "chars"})
    ->Args({1, 100})->Args({5, 100})->Args({1000, 100})->Args({1, 10240});

void BM_crc32c(benchmark::State& state) {
  const std::string data = postino::bench::data_text(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(codec::crc32c(data.data(), data.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_crc32c)->ArgName("size")->Arg(100)->Arg(1024)->Arg(65536);

}  // namespace
