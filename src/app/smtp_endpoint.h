// The SMTP session as an io::session: what an SMTP listener's connections
// speak. io knows no protocol and smtp does no I/O; this adapter, owned by
// its connection, holds the session and the listener's timeouts (the DATA
// timer while a body streams in, the idle timer otherwise) and forwards the
// rest. The request handler reaches the SMTP session of a connection with
// smtp_of(). Buffers: the session's own.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "postino/io.h"
#include "postino/smtp.h"

namespace postino::app {

struct smtp_timeouts {
  std::chrono::milliseconds idle{300'000};
  std::chrono::milliseconds data{180'000};
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
  std::chrono::milliseconds idle_limit() const override {
    return !smtp.closing() && smtp.current_timer() == smtp::timer_kind::data ? timeouts_.data : timeouts_.idle;
  }
  void on_timeout() override { smtp.on_timeout(); }
  void on_shutdown() override { smtp.on_shutdown(); }
  bool take_starttls() override { return smtp.take_starttls(); }

  smtp::session smtp;

 private:
  smtp_timeouts timeouts_;
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
