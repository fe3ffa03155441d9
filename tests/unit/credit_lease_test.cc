// Tests for credit leases (src/credit/lease.cc) as pure code: a home
// lease_authority and one lease_wallet per shard, connected by a simulated
// mailbox matrix that is FIFO per (sender, receiver) pair and nothing more,
// as the shard mailboxes are. Scenarios pin the protocol (grants, adaptive
// sizing, recalls before refusals, restated needs, idle returns, failed
// commits); a randomized run checks the account-level promise thousands of
// times: the balance never goes negative and, once every spender has been
// refused, what is left is smaller than the smallest refused price.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <variant>

#include "postino/credit.h"

namespace postino::credit {
namespace {

using use = lease_wallet::use;

// N shards; shard `home` hosts the authority for every account here.
class network {
 public:
  struct envelope {
    std::variant<lease_request, lease_answer, lease_report, account_id /* recall */> body;
  };

  network(unsigned shards, unsigned home = 0) : home_(home), authority_(shards), queues_(shards * shards) {
    for (unsigned s = 0; s < shards; ++s) wallets_.emplace_back(s);
    shards_ = shards;
  }

  lease_authority& authority() { return authority_; }
  lease_wallet& wallet(unsigned s) { return wallets_[s]; }
  std::vector<lease_wallet::result>& results(unsigned s) { return results_[s]; }

  // Shard `s` asks for `amount`; the result lands in results(s) (at once or later).
  void ask(unsigned s, account_id id, use kind, credit_units amount, void* token) {
    credit_units available = 0;
    if (wallets_[s].try_take(id, kind, amount, now_, available)) {
      results_[s].push_back({token, kind, true, amount, available});
      return;
    }
    lease_wallet::outbox out;
    wallets_[s].wait(id, {token, kind, amount}, now_, out);
    ship(s, out);
  }
  void settle(unsigned s, account_id id, credit_units amount, bool durable) {
    lease_wallet::outbox out;
    wallets_[s].settle(id, amount, durable, now_, out);
    ship(s, out);
  }
  void flush(unsigned s) {
    lease_wallet::outbox out;
    wallets_[s].flush(out);
    ship(s, out);
  }
  void tick(unsigned s) {
    lease_wallet::outbox out;
    wallets_[s].tick(now_, out);
    ship(s, out);
  }
  void advance(std::uint64_t ms) { now_ += ms; }

  bool idle() const {
    for (const auto& q : queues_)
      if (!q.empty()) return false;
    return true;
  }
  // Delivers one message from a random non-empty queue; false when none.
  bool deliver_one(std::mt19937& rng) {
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < queues_.size(); ++i)
      if (!queues_[i].empty()) ready.push_back(i);
    if (ready.empty()) return false;
    deliver(ready[rng() % ready.size()]);
    return true;
  }
  void deliver_all() {
    for (bool any = true; any;) {
      any = false;
      for (std::size_t i = 0; i < queues_.size(); ++i)
        while (!queues_[i].empty()) {
          deliver(i);
          any = true;
        }
    }
  }
  std::size_t recalls_sent() const { return recalls_; }
  bool deliver_queue(unsigned from, unsigned to) {
    std::size_t q = from * shards_ + to;
    if (queues_[q].empty()) return false;
    deliver(q);
    return true;
  }

 private:
  void push(unsigned from, unsigned to, envelope e) { queues_[from * shards_ + to].push_back(std::move(e)); }

  void ship(unsigned from, lease_wallet::outbox& out) {
    for (auto& r : out.requests) push(from, home_, {r});
    for (auto& r : out.reports) push(from, home_, {r});
    for (auto& r : out.results) results_[from].push_back(r);
  }
  void ship_home(lease_authority::outbox& out) {
    for (auto& [to, a] : out.answers) push(home_, to, {a});
    for (auto& [to, id] : out.recalls) {
      push(home_, to, {id});
      ++recalls_;
    }
  }

  void deliver(std::size_t q) {
    envelope e = std::move(queues_[q].front());
    queues_[q].pop_front();
    unsigned to = static_cast<unsigned>(q % shards_);
    if (std::getenv("LEASE_TRACE")) trace(static_cast<unsigned>(q / shards_), to, e);
    if (auto* r = std::get_if<lease_request>(&e.body)) {
      lease_authority::outbox out;
      authority_.on_request(*r, out);
      ship_home(out);
    } else if (auto* rep = std::get_if<lease_report>(&e.body)) {
      lease_authority::outbox out;
      authority_.on_report(*rep, out);
      ship_home(out);
    } else if (auto* a = std::get_if<lease_answer>(&e.body)) {
      lease_wallet::outbox out;
      wallets_[to].on_answer(*a, now_, out);
      ship(to, out);
    } else {
      lease_wallet::outbox out;
      wallets_[to].on_recall(std::get<account_id>(e.body), out);
      ship(to, out);
    }
  }

  static void trace(unsigned from, unsigned to, const envelope& e) {
    if (auto* r = std::get_if<lease_request>(&e.body))
      std::printf("%u->%u request %s need %lld want %lld\n", from, to,
                  r->what == lease_request::kind::check ? "check" : "grant", (long long)r->need, (long long)r->want);
    else if (auto* p = std::get_if<lease_report>(&e.body))
      std::printf("%u->%u report spent %lld returned %lld recall %d need %lld\n", from, to, (long long)p->spent,
                  (long long)p->returned, p->recall_answer, (long long)p->need);
    else if (auto* a = std::get_if<lease_answer>(&e.body))
      std::printf("%u->%u answer refused %d granted %lld unleased %lld\n", from, to, a->refused,
                  (long long)a->granted, (long long)a->unleased);
    else
      std::printf("%u->%u recall\n", from, to);
  }

  unsigned home_;
  unsigned shards_ = 0;
  lease_authority authority_;
  std::vector<lease_wallet> wallets_;
  std::vector<std::deque<envelope>> queues_;
  std::map<unsigned, std::vector<lease_wallet::result>> results_;
  std::uint64_t now_ = 1000;
  std::size_t recalls_ = 0;
};

int token_storage[16];
void* token(int i) { return &token_storage[i]; }

TEST(credit_lease, a_debit_waits_for_a_grant_then_the_lease_serves_locally) {
  network net(2);
  net.authority().set_balance(7, 100);
  net.ask(1, 7, use::debit, 3, token(0));
  EXPECT_TRUE(net.results(1).empty()) << "no lease yet: the session waits";
  net.deliver_all();
  ASSERT_EQ(net.results(1).size(), 1u);
  EXPECT_TRUE(net.results(1)[0].ok);
  EXPECT_EQ(net.wallet(1).in_flight(7), 3);
  // The first grant is exactly the need: no spend rate is known yet.
  EXPECT_EQ(net.wallet(1).lease(7), 0);
  EXPECT_EQ(net.authority().unleased(7), 97);
  EXPECT_EQ(net.authority().balance(7), 100) << "in flight is not spent yet";
  net.settle(1, 7, 3, true);
  net.flush(1);
  net.deliver_all();
  EXPECT_EQ(net.authority().balance(7), 97);
  EXPECT_EQ(net.authority().unleased(7), 97);
  EXPECT_EQ(net.authority().view(7).messages, 1u);
}

TEST(credit_lease, grants_grow_with_the_spend_rate) {
  network net(2);
  net.authority().set_balance(7, 1'000'000);
  credit_units last_lease = 0;
  int grants = 0;
  for (int i = 0; i < 2000; ++i) {
    net.advance(1);  // one unit per millisecond: 1000 units a second
    std::size_t before = net.results(1).size();
    net.ask(1, 7, use::debit, 1, token(0));
    if (net.results(1).size() == before) {
      ++grants;
      net.deliver_all();
    }
    ASSERT_EQ(net.results(1).size(), before + 1);
    last_lease = std::max(last_lease, net.wallet(1).lease(7));
  }
  // 250 ms at 1000 units/s: leases of a couple of hundred units, so far
  // fewer round trips than debits.
  EXPECT_GT(last_lease, 100);
  EXPECT_LT(grants, 100);
}

TEST(credit_lease, a_share_is_left_for_other_shards) {
  network net(4);
  net.authority().set_balance(7, 1000);
  lease_authority::outbox out;
  net.authority().on_request({7, 2, lease_request::kind::grant, 10, 100000}, out);
  ASSERT_EQ(out.answers.size(), 1u);
  EXPECT_EQ(out.answers[0].second.granted, 10 + (1000 - 10) / 4);
}

TEST(credit_lease, the_home_recalls_other_leases_before_it_refuses) {
  network net(3);
  net.authority().set_balance(7, 20);
  // Shard 1 spends a little at a high rate and holds a big lease.
  for (int i = 0; i < 5; ++i) {
    net.ask(1, 7, use::debit, 1, token(0));
    net.deliver_all();
  }
  net.advance(1);
  net.ask(1, 7, use::debit, 1, token(0));
  net.deliver_all();
  const credit_units held = net.wallet(1).lease(7);
  ASSERT_GT(held, 0);
  // Shard 2 needs more than is unleased: the lease on shard 1 comes home first.
  const credit_units unleased = net.authority().unleased(7);
  net.ask(2, 7, use::debit, unleased + 1, token(1));
  net.deliver_all();
  EXPECT_GE(net.recalls_sent(), 1u);
  ASSERT_EQ(net.results(2).size(), 1u);
  EXPECT_TRUE(net.results(2)[0].ok) << "the account as a whole could pay";
  EXPECT_EQ(net.wallet(1).lease(7), 0);
}

TEST(credit_lease, a_refusal_names_the_account_wide_available_credit) {
  network net(3);
  net.authority().set_balance(7, 10);
  net.ask(1, 7, use::debit, 4, token(0));
  net.deliver_all();
  net.settle(1, 7, 4, true);
  net.flush(1);
  net.deliver_all();
  net.ask(2, 7, use::debit, 7, token(1));
  net.deliver_all();
  ASSERT_EQ(net.results(2).size(), 1u);
  EXPECT_FALSE(net.results(2)[0].ok);
  EXPECT_EQ(net.results(2)[0].available, 6);
  // A smaller debit on the same shard still goes through.
  net.ask(2, 7, use::debit, 6, token(2));
  net.deliver_all();
  ASSERT_EQ(net.results(2).size(), 2u);
  EXPECT_TRUE(net.results(2)[1].ok);
  net.ask(0, 7, use::check, 1, token(3));
  net.deliver_all();
  ASSERT_EQ(net.results(0).size(), 1u);
  EXPECT_FALSE(net.results(0)[0].ok);
  EXPECT_EQ(net.results(0)[0].available, 0);
}

TEST(credit_lease, a_check_takes_no_lease) {
  network net(2);
  net.authority().set_balance(7, 5);
  net.ask(1, 7, use::check, 5, token(0));
  net.deliver_all();
  ASSERT_EQ(net.results(1).size(), 1u);
  EXPECT_TRUE(net.results(1)[0].ok);
  EXPECT_EQ(net.results(1)[0].available, 5);
  EXPECT_EQ(net.wallet(1).lease(7), 0);
  EXPECT_EQ(net.authority().unleased(7), 5);
}

TEST(credit_lease, a_recalled_shard_restates_its_queued_need) {
  // Shard 1 holds a lease of 3 and asks for 1 more for a debit of 4 while a
  // recall round (started by shard 2) runs. The recall takes its 3 home, so
  // its queued need is 4 now. Had the home granted the stale 1, shard 1 would
  // sit on it and shard 0's debit of 2 would be refused although the account
  // still had 2 after shard 2's 5.
  network net(3);
  net.authority().set_balance(7, 7);
  net.ask(1, 7, use::debit, 3, token(0));
  net.deliver_all();
  ASSERT_TRUE(net.results(1).at(0).ok);
  net.settle(1, 7, 3, false);  // that commit failed: 3 back in shard 1's lease
  ASSERT_EQ(net.wallet(1).lease(7), 3);
  net.ask(2, 7, use::debit, 5, token(1));
  ASSERT_TRUE(net.deliver_queue(2, 0));  // 5 > unleased 4: recall shard 1
  net.ask(1, 7, use::debit, 4, token(2));
  ASSERT_TRUE(net.deliver_queue(1, 0));  // queued behind the round, need 1
  net.ask(0, 7, use::debit, 2, token(3));
  ASSERT_TRUE(net.deliver_queue(0, 0));  // queued too
  ASSERT_TRUE(net.deliver_queue(0, 1));  // the recall: 3 go home, need restated as 4
  net.deliver_all();
  ASSERT_EQ(net.results(2).size(), 1u);
  EXPECT_TRUE(net.results(2)[0].ok);
  ASSERT_EQ(net.results(1).size(), 2u);
  EXPECT_FALSE(net.results(1)[1].ok);
  EXPECT_EQ(net.results(1)[1].available, 2);
  ASSERT_EQ(net.results(0).size(), 1u);
  EXPECT_TRUE(net.results(0)[0].ok);
}

TEST(credit_lease, an_idle_lease_goes_home) {
  network net(2);
  net.authority().set_balance(7, 1000);
  for (int i = 0; i < 50; ++i) {
    net.advance(1);
    net.ask(1, 7, use::debit, 1, token(0));
    net.deliver_all();
    net.settle(1, 7, 1, true);
  }
  net.flush(1);
  net.deliver_all();
  ASSERT_GT(net.wallet(1).lease(7), 0);
  net.advance(500);
  net.tick(1);
  EXPECT_GT(net.wallet(1).lease(7), 0) << "not idle long enough";
  net.advance(600);
  net.tick(1);
  net.deliver_all();
  EXPECT_EQ(net.wallet(1).lease(7), 0);
  EXPECT_TRUE(net.wallet(1).idle());
  EXPECT_EQ(net.authority().view(7).leased, 0);
  EXPECT_EQ(net.authority().balance(7), 950);
}

TEST(credit_lease, a_failed_commit_gives_its_debit_back_to_the_lease) {
  network net(2);
  net.authority().set_balance(7, 3);
  net.ask(1, 7, use::debit, 3, token(0));
  net.deliver_all();
  ASSERT_TRUE(net.results(1).at(0).ok);
  net.settle(1, 7, 3, false);
  EXPECT_EQ(net.wallet(1).lease(7), 3);
  net.ask(0, 7, use::debit, 3, token(1));
  net.deliver_all();
  ASSERT_EQ(net.results(0).size(), 1u);
  EXPECT_TRUE(net.results(0)[0].ok) << "recalled from shard 1";
}

// Hostile and saturated values: the balance never passes max_balance, a
// price that saturated at the int64 maximum is refused like any price the
// account cannot pay, and a want near the int64 limits grants no more than
// the free credit.
TEST(credit_lease, credit_stops_at_the_maximum_balance) {
  network net(2);
  lease_authority::outbox out;
  net.authority().set_balance(1, 10);
  // What the balance gained is returned, so the checkpoint records that.
  EXPECT_EQ(net.authority().credit(1, std::numeric_limits<credit_units>::max(), out), max_balance - 10);
  EXPECT_EQ(net.authority().balance(1), max_balance);
  EXPECT_EQ(net.authority().credit(1, 5'000'000'000'000'000'000, out), 0);
  net.authority().credit(1, 5'000'000'000'000'000'000, out);
  EXPECT_EQ(net.authority().balance(1), max_balance);
  EXPECT_EQ(net.authority().credit(1, -5, out), -5);
  EXPECT_EQ(net.authority().credit(1, 5, out), 5);
  net.authority().credit(1, std::numeric_limits<credit_units>::min(), out);
  EXPECT_EQ(net.authority().balance(1), 0) << "a correction takes back at most the unleased credit";
  net.authority().set_balance(2, max_balance);
  net.authority().credit(2, 1, out);
  EXPECT_EQ(net.authority().balance(2), max_balance);
}

TEST(credit_lease, saturated_prices_and_hostile_wants_stay_within_the_balance) {
  network net(2);
  net.authority().set_balance(3, max_balance);
  net.ask(1, 3, use::debit, std::numeric_limits<credit_units>::max(), token(0));
  net.ask(1, 3, use::check, std::numeric_limits<credit_units>::max(), token(1));
  net.deliver_all();
  ASSERT_EQ(net.results(1).size(), 2u);
  EXPECT_FALSE(net.results(1)[0].ok);
  EXPECT_EQ(net.results(1)[0].available, max_balance);
  EXPECT_FALSE(net.results(1)[1].ok);

  lease_authority::outbox out;
  for (credit_units want : {std::numeric_limits<credit_units>::max(), std::numeric_limits<credit_units>::min()}) {
    net.authority().on_request({3, 0, lease_request::kind::grant, 10, want}, out);
    ASSERT_FALSE(out.answers.empty());
    EXPECT_FALSE(out.answers.back().second.refused);
    EXPECT_GE(out.answers.back().second.granted, 10);
    EXPECT_LE(net.authority().view(3).leased, max_balance);
  }
  const auto v = net.authority().view(3);
  EXPECT_LE(v.leased, v.balance);
}

TEST(credit_lease_death, a_balance_outside_the_range_is_a_bug_of_ours) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  lease_authority home(2);
  EXPECT_DEATH(home.set_balance(1, -1), "balance set outside 0..max_balance");
  EXPECT_DEATH(home.set_balance(1, max_balance + 1), "balance set outside 0..max_balance");
  lease_authority::outbox out;
  home.set_balance(1, 100);
  home.on_request({1, 1, lease_request::kind::grant, 50, 50}, out);
  ASSERT_EQ(out.answers.size(), 1u);
  lease_report hostile{1, 1, std::numeric_limits<credit_units>::max(), std::numeric_limits<credit_units>::max()};
  EXPECT_DEATH(home.on_report(hostile, out), "reported more than it was granted");
}

TEST(credit_lease, unknown_accounts_have_nothing) {
  network net(2);
  net.ask(1, 99, use::check, 1, token(0));
  net.ask(0, 99, use::debit, 1, token(1));
  net.deliver_all();
  ASSERT_EQ(net.results(1).size(), 1u);
  EXPECT_FALSE(net.results(1)[0].ok);
  ASSERT_EQ(net.results(0).size(), 1u);
  EXPECT_FALSE(net.results(0)[0].ok);
  credit_units available = -1;
  EXPECT_TRUE(net.wallet(1).try_take(99, use::debit, 0, 0, available)) << "a free message costs nothing";
}

// Spenders on every shard debit random prices until each is refused, with
// commits settling at random times, idle ticks and random delivery order.
void run_spenders(unsigned seed, bool failures) {
  {
    std::mt19937 rng(seed);
    const unsigned shards = 1 + rng() % 4;
    const unsigned spenders_per_shard = 1 + rng() % 3;
    const credit_units balance = 1 + rng() % 200;
    network net(shards, rng() % shards);
    net.authority().set_balance(1, balance);

    struct spender {
      unsigned shard;
      credit_units price = 0;   // of the pending request
      bool waiting = false;
      bool refused = false;
      use kind = use::debit;
    };
    std::vector<spender> spenders;
    for (unsigned s = 0; s < shards; ++s)
      for (unsigned k = 0; k < spenders_per_shard; ++k) spenders.push_back({s});
    std::vector<std::pair<unsigned, credit_units>> in_flight;  // (shard, amount)
    credit_units debited = 0;
    credit_units smallest_refused = std::numeric_limits<credit_units>::max();
    std::map<unsigned, std::size_t> seen;  // results consumed per shard

    auto consume = [&] {
      for (unsigned s = 0; s < shards; ++s) {
        auto& rs = net.results(s);
        for (; seen[s] < rs.size(); ++seen[s]) {
          const auto& r = rs[seen[s]];
          auto* sp = static_cast<spender*>(r.token);
          if (std::getenv("LEASE_TRACE"))
            std::printf("  shard %u result %s %s %lld available %lld\n", s, r.kind == use::check ? "check" : "debit",
                        r.ok ? "ok" : "REFUSED", (long long)r.amount, (long long)r.available);
          sp->waiting = false;
          if (!r.ok) {
            EXPECT_LT(r.available, r.amount) << "seed " << seed;
            sp->refused = true;
            smallest_refused = std::min(smallest_refused, r.amount);
          } else if (r.kind == use::debit) {
            debited += r.amount;
            in_flight.emplace_back(sp->shard, r.amount);
          }
        }
      }
    };

    for (int step = 0; step < 20000; ++step) {
      consume();
      ASSERT_LE(debited, balance) << "seed " << seed;
      bool all_done = true;
      for (auto& sp : spenders) all_done = all_done && sp.refused;
      if (all_done && in_flight.empty() && net.idle()) break;
      switch (rng() % 8) {
        case 0:
        case 1: {  // a spender asks
          auto& sp = spenders[rng() % spenders.size()];
          if (sp.waiting || sp.refused) break;
          sp.waiting = true;
          sp.kind = rng() % 3 == 0 ? use::check : use::debit;
          sp.price = sp.kind == use::check ? 1 : 1 + rng() % 6;
          net.ask(sp.shard, 1, sp.kind, sp.price, &sp);
          break;
        }
        case 2:  // a commit settles (rarely it fails)
          if (!in_flight.empty()) {
            std::size_t i = rng() % in_flight.size();
            auto [s, amount] = in_flight[i];
            in_flight.erase(in_flight.begin() + static_cast<long>(i));
            bool durable = !failures || rng() % 10 != 0;
            if (!durable) debited -= amount;
            net.settle(s, 1, amount, durable);
          }
          break;
        case 3:
          net.flush(rng() % shards);
          break;
        case 4:
          net.advance(rng() % 400);
          net.tick(rng() % shards);
          break;
        default:
          net.deliver_one(rng);
      }
    }
    consume();
    for (auto& sp : spenders) ASSERT_TRUE(sp.refused) << "seed " << seed << ": a spender never finished";
    const credit_units left = balance - debited;
    EXPECT_GE(left, 0) << "seed " << seed;
    // A failed commit gives credit back after others were refused, so the
    // bound holds only when every commit is durable.
    if (!failures) {
      EXPECT_LT(left, smallest_refused) << "seed " << seed << ": refused " << smallest_refused
                                        << " while " << left << " was left";
    }
    // Quiesce: every debit reported, every lease home.
    for (unsigned s = 0; s < shards; ++s) net.flush(s);
    net.advance(5000);
    for (unsigned s = 0; s < shards; ++s) net.tick(s);
    net.deliver_all();
    EXPECT_EQ(net.authority().balance(1), left) << "seed " << seed;
    EXPECT_EQ(net.authority().view(1).leased, 0) << "seed " << seed;
  }
}

TEST(credit_lease, randomized_spenders_never_overspend_and_refuse_only_when_the_account_cannot_pay) {
  unsigned first = 1, last = 400;
  if (const char* only = std::getenv("LEASE_SEED")) first = last = static_cast<unsigned>(std::atoi(only));
  for (unsigned seed = first; seed <= last; ++seed) {
    run_spenders(seed, false);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

TEST(credit_lease, randomized_spenders_with_failed_commits_never_overspend) {
  for (unsigned seed = 1000; seed <= 1200; ++seed) {
    run_spenders(seed, true);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

// Which shard is an account's home (once tested beside the removed ledger).
TEST(home_shard, is_stable_and_in_range) {
  for (account_id id = 0; id < 100; ++id) {
    EXPECT_LT(home_shard(id, 3), 3u);
    EXPECT_EQ(home_shard(id, 3), home_shard(id, 3));
  }
  EXPECT_EQ(home_shard(7, 1), 0u);
}

}  // namespace
}  // namespace postino::credit
