// The per-shard delivery engine (include/delivery/postino/delivery.h): the driver
// that wires the router, the fair queues and the receipt matchers to the
// binds, the journal and the host. On the shard that accepted a message it
// routes each recipient (router.h) and posts the segments to the shard
// owning the chosen SMSC account. On the owning shard each SMSC account has
// its binds, its fair queue (fair_queue.h), the submits in flight by token
// and its receipt matcher (receipt_matcher.h); the engine submits while a
// bind has room, retries temporary errors with back-off until the validity
// period ends, expires what is left, and runs the periodic tick (due
// retries, held receipts, failover). Journal records: `submitted` when an
// SMSC confirms a segment, `delivery_final` (with its refund) when a segment
// ends, `inbound` for a handset message; a receipt is acknowledged to the
// SMSC only once its final record is durable, so a crash never loses one.
// Buffers: segments share their message (shared_ptr); the engine owns its
// SMSC runtimes (queues, matchers, in-flight maps), its retries and the
// waiters it gives the journal (each deletes itself when told); the binds
// own their sockets and buffers.
#include <algorithm>
#include <cstdio>
#include <queue>
#include <unordered_map>

#include "fair_queue.h"
#include "postino/delivery.h"
#include "postino/runtime.h"
#include "postino/smpp.h"
#include "receipt_matcher.h"
#include "router.h"
#include "segment.h"
#include "short_message.h"
#include "smpp_bind.h"

namespace postino::delivery {
namespace {

// Delivery counters have one writer each, like the shard's own.
void bump(std::atomic<std::uint64_t>& counter, std::int64_t delta = 1) { core::shard_metrics::bump(counter, delta); }

// Segments handed from one shard to another through a mailbox.
struct handoff {
  shared_state* shared = nullptr;
  int smsc = -1;
  std::vector<segment_ref> segments;
};
// The mailbox payload: the heap hand-off, owned by the receiver once it runs.
struct handoff_mail {
  handoff* segments = nullptr;
};

// An error that is not a 32-bit number (an SMSC's junk) is recorded as 0,
// never wrapped into some other code.
std::uint32_t receipt_error(const smpp::receipt& r) { return smpp::receipt_error_code(r.error).value_or(0); }

}  // namespace

unsigned smsc_home_shard(const smsc_config& smsc, unsigned shards) {
  if (smsc.shard >= 0) return static_cast<unsigned>(smsc.shard) % shards;
  // FNV-1a: stable across runs and builds, unlike std::hash.
  std::uint32_t h = 2166136261u;
  for (unsigned char c : smsc.name) h = (h ^ c) * 16777619u;
  return h % shards;
}

std::shared_ptr<shared_state> make_shared_state(const gateway_config& config, unsigned shards) {
  auto s = std::make_shared<shared_state>();
  s->config = &config;
  for (const auto& smsc : config.smscs) s->smsc_shard.push_back(smsc_home_shard(smsc, shards));
  // All 0 ("up") until the owning shard starts the account's binds.
  s->smsc_down_since_ms = std::make_unique<std::atomic<std::uint64_t>[]>(config.smscs.size());
  s->metrics = std::make_unique<delivery_metrics[]>(shards);
  s->recovered.resize(shards);
  s->engines.assign(shards, nullptr);
  return s;
}

// ---------------------------------------------------------------------------
struct engine::impl {
  struct smsc_runtime;

  // Told when a delivery record's group is durable or failed.
  struct record_waiter final : spool::append_waiter {
    impl* self = nullptr;
    smsc_runtime* smsc = nullptr;  // null: no SMSC took the segment (no route)
    spool::record_type type = spool::record_type::submitted;
    segment_ref seg;
    std::string smsc_message_id;
    message_state state = message_state::submitted;
    std::uint32_t error = 0;
    credit_units refund = 0;
    smpp_bind* ack_bind = nullptr;  // a deliver_sm waiting for its deliver_sm_resp
    deliver_ticket ack_ticket = 0;
    spool::inbound_message inbound;
    void on_durable(bool ok) override {
      std::unique_ptr<record_waiter> owned(this);
      self->record_durable(*this, ok);
    }
  };

  // One SMSC account on its owning shard; hears its binds.
  struct smsc_runtime final : bind_listener {
    impl* self = nullptr;
    int index = 0;
    const smsc_config* config = nullptr;
    std::vector<std::unique_ptr<smpp_bind>> binds;
    std::vector<const smpp_bind*> up;  // binds bound now
    fair_queue queue;
    std::unordered_map<std::uint64_t, segment_ref> in_flight;  // by token
    receipt_matcher receipts;

    smsc_runtime(impl& owner, int i, const smsc_config& c)
        : self(&owner), index(i), config(&c), queue(owner.shared->backlog), receipts(c.receipt_ids) {}

    void on_bound(smpp_bind& b) override { self->bind_up(*this, b); }
    void on_unbound(smpp_bind& b, std::vector<std::uint64_t> outstanding) override {
      self->bind_lost(*this, b, std::move(outstanding));
    }
    void on_submit_resp(smpp_bind&, std::uint64_t token, std::uint32_t status, std::string_view id) override {
      self->submit_answered(*this, token, status, id);
    }
    void on_deliver_sm(smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) override {
      self->deliver_sm(*this, b, ticket, pdu);
    }
    void on_ready(smpp_bind&) override { self->pump(*this); }
  };

  struct retry {
    std::uint64_t due_ms = 0;
    int smsc = 0;  // -1: no route yet, routed again when due
    segment_ref seg;
    bool operator>(const retry& o) const { return due_ms > o.due_ms; }
  };

  struct tick_timer final : core::timer_node {
    impl* self = nullptr;
    void on_timer() override { self->tick(); }
  };

  core::shard& shard;
  std::shared_ptr<shared_state> shared;
  host& gateway;
  const gateway_config& config;
  delivery_metrics& metrics;
  router routes;
  std::vector<std::unique_ptr<smsc_runtime>> smscs;  // indexed like config.smscs; null when another shard owns it
  std::priority_queue<retry, std::vector<retry>, std::greater<>> retries;
  std::uint64_t next_token = 0;
  tick_timer timer;
  bool stopping = false;

  impl(core::shard& s, std::shared_ptr<shared_state> sh, host& h)
      : shard(s),
        shared(std::move(sh)),
        gateway(h),
        config(*shared->config),
        metrics(shared->metrics[s.id()]),
        routes(config, shared->smsc_down_since_ms.get()) {
    timer.self = this;
    smscs.resize(config.smscs.size());
    for (std::size_t i = 0; i < config.smscs.size(); ++i)
      if (shared->smsc_shard[i] == shard.id()) start_smsc(static_cast<int>(i));
    take_recovered();
    arm_tick();
  }

  ~impl() {
    if (timer.armed()) shard.timers().cancel(timer);
  }

  void start_smsc(int i) {
    auto s = std::make_unique<smsc_runtime>(*this, i, config.smscs[i]);
    bind_env env{&shard.ring(), &shard.timers(), [this] { return core::monotonic_ms(); }};
    for (unsigned b = 0; b < s->config->binds; ++b)
      s->binds.push_back(std::make_unique<smpp_bind>(env, *s->config, b, *s));
    smsc_runtime& ref = *s;
    smscs[i] = std::move(s);
    // Counted down from start: failover waits failover_after_s for a first bind.
    // (monotonic_ms: the shard's clock is not running yet during set-up.)
    routes.mark_down(i, core::monotonic_ms());
    for (auto& b : ref.binds) b->start();
  }

  // What start-up found in the journals for this shard: segments submitted
  // to one of its SMSCs wait for their receipt, the others are routed.
  void take_recovered() {
    std::vector<recovered_segment> work = std::move(shared->recovered[shard.id()]);
    std::vector<segment_ref> to_route;
    for (auto& r : work) {
      segment_ref seg{std::move(r.message), r.recipient, r.segment, 0};
      if (r.smsc >= 0 && smscs[r.smsc])
        smscs[r.smsc]->receipts.await(std::move(seg), std::move(r.smsc_message_id));
      else
        to_route.push_back(std::move(seg));
    }
    route_segments(std::move(to_route));
  }

  // --- routing (on any shard) -------------------------------------------
  void route_segments(std::vector<segment_ref> segments) {
    std::unordered_map<int, std::vector<segment_ref>> by_smsc;
    for (auto& seg : segments) {
      const int i = routes.choose(seg.number());
      if (i < 0) {
        // Routes are configured and none covers this number: nothing will
        // ever take it. A permanent failure, refunded.
        bump(metrics.permanent_errors);
        finalize(nullptr, std::move(seg), {}, message_state::rejected, smpp::status::invalid_dest_address, nullptr, 0);
        continue;
      }
      by_smsc[i].push_back(std::move(seg));
    }
    for (auto& [i, list] : by_smsc) post_segments(i, std::move(list));
  }

  void post_segments(int smsc, std::vector<segment_ref> segments) {
    auto* h = new handoff{shared.get(), smsc, std::move(segments)};
    shard.post<&impl::handoff_arrived>(shared->smsc_shard[smsc], {h});
  }

  static void handoff_arrived(core::shard& at, const handoff_mail& m) {
    std::unique_ptr<handoff> h(m.segments);
    engine* e = h->shared->engines[at.id()];
    if (e == nullptr) return;  // shutting down: the journal still has them
    smsc_runtime& s = *e->impl_->smscs[h->smsc];
    s.queue.admit(std::move(h->segments));
    e->impl_->pump(s);
  }

  // --- submitting ---------------------------------------------------------
  void pump(smsc_runtime& s) {
    if (stopping) return;
    for (auto& b : s.binds) {
      while (!s.queue.empty() && b->can_submit()) {
        segment_ref seg;
        if (!s.queue.pop(seg)) break;
        const std::uint64_t now = core::unix_ms();
        if (now >= seg.message->expires_unix_ms) {
          expire(s, std::move(seg));
          continue;
        }
        const std::uint64_t token = ++next_token;
        const smpp::short_message_pdu pdu = submit_pdu(*s.config, seg, now);
        s.in_flight.emplace(token, std::move(seg));
        b->submit(pdu, token);
        bump(metrics.submits);
      }
    }
  }

  void submit_answered(smsc_runtime& s, std::uint64_t token, std::uint32_t status, std::string_view id) {
    auto node = s.in_flight.extract(token);
    if (node.empty()) return;
    segment_ref seg = std::move(node.mapped());
    switch (smpp::classify(status)) {
      case smpp::error_class::ok:
        bump(metrics.submitted_ok);
        s.queue.settled();
        submitted(s, std::move(seg), std::string(id));
        break;
      case smpp::error_class::throttled:
        // The bind has slowed down already; the segment keeps its turn.
        bump(metrics.throttled);
        s.queue.push_front(std::move(seg));
        break;
      case smpp::error_class::temporary:
        bump(metrics.temporary_errors);
        retry_later(s, std::move(seg));
        break;
      case smpp::error_class::permanent:
        bump(metrics.permanent_errors);
        s.queue.settled();
        finalize(&s, std::move(seg), {}, message_state::rejected, status, nullptr, 0);
        break;
    }
    pump(s);
  }

  // --- retries and expiry ---------------------------------------------------
  void retry_later(smsc_runtime& s, segment_ref seg) {
    const std::uint64_t now = core::unix_ms();
    const unsigned shift = std::min<std::uint32_t>(seg.attempts, 20);
    const std::uint64_t delay =
        std::min<std::uint64_t>(std::uint64_t{config.delivery.retry_min_ms} << shift, config.delivery.retry_max_ms);
    ++seg.attempts;
    if (now + delay >= seg.message->expires_unix_ms) return expire(s, std::move(seg));
    retries.push({shard.now_ms() + delay, s.index, std::move(seg)});
    arm_tick();
  }

  void expire(smsc_runtime& s, segment_ref seg) {
    s.queue.settled();
    bump(metrics.expired);
    finalize(&s, std::move(seg), {}, message_state::expired, 0, nullptr, 0);
  }

  void run_due_retries(std::uint64_t now) {
    while (!retries.empty() && retries.top().due_ms <= now) {
      retry r = retries.top();
      retries.pop();
      if (r.smsc >= 0 && smscs[r.smsc]) {
        smscs[r.smsc]->queue.push_back(std::move(r.seg));
      } else {
        std::vector<segment_ref> again;
        again.push_back(std::move(r.seg));
        route_segments(std::move(again));
      }
    }
  }

  // --- receipts -------------------------------------------------------------
  void submitted(smsc_runtime& s, segment_ref seg, std::string id) {
    record_waiter& w = new_waiter(spool::record_type::submitted, &s);
    w.seg = seg;
    w.smsc_message_id = id;
    append(w);
    if (id.empty()) {
      std::fprintf(stderr, "postino: smsc %s: submit_sm_resp without a message id for %s: no receipt can match\n",
                   s.config->name.c_str(), seg.message->queue_id.c_str());
      return;
    }
    // A receipt that came first is applied now; the final record follows
    // the submitted one in the same journal, so it is never durable alone.
    if (std::optional<smpp::receipt> r = s.receipts.take_held(id)) {
      bump(metrics.receipts_matched);
      finalize(&s, std::move(seg), id, r->state, receipt_error(*r), nullptr, 0);
      return;
    }
    s.receipts.await(std::move(seg), std::move(id));
  }

  void deliver_sm(smsc_runtime& s, smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) {
    if (!smpp::is_receipt(pdu)) return store_inbound(s, b, ticket, pdu);
    bump(metrics.receipts);
    smpp::receipt r;
    if (!smpp::parse_receipt(pdu, r)) {
      std::fprintf(stderr, "postino: smsc %s: a receipt without an id or state: acknowledged and ignored\n",
                   b.name().c_str());
      bump(metrics.receipts_unmatched);
      return b.ack_deliver(ticket, smpp::status::ok);
    }
    if (!r.final) return b.ack_deliver(ticket, smpp::status::ok);
    if (std::optional<receipt_matcher::awaiting> a = s.receipts.match(r)) {
      bump(metrics.receipts_matched);
      // Acknowledged once its final record is durable: the SMSC keeps it until then.
      finalize(&s, std::move(a->seg), std::move(a->smsc_message_id), r.state, receipt_error(r), &b, ticket);
      return;
    }
    // Before its submit_sm_resp (or for a segment this process does not
    // know). Acknowledging it now is safe: a segment whose submitted record
    // is not durable is submitted again after a crash, and the SMSC sends a
    // receipt for that one.
    bump(metrics.receipts_held);
    s.receipts.hold(std::move(r), shard.now_ms() + config.delivery.receipt_hold_s * 1000ull);
    b.ack_deliver(ticket, smpp::status::ok);
  }

  void drop_held_receipts(smsc_runtime& s, std::uint64_t now) {
    for (const smpp::receipt& r : s.receipts.drop_expired(now)) {
      bump(metrics.receipts_unmatched);
      std::fprintf(stderr, "postino: smsc %s: receipt for unknown message id %s dropped after %u s\n",
                   s.config->name.c_str(), r.message_id.c_str(), config.delivery.receipt_hold_s);
    }
  }

  // --- binds coming and going -----------------------------------------------
  void bind_up(smsc_runtime& s, const smpp_bind& b) {
    s.up.push_back(&b);
    bump(metrics.binds_up);
    routes.mark_up(s.index);
    pump(s);
  }

  void bind_lost(smsc_runtime& s, smpp_bind& b, std::vector<std::uint64_t> outstanding) {
    auto was_up = std::find(s.up.begin(), s.up.end(), &b);
    if (was_up != s.up.end()) {
      s.up.erase(was_up);
      bump(metrics.binds_up, -1);
    }
    if (s.up.empty() && routes.up(s.index)) routes.mark_down(s.index, shard.now_ms());
    std::size_t again = 0;
    // Newest first onto the front, so they go out again in their old order.
    for (auto it = outstanding.rbegin(); it != outstanding.rend(); ++it) {
      auto node = s.in_flight.extract(*it);
      if (node.empty()) continue;
      s.queue.push_front(std::move(node.mapped()));
      ++again;
    }
    if (again > 0) {
      bump(metrics.resubmitted, again);
      std::fprintf(stderr,
                   "postino: smsc %s: %zu submit(s) were unanswered when the bind was lost; they are submitted "
                   "again and may reach the SMSC twice\n",
                   b.name().c_str(), again);
    }
    pump(s);
  }

  // An SMSC down for failover_after_s: its queued segments move to the next
  // SMSC of their route that is up (in-flight ones came back at the loss).
  void fail_over(smsc_runtime& s, std::uint64_t now) {
    if (s.queue.empty()) return;
    const std::optional<std::uint64_t> down_ms = routes.failover_due(s.index, now);
    if (!down_ms) return;
    fair_queue::moved_segments moved;
    const std::size_t count = s.queue.move_out(
        [&](const segment_ref& seg) { return routes.choose_instead_of(seg.number(), s.index); }, moved);
    if (count == 0) return;
    bump(metrics.failovers, count);
    std::fprintf(stderr, "postino: smsc %s: down for %llu s, %zu segment(s) moved to the next route\n",
                 s.config->name.c_str(), static_cast<unsigned long long>(*down_ms / 1000), count);
    for (auto& [to, list] : moved) post_segments(to, std::move(list));
  }

  // --- journal records --------------------------------------------------------
  record_waiter& new_waiter(spool::record_type type, smsc_runtime* s) {
    auto* w = new record_waiter;
    w->self = this;
    w->smsc = s;
    w->type = type;
    return *w;
  }

  void store_inbound(smsc_runtime& s, smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) {
    record_waiter& w = new_waiter(spool::record_type::inbound, &s);
    w.ack_bind = &b;
    w.ack_ticket = ticket;
    w.inbound.smsc = s.config->name;
    w.inbound.source = pdu.source.value;
    w.inbound.destination = pdu.destination.value;
    w.inbound.text = inbound_text(pdu);
    append(w);
  }

  // `s` may be null (no SMSC took it: no route). `ack_bind`: a receipt to
  // acknowledge once the record is durable.
  void finalize(smsc_runtime* s, segment_ref seg, std::string smsc_message_id, message_state state,
                std::uint32_t error, smpp_bind* ack_bind, deliver_ticket ack_ticket) {
    record_waiter& w = new_waiter(spool::record_type::delivery_final, s);
    w.state = state;
    w.error = error;
    w.refund = is_refunded(state) ? seg.unit_price() : 0;
    w.smsc_message_id = std::move(smsc_message_id);
    w.seg = std::move(seg);
    w.ack_bind = ack_bind;
    w.ack_ticket = ack_ticket;
    append(w);
  }

  static message_state recorded_state(const record_waiter& w) {
    return w.type == spool::record_type::submitted ? message_state::submitted : w.state;
  }
  static std::string smsc_name(const record_waiter& w) {
    return w.smsc != nullptr ? w.smsc->config->name : std::string();
  }

  // The journal's form of a delivery record: what append() writes and what
  // the message index folds once it is durable.
  static spool::delivery_event event_of(const record_waiter& w) {
    spool::delivery_event e;
    e.key = w.seg.key();
    e.recipient = w.seg.number();
    e.smsc = smsc_name(w);
    e.smsc_message_id = w.smsc_message_id;
    e.state = recorded_state(w);
    e.error = w.error;
    e.account = w.seg.account();
    e.refund = w.refund;
    return e;
  }

  void append(record_waiter& w) {
    spool::record r;
    if (w.type == spool::record_type::inbound)
      r.inbound = w.inbound;
    else
      r.delivery = event_of(w);
    spool::journal* j = gateway.journal();
    if (j == nullptr) return w.on_durable(false);
    j->append_delivery(w.type, r, &w);
  }

  void record_durable(record_waiter& w, bool ok) {
    if (w.type == spool::record_type::inbound) {
      if (ok) {
        bump(metrics.inbound);
        add_inbound_row(gateway.delta(), w.sequence, std::move(w.inbound), core::unix_ms());
      }
      // Not durable: the SMSC is told to try again.
      w.ack_bind->ack_deliver(w.ack_ticket, ok ? smpp::status::ok : smpp::status::system_error);
      return;
    }
    if (!ok) return record_failed(w);
    add_delivery_row(gateway.delta(), event_of(w), core::unix_ms());
    if (w.type == spool::record_type::submitted) return;
    bump(metrics.finals);
    if (w.refund > 0) {
      bump(metrics.refunds);
      bump(metrics.refunded_units, w.refund);
      gateway.refund_durable(w.seg.account(), w.refund);
    }
    if (w.ack_bind != nullptr) w.ack_bind->ack_deliver(w.ack_ticket, smpp::status::ok);
  }

  // The journal could not make a delivery record durable. A submitted
  // record lost only means a resubmission after a restart. A final one is
  // undone: a receipt is refused (the SMSC sends it again) and waits again;
  // any other final is retried later.
  void record_failed(record_waiter& w) {
    if (w.type == spool::record_type::submitted) return;
    if (w.ack_bind != nullptr) {
      w.ack_bind->ack_deliver(w.ack_ticket, smpp::status::system_error);
      if (w.smsc != nullptr) w.smsc->receipts.await(std::move(w.seg), std::move(w.smsc_message_id));
      return;
    }
    if (w.smsc == nullptr) {
      // No route: tried again later, never counted in the backlog.
      retries.push({shard.now_ms() + config.delivery.retry_min_ms, -1, std::move(w.seg)});
      return arm_tick();
    }
    w.smsc->queue.unsettled();
    retry_later(*w.smsc, std::move(w.seg));
  }

  // --- the periodic tick: retries, held receipts, failover --------------------
  static constexpr std::uint64_t tick_ms = 500;

  void arm_tick() {
    if (stopping) return;
    std::uint64_t delay = tick_ms;
    if (!retries.empty()) {
      const std::uint64_t due = retries.top().due_ms;
      delay = due > shard.now_ms() ? std::min(delay, due - shard.now_ms()) : 1;
    }
    if (timer.armed()) shard.timers().cancel(timer);
    shard.timers().schedule(timer, shard.now_ms(), delay);
  }

  void tick() {
    const std::uint64_t now = shard.now_ms();
    run_due_retries(now);
    for (auto& s : smscs) {
      if (!s) continue;
      drop_held_receipts(*s, now);
      fail_over(*s, now);
      pump(*s);
    }
    arm_tick();
  }

  // --- shutdown ------------------------------------------------------------------
  void stop() {
    if (stopping) return;
    stopping = true;
    if (timer.armed()) shard.timers().cancel(timer);
    for (auto& s : smscs)
      if (s)
        for (auto& b : s->binds) b->stop();
  }

  bool drained() const {
    for (const auto& s : smscs)
      if (s)
        for (const auto& b : s->binds)
          if (!b->stopped()) return false;
    return true;
  }
};

engine::engine(core::shard& shard, std::shared_ptr<shared_state> shared, host& h) {
  shared->engines[shard.id()] = this;
  impl_ = std::make_unique<impl>(shard, std::move(shared), h);
}

engine::~engine() {
  impl_->shared->engines[impl_->shard.id()] = nullptr;
}

void engine::hand_off(std::shared_ptr<const outbound_message> message) {
  std::vector<segment_ref> segments;
  const std::size_t recipients = message->source->recipients.size();
  segments.reserve(recipients * message->segments.size());
  for (std::uint32_t r = 0; r < recipients; ++r)
    for (std::uint32_t s = 0; s < message->segments.size(); ++s) segments.push_back({message, r, s, 0});
  impl_->route_segments(std::move(segments));
}

void engine::stop() { impl_->stop(); }
bool engine::drained() const { return impl_->drained(); }

}  // namespace postino::delivery
