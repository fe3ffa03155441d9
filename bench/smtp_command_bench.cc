// Micro-benchmarks for the SMTP command parser (src/smtp/command.h): the
// per-line work the session does before a handler runs (split the verb from
// its arguments, look the verb up in the command table) and the MAIL/RCPT
// path and ESMTP parameter parsers, in ns per command line. The lines are
// constants owned by the benchmark; the parser copies nothing.
#include <benchmark/benchmark.h>

#include <array>
#include <string_view>

#include "../src/smtp/command.h"
#include "postino/ascii.h"

namespace {

using namespace postino::smtp;

// One pipelined message's commands and the session's usual neighbours.
constexpr std::array<std::string_view, 6> lines = {
    "EHLO client.example.com",
    "MAIL FROM:<+393401234567> SIZE=120 BODY=8BITMIME",
    "RCPT TO:<+393331234567>",
    "DATA",
    "RSET",
    "QUIT",
};

// Verb lookup and argument split for every line of the group.
void BM_command_lookup(benchmark::State& state) {
  for (auto _ : state) {
    for (std::string_view line : lines) {
      command_line c = split_command(line);
      const command_spec* spec = find_command(c.verb);
      benchmark::DoNotOptimize(spec);
      benchmark::DoNotOptimize(c.args.data());
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * lines.size()));
}
BENCHMARK(BM_command_lookup);

// MAIL: split, lookup, path and each parameter (SIZE parsed as a number).
void BM_mail_from(benchmark::State& state) {
  const std::string_view line = lines[1];
  for (auto _ : state) {
    command_line c = split_command(line);
    benchmark::DoNotOptimize(find_command(c.verb));
    path_args p;
    if (!parse_path(c.args, "FROM:", p)) state.SkipWithError("MAIL path refused");
    std::string_view rest = p.params;
    esmtp_param param;
    std::uint64_t size = 0;
    while (next_param(rest, param))
      if (postino::iequals(param.name, "SIZE")) parse_decimal(param.value, size);
    benchmark::DoNotOptimize(size);
    benchmark::DoNotOptimize(p.path.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_mail_from);

// RCPT: split, lookup and path, the line a 1,000-recipient message repeats.
void BM_rcpt_to(benchmark::State& state) {
  const std::string_view line = lines[2];
  for (auto _ : state) {
    command_line c = split_command(line);
    benchmark::DoNotOptimize(find_command(c.verb));
    path_args p;
    if (!parse_path(c.args, "TO:", p)) state.SkipWithError("RCPT path refused");
    benchmark::DoNotOptimize(p.path.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_rcpt_to);

// The limit lookup the line scanner makes for every line.
void BM_command_line_limit(benchmark::State& state) {
  for (auto _ : state)
    for (std::string_view line : lines) benchmark::DoNotOptimize(command_line_limit(line.substr(0, 16)));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * lines.size()));
}
BENCHMARK(BM_command_line_limit);

}  // namespace
