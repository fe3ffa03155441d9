// The gateway's configuration: a TOML file (toml++) overridden by command-line
// flags (CLI11). Loaded once at start-up on the main thread; shards keep
// read-only references. A bad file is reported with its key and line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "postino/smtp.h"

namespace postino {

struct listener_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 2525;
  bool auth_required = true;          // auth = "required" | "none"
  std::string account;                // with auth = "none": the account used
  smtp::session_config session;       // hostname, size, bare newline, limits
};

struct gateway_config {
  std::string hostname = "localhost";
  unsigned shards = 0;                // 0: one per core
  unsigned node_id = 0;
  std::string data_dir = "./postino-data";
  std::string database;               // default: <data_dir>/postino.db
  unsigned idle_timeout_s = 300;
  unsigned data_timeout_s = 180;
  unsigned shutdown_grace_s = 30;
  unsigned auth_workers = 2;
  std::size_t auth_queue = 4096;
  std::uint64_t journal_segment_bytes = 64u << 20;
  unsigned checkpoint_interval_s = 30;  // 0: no periodic checkpoint
  bool create_demo_account = true;    // on an empty database
  std::string admin_address = "127.0.0.1";
  std::uint16_t admin_port = 0;        // 0: no admin endpoint
  std::string ports_file;              // if set, bound ports are written here
  std::vector<listener_config> listeners;
};

// Parses `path` (may be empty: defaults) and applies the command line.
// On error returns nullopt and sets `error` to "<file>:<line>: <key>: <what>"
// (or the flag at fault); `exit_code` tells main what to return (0 for --help).
std::optional<gateway_config> load_config(int argc, char** argv, std::string& error,
                                          int& exit_code);
// The same from a TOML string (tests).
std::optional<gateway_config> parse_config_text(const std::string& toml_text,
                                                const std::string& source_name,
                                                std::string& error);

}  // namespace postino
