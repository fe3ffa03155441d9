// Relay rules (PROTOCOL.md 5a): parsing and canonical forms of the CIDR
// networks and sender domains an account relays for, and relay_directory,
// the in-memory table a relay listener's MAIL is looked up in. Parsing works
// on the caller's views; a directory owns copies of everything it holds and
// is immutable once loaded, so shards share it through a shared_ptr.
#include "postino/ascii.h"
#include "postino/credit.h"

namespace postino::credit {
namespace {

// A DNS name: labels of letters, digits and '-', 1 to 63 octets, 253 in all.
bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '.') {
      if (label == 0 || label > 63 || d[i - 1] == '-' || d[i - label] == '-') return false;
      label = 0;
      continue;
    }
    const char c = d[i];
    if (!is_digit(c) && (ascii_lower(c) < 'a' || ascii_lower(c) > 'z') && c != '-') return false;
    ++label;
  }
  return true;
}

}  // namespace

bool canonical_networks(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why) {
  out.clear();
  for (const std::string& item : in) {
    auto n = parse_network(item, why);
    if (!n) return false;
    out.push_back(network_text(*n));
  }
  return true;
}

bool canonical_domains(const std::vector<std::string>& in, std::vector<std::string>& out, std::string& why) {
  out.clear();
  for (const std::string& item : in) {
    if (!valid_domain(item)) {
      why = "'" + item + "' is not a domain name";
      return false;
    }
    out.push_back(to_lower(item));
  }
  return true;
}

std::shared_ptr<const relay_directory> relay_directory::load(account_store& store, std::string& error) {
  auto rules = store.list_relays();
  if (!store.last_error().empty()) {
    error = store.last_error();
    return nullptr;
  }
  auto d = std::make_shared<relay_directory>();
  for (relay_rule& rule : rules) {
    auto account = store.find_by_id(rule.account);
    if (!account) {
      if (!store.last_error().empty()) {
        error = store.last_error();
        return nullptr;
      }
      continue;  // removed meanwhile: its rule went with it
    }
    entry e;
    std::string why;
    for (const std::string& text : rule.networks)
      if (auto n = parse_network(text, why)) e.networks.push_back(*n);  // stored canonical: always parses
    e.domains = std::move(rule.domains);
    e.account = std::move(account->settings);
    d->entries_.push_back(std::move(e));
  }
  return d;
}

const account_settings* relay_directory::find(std::string_view ip, std::string_view domain) const {
  const entry* best = nullptr;
  int best_prefix = -1;
  for (const entry& e : entries_) {
    bool domain_ok = false;
    for (const std::string& d : e.domains) domain_ok = domain_ok || iequals(d, domain);
    if (!domain_ok) continue;
    for (const ip_network& n : e.networks)
      if (n.prefix > best_prefix && network_contains(n, ip)) {
        best = &e;
        best_prefix = n.prefix;
      }
  }
  return best != nullptr ? &best->account : nullptr;
}

}  // namespace postino::credit
