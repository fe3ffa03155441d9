// A home shard's in-memory balances. The journal is the truth and the SQLite
// column only a checkpoint; this table is what the shard debits against, so
// it is single-threaded and lock-free by ownership. Holds no buffers.
#include <algorithm>
#include <limits>

#include "postino/credit.h"

namespace postino::credit {

void ledger::set_balance(account_id id, credit_units balance) { balances_[id] = balance; }

credit_units ledger::available(account_id id) const {
  auto it = balances_.find(id);
  return it == balances_.end() ? 0 : it->second;
}

bool ledger::try_debit(account_id id, credit_units amount) {
  if (amount < 0) return false;  // a negative debit would be a hidden credit
  auto it = balances_.find(id);
  if (it == balances_.end() || it->second < amount) return false;
  it->second -= amount;
  return true;
}

void ledger::credit(account_id id, credit_units amount) {
  credit_units& balance = balances_[id];
  // Like the lease authority: never past max_balance, and an overflowing
  // sum (a corrupted input) saturates instead of wrapping.
  if (__builtin_add_overflow(balance, amount, &balance))
    balance = amount > 0 ? std::numeric_limits<credit_units>::max()
                         : std::numeric_limits<credit_units>::min();
  balance = std::min(balance, max_balance);
}

}  // namespace postino::credit
