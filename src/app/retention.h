// Journal retention (DESIGN.md "Retention"), run by the checkpoint thread
// after each checkpoint it wrote, so disk use and restart time follow the
// backlog rather than the history. A segment older than its journal's
// newest may go once the checkpoint covers it (every record of it is folded
// into postino.db: balances, the message index, delivery rows) and no
// message it holds is still open, as the message index says. The records of
// open messages are first carried forward: the journal's own shard appends
// a copy of each (a `carried` record) and the segment is deleted once all
// are durable. Carrying costs a rewrite, so a segment is carried only when
// at most half of its bytes are open messages; a fuller one is looked at
// again later, each wait twice the last. A segment that names in delivery
// records a message the index does not hold yet waits too: start-up must
// find those records while their message is not covered. A kept segment is
// read again only once enough delivery finals were folded (anywhere) for it
// to pass, and not before a wait that doubles each time, up to a minute: a
// backlog of open messages costs no re-reading while nothing moves.
// State: this object's, on the checkpoint thread; the shards' answers come
// back through a mutex-guarded list shared with the closures it posts.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "postino/credit.h"
#include "postino/runtime.h"

namespace postino::app {

class journal_retention {
 public:
  // `evaluate` false: segments are only counted (without an SMSC nothing
  // ever becomes final, so reading them would find nothing to delete).
  journal_retention(core::runtime& rt, std::string data_dir, unsigned node_id, bool evaluate,
                    std::uint64_t first_wait_ms);

  // After a checkpoint covering `positions` (per shard) was written to
  // `index`; `finals` counts the delivery_final rows folded so far.
  void run(const std::vector<std::uint64_t>& positions, std::uint64_t finals, credit::checkpoint_store& index);
  static constexpr std::uint64_t longest_wait_ms = 60'000;

 private:
  struct carried_answer {
    unsigned shard = 0;
    std::uint64_t segment = 0;
    bool ok = false;
  };
  struct answers {
    std::mutex mutex;
    std::vector<carried_answer> list;
  };
  struct wait {
    std::uint64_t due_ms = 0;
    std::uint64_t delay_ms = 0;
    std::uint64_t finals_due = 0;  // read again once `finals_` reaches this
  };
  enum class verdict { keep, carry, deleted };

  void take_answers();
  void run_journal(unsigned shard, std::uint64_t position, credit::checkpoint_store& index);
  // `finals_needed`: for a kept segment, how many more messages must become
  // final before reading it again can change the verdict.
  verdict evaluate(unsigned shard, const std::vector<std::uint64_t>& names, std::size_t at,
                   credit::checkpoint_store& index, std::uint64_t& finals_needed);
  bool delete_segment(unsigned shard, std::uint64_t name);
  void postpone(unsigned shard, std::uint64_t name, std::uint64_t finals_needed);
  std::string dir_of(unsigned shard) const;

  core::runtime& rt_;
  std::string data_dir_;
  unsigned node_;
  bool evaluate_;
  std::uint64_t first_wait_ms_;
  std::shared_ptr<answers> answers_ = std::make_shared<answers>();
  std::map<std::pair<unsigned, std::uint64_t>, wait> waits_;  // segments kept for now
  std::set<std::pair<unsigned, std::uint64_t>> carrying_;  // asked, not answered yet
  std::uint64_t finals_ = 0;
  bool failing_ = false;
};

}  // namespace postino::app
