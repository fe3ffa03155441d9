// postino-load's settings as given on the command line, the derived run
// shape (mode, processes, per-thread shares) and the target address check:
// the generator only ever aims at loopback (127.0.0.0/8 or ::1), so a typo
// cannot turn it on someone else's server. Pure: no I/O beyond inet_pton; the
// settings own their strings.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>

#include "message_builder.h"
#include "tls_client.h"

namespace postino::load {

enum class load_mode { closed, open, churn, idle };
enum class auth_mode { none, login, plain };

inline const char* mode_name(load_mode m) {
  switch (m) {
    case load_mode::closed: return "closed";
    case load_mode::open: return "open";
    case load_mode::churn: return "churn";
    case load_mode::idle: return "idle";
  }
  return "?";
}
inline const char* auth_name(auth_mode a) {
  switch (a) {
    case auth_mode::none: return "none";
    case auth_mode::login: return "login";
    case auth_mode::plain: return "plain";
  }
  return "?";
}

struct target {
  int family = AF_INET;
  in_addr v4{};
  in6_addr v6{};
  int port = 25;
  std::string text;  // as printed: 127.0.0.1:2525 or [::1]:2525
};

// Reads "addr", "addr:port", "[v6]:port" or "localhost[:port]" and refuses
// anything outside loopback. Returns the error text on failure.
inline std::variant<target, std::string> parse_target(std::string_view server, int default_port) {
  std::string host(server);
  int port = default_port;
  auto read_port = [&port](std::string_view p) {
    if (p.empty() || p.size() > 5) return false;
    int v = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (v < 1 || v > 65535) return false;
    port = v;
    return true;
  };
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string::npos) return std::string("unbalanced '[' in --server " + std::string(server));
    std::string rest = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!rest.empty() && (rest.front() != ':' || !read_port(std::string_view(rest).substr(1))))
      return std::string("bad port in --server " + std::string(server));
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    const auto colon = host.find(':');
    if (!read_port(std::string_view(host).substr(colon + 1)))
      return std::string("bad port in --server " + std::string(server));
    host.resize(colon);
  }
  if (host == "localhost") host = "127.0.0.1";
  target t;
  t.port = port;
  if (inet_pton(AF_INET, host.c_str(), &t.v4) == 1) {
    t.family = AF_INET;
    const auto* b = reinterpret_cast<const unsigned char*>(&t.v4);
    if (b[0] != 127) return std::string("--server " + host + " is not a loopback address (127.0.0.0/8 or ::1)");
    t.text = host + ":" + std::to_string(port);
    return t;
  }
  if (inet_pton(AF_INET6, host.c_str(), &t.v6) == 1) {
    t.family = AF_INET6;
    if (std::memcmp(&t.v6, &in6addr_loopback, sizeof(in6_addr)) != 0)
      return std::string("--server " + host + " is not a loopback address (127.0.0.0/8 or ::1)");
    t.text = "[" + host + "]:" + std::to_string(port);
    return t;
  }
  return std::string("--server " + host + " is not an IP address (names other than localhost are not resolved)");
}

struct settings {
  std::string server = "127.0.0.1";
  int port = 25;
  int threads = 2;
  int processes = 0;    // 0: as many as the sessions need
  int source_addrs = 0;  // 0: one per 20,000 sessions
  int sessions = 10;
  double rate = 0;  // messages per second in all; 0 means closed loop
  bool churn = false;
  int idle = 0;
  double duration = 0;        // seconds; 0 means not given
  std::uint64_t messages = 0;  // 0 means not given
  std::string ehlo = "postino-load.localhost";
  auth_mode auth = auth_mode::none;
  std::string user;
  std::string password;
  message_spec msg;
  std::string log_path;
  std::string json_path;
  int server_pid = 0;
  double probe_interval = 1.0;
  bool no_pipelining = false;
  bool bdat = false;  // send each text as one BDAT <n> LAST chunk (RFC 3030) instead of DATA
  double drain_timeout = 10;
  double reply_timeout = 30;
  int max_connecting = 256;  // handshakes in progress per thread
  std::uint64_t seed = 1;
  bool progress = true;
  tls_mode tls = tls_mode::none;
  bool tls_resume = true;  // offer the worker's last session ticket
  std::string tls_ca;       // verify against this CA file
  bool tls_insecure = false;

  // Derived once the command line is read.
  load_mode mode = load_mode::closed;
  target addr;

  int total_sessions() const { return mode == load_mode::idle ? idle : sessions; }

  // The settings as given, for the "settings" object of --json.
  nlohmann::ordered_json to_json() const {
    return {
        {"server", addr.text},
        {"mode", mode_name(mode)},
        {"threads", threads},
        {"processes", processes},
        {"source_addrs", source_addrs},
        {"sessions", sessions},
        {"rate", rate},
        {"churn", churn},
        {"idle", idle},
        {"duration", duration},
        {"messages", messages},
        {"ehlo", ehlo},
        {"auth", auth_name(auth)},
        {"user", user},
        {"from", msg.from},
        {"to_prefix", msg.to_prefixes},
        {"rcpts", msg.rcpts},
        {"number_length", msg.number_length},
        {"size", msg.size},
        {"alphabet", msg.text_alphabet == alphabet::gsm ? "gsm" : "ucs2"},
        {"log", log_path},
        {"server_pid", server_pid},
        {"probe_interval", probe_interval},
        {"no_pipelining", no_pipelining},
        {"bdat", bdat},
        {"drain_timeout", drain_timeout},
        {"reply_timeout", reply_timeout},
        {"max_connecting", max_connecting},
        {"seed", seed},
        {"tls", tls_mode_name(tls)},
        {"tls_resume", tls_resume},
        {"tls_ca", tls_ca},
        {"tls_insecure", tls_insecure},
    };
  }
};

// Splits total as evenly as possible over n parts; part i's share.
inline std::uint64_t share_of(std::uint64_t total, std::uint64_t n, std::uint64_t i) {
  return total / n + (i < total % n ? 1 : 0);
}
// Where part i's share starts.
inline std::uint64_t share_base(std::uint64_t total, std::uint64_t n, std::uint64_t i) {
  return i * (total / n) + std::min(i, total % n);
}

}  // namespace postino::load
