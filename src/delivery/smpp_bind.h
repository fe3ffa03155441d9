// One SMPP 3.4 bind_transceiver connection of an SMSC account, driven on a
// shard's io_uring ring: connect, bind, enquire_link keep-alive with a
// response timeout, a window of outstanding submit_sm, a per-bind submit rate
// that ESME_RTHROTTLED / ESME_RMSGQFUL slow down, reconnect with exponential
// back-off, unbind on stop. It knows nothing of messages: the owner (the
// shard's delivery engine) hands it PDUs with an opaque token and hears back
// per token. Buffers: the bind owns its socket, its receive buffer (PDUs are
// parsed in place and handed to the listener as views valid during the call)
// and its output buffer (encoded PDUs wait there until sent); a submitted
// PDU is encoded at submit() and not kept.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "postino/config.h"
#include "postino/core.h"
#include "postino/runtime.h"
#include "postino/smpp.h"

struct io_uring;

namespace postino::delivery {

// Where a bind runs: the shard's ring and timer wheel (or a test's own).
// `now_ms` is the wheel's time base (CLOCK_MONOTONIC milliseconds).
struct bind_env {
  io_uring* ring = nullptr;
  core::timer_wheel* timers = nullptr;
  std::function<std::uint64_t()> now_ms;
};

class smpp_bind;

// Names one deliver_sm on one connection, for ack_deliver: the PDU's
// sequence number in the low 32 bits, the connection in the high ones. The
// sequence alone could name another deliver_sm after a reconnect (an SMSC
// may start its sequences again), which would then be acknowledged before
// its record is durable, and lost in a crash.
using deliver_ticket = std::uint64_t;
inline std::uint32_t ticket_sequence(deliver_ticket t) { return static_cast<std::uint32_t>(t); }

// The owner's side. Calls come from the ring's completions and timers (on
// the shard's thread); the listener may call submit()/ack_deliver() from
// inside them, but must not destroy the bind there.
class bind_listener {
 public:
  // bind_transceiver_resp OK: submits may start.
  virtual void on_bound(smpp_bind& b) = 0;
  // The connection is gone (peer closed, error, timeout, unbind) or stop()
  // finished. `outstanding` holds the tokens of submits sent without a
  // response: the SMSC may or may not have them (the owner submits them
  // again; a duplicate can only be one of these). Called once per bound or
  // attempted connection; the bind reconnects by itself unless stopped.
  virtual void on_unbound(smpp_bind& b, std::vector<std::uint64_t> outstanding) = 0;
  // submit_sm_resp (or a generic_nack for a submit_sm) for `token`.
  // Throttling statuses have already slowed the bind down.
  virtual void on_submit_resp(smpp_bind& b, std::uint64_t token, std::uint32_t status,
                              std::string_view message_id) = 0;
  // A deliver_sm (receipt or handset message). The owner must answer it
  // later with ack_deliver(ticket, status) (possibly after journaling);
  // an answer for a connection that is gone is dropped (the SMSC sends the
  // deliver_sm again).
  virtual void on_deliver_sm(smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) = 0;
  // Room again (window space, rate tokens, end of a throttle pause): the
  // owner may submit more while can_submit() holds.
  virtual void on_ready(smpp_bind& b) = 0;

 protected:
  ~bind_listener() = default;
};

class smpp_bind {
 public:
  struct counters {
    std::uint64_t connects = 0;          // TCP connections made
    std::uint64_t binds = 0;             // successful bind_transceiver
    std::uint64_t submits = 0;           // submit_sm sent
    std::uint64_t throttled = 0;         // ESME_RTHROTTLED / ESME_RMSGQFUL answers
    std::uint64_t enquire_links = 0;     // sent
    std::uint64_t timeouts = 0;          // connections dropped for a late response
    std::uint64_t generic_nacks = 0;     // received
  };

  // `config` must outlive the bind. `index` numbers the account's binds (for
  // logs: "<name>#<index>").
  smpp_bind(bind_env env, const smsc_config& config, unsigned index, bind_listener& listener);
  // Must not be destroyed while ring operations are in flight: call stop()
  // and wait for stopped(), or destroy only after the ring is torn down.
  ~smpp_bind();
  smpp_bind(const smpp_bind&) = delete;
  smpp_bind& operator=(const smpp_bind&) = delete;

  // Connects (resolving config.host once, numeric or by name) and binds;
  // reconnects with back-off after any loss until stop().
  void start();
  // Stops submitting, waits (at most response_timeout_s) for outstanding
  // responses, sends unbind, waits for unbind_resp (same bound), closes.
  // on_unbound comes with whatever was still outstanding.
  void stop();
  // Nothing in flight on the ring any more and the socket is closed (after stop()).
  bool stopped() const;

  bool bound() const;
  // Bound, window not full, not paused by throttling, rate allows one more now.
  bool can_submit() const;
  // Sends submit_sm now (the caller checked can_submit()).
  void submit(const smpp::short_message_pdu& pdu, std::uint64_t token);
  void ack_deliver(deliver_ticket ticket, std::uint32_t status);

  unsigned outstanding() const;
  // The submit rate now allowed (per second; 0 = unlimited), after throttling.
  double current_rate() const;
  const std::string& name() const;
  const counters& stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace postino::delivery
