// Micro-benchmarks for the SMTP scanners (src/smtp/scanner.h): the DATA
// scanner (CRLF.CRLF end, dot-unstuffing, bare-newline and line-length
// checks, one copy into the body) in bytes/s on 100 B, 1 KiB and 64 KiB
// bodies, whole and split into the gateway's 4 KiB receive buffers; the
// command-line scanner (CRLF) on a pipelined MAIL/RCPT/DATA group; and, as
// the ceiling both are judged against, memchr and memcpy over the same bytes.
// The inputs and the body string are owned by each benchmark; the body keeps
// its capacity between iterations so the numbers are the scan and the copy,
// not the allocator.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <string_view>

#include "../src/smtp/scanner.h"
#include "bench_inputs.h"

namespace {

using postino::smtp::data_scanner;
using postino::smtp::line_mode;
using postino::smtp::line_scanner;

constexpr std::uint64_t max_size = 10485760;

// Arg 0: the text's size, terminator included. Arg 1: read size (0 = whole).
void BM_data_scanner(benchmark::State& state) {
  const std::string input = postino::bench::data_text(static_cast<std::size_t>(state.range(0)));
  const std::size_t read = state.range(1) == 0 ? input.size() : static_cast<std::size_t>(state.range(1));
  std::string body;
  body.reserve(input.size());
  data_scanner scanner;
  for (auto _ : state) {
    body.clear();
    scanner.start(max_size, false);
    std::string_view rest = input;
    while (!scanner.done() && !rest.empty()) {
      std::string_view chunk = rest.substr(0, read);
      std::size_t used = 0;
      while (used < chunk.size() && !scanner.done()) used += scanner.feed(chunk.substr(used), body);
      rest.remove_prefix(used);
    }
    if (!scanner.done()) state.SkipWithError("terminator not found");
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_data_scanner)->ArgNames({"size", "read"})
    ->Args({100, 0})->Args({1024, 0})->Args({65536, 0})->Args({65536, 4096});

// The command lines a pipelining client sends per message (RFC 2920), five
// recipients, scanned line by line as the session does.
void BM_line_scanner(benchmark::State& state) {
  std::string input = "MAIL FROM:<+393401234567> SIZE=120\r\n";
  for (int i = 0; i < 5; ++i) input += "RCPT TO:<+3933312345" + std::to_string(60 + i) + ">\r\n";
  input += "DATA\r\n";
  line_scanner scanner;
  std::size_t lines = 0;
  for (auto _ : state) {
    std::string_view rest = input;
    while (!rest.empty()) {
      auto r = scanner.next(rest, line_mode::command);
      benchmark::DoNotOptimize(r.line.data());
      rest.remove_prefix(r.consumed);
      ++lines;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(lines));
}
BENCHMARK(BM_line_scanner);

// Ceilings: finding every LF with memchr, and copying the text once.
void BM_memchr_lines(benchmark::State& state) {
  const std::string input = postino::bench::data_text(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    const char* p = input.data();
    const char* end = p + input.size();
    std::size_t n = 0;
    while (p < end) {
      const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      if (lf == nullptr) break;
      p = static_cast<const char*>(lf) + 1;
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
}
BENCHMARK(BM_memchr_lines)->ArgName("size")->Arg(100)->Arg(1024)->Arg(65536);

void BM_memcpy(benchmark::State& state) {
  const std::string input = postino::bench::data_text(static_cast<std::size_t>(state.range(0)));
  std::string body;
  body.reserve(input.size());
  for (auto _ : state) {
    body.assign(input);
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
}
BENCHMARK(BM_memcpy)->ArgName("size")->Arg(100)->Arg(1024)->Arg(65536);

}  // namespace
