// The gateway's answer to session requests, wired to the real components:
// AUTH through the per-shard credential cache and the Argon2id hash pool,
// credit at each account's home shard (mailbox round trip when that is
// another shard), commits debited at home and made durable in this shard's
// journal. Also used by the io tests, which run a real runtime.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "postino/account.h"
#include "postino/credit.h"
#include "postino/runtime.h"

namespace postino::app {

struct gateway_services {
  credit::hash_pool* pool = nullptr;  // shared by all shards, outlives their threads
  std::string database;               // workers open their own account_store on it
  // Starting balances, indexed by home shard (credit::home_shard).
  std::vector<std::vector<std::pair<account_id, credit_units>>> balances;
};

core::runtime::handler_factory make_gateway_handlers(std::shared_ptr<const gateway_services> services);

}  // namespace postino::app
