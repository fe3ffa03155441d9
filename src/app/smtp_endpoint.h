// The SMTP session as an io::session: what an SMTP listener's connections
// speak. io knows no protocol and smtp does no I/O; this adapter, owned by
// its connection, holds the session and the listener's timeouts (the DATA
// timer while a body streams in, bounded by the DATA total time from the 354,
// the idle timer otherwise) and forwards the rest. The request handler reaches the SMTP session of a connection with
// smtp_of(). Buffers: the session's own.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "postino/io.h"
#include "postino/smtp.h"

namespace postino::app {

struct smtp_timeouts {
  std::chrono::milliseconds idle{300'000};
  std::chrono::milliseconds data{180'000};
  std::chrono::milliseconds data_total{600'000};  // from the 354 to the end; 0: no bound
};

class smtp_endpoint final : public io::session {
 public:
  smtp_endpoint(const smtp::session_config& config, io::peer_info peer,
                const account_settings* preauthenticated, smtp_timeouts timeouts)
      : smtp(config, smtp::connection_info{peer.number, std::move(peer.ip)}, preauthenticated),
        timeouts_(timeouts) {}

  void start() override { smtp.start(); }
  std::size_t feed(std::string_view input) override { return smtp.feed(input); }
  bool has_request() const override { return smtp.pending() != smtp::request_kind::none; }
  std::string& output() override { return smtp.output(); }
  bool closing() const override { return smtp.closing(); }
  bool output_full() const override { return smtp.output_full(); }
  // A closing session waits one idle period for its last reply to go out.
  // In DATA the inactivity timer never reaches past the DATA total time
  // (PROTOCOL.md 5: a drip of a byte a second is cut at 600 s with the
  // same 421 4.4.2); the connection asks again after every read.
  std::chrono::milliseconds idle_limit() const override {
    if (smtp.closing() || smtp.current_timer() != smtp::timer_kind::data) return timeouts_.idle;
    if (timeouts_.data_total.count() <= 0) return timeouts_.data;
    const auto now = std::chrono::steady_clock::now();
    if (smtp.data_started() != data_seen_) {  // a new DATA: its clock starts now
      data_seen_ = smtp.data_started();
      data_begun_ = now;
    }
    const auto left = timeouts_.data_total - std::chrono::duration_cast<std::chrono::milliseconds>(now - data_begun_);
    return std::max(std::chrono::milliseconds(1), std::min(timeouts_.data, left));
  }
  void on_timeout() override { smtp.on_timeout(); }
  void on_shutdown() override { smtp.on_shutdown(); }
  bool take_starttls() override { return smtp.take_starttls(); }

  smtp::session smtp;

 private:
  smtp_timeouts timeouts_;
  // Which DATA the total time runs for, and since when (asked from the const
  // idle_limit(): the connection's question is what starts the clock).
  mutable std::uint64_t data_seen_ = 0;
  mutable std::chrono::steady_clock::time_point data_begun_{};
};

// The SMTP session of a connection of an SMTP listener (all of ours are).
inline smtp::session& smtp_of(io::connection& c) { return static_cast<smtp_endpoint&>(c.session()).smtp; }

// What an SMTP listener's connections are made with: the settings outlive
// the runtime.
inline io::listener_spec smtp_listener(std::string address, std::uint16_t port, const smtp::session_config& config,
                                       const account_settings* preauthenticated, smtp_timeouts timeouts) {
  io::listener_spec spec;
  spec.address = std::move(address);
  spec.port = port;
  spec.make_session = [&config, preauthenticated, timeouts](io::peer_info peer) -> std::unique_ptr<io::session> {
    return std::make_unique<smtp_endpoint>(config, std::move(peer), preauthenticated, timeouts);
  };
  return spec;
}

}  // namespace postino::app
