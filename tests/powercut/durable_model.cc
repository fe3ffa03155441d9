// The power-cut filesystem's durability model (see durable_model.h). Copies
// go through one 64 KiB local buffer per call; a chunk of zeros past the
// destination's old end is skipped, so preallocated segments stay sparse in
// the store and a fsync copies only what was written since the last one.
#include "durable_model.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

namespace powercut {
namespace {

namespace fs = std::filesystem;

bool failed(std::string& error, const std::string& what) {
  error = what + ": " + std::strerror(errno);
  return false;
}

// Closes a descriptor when the scope ends.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

bool all_zero(const char* p, std::size_t n) {
  return std::all_of(p, p + n, [](char c) { return c == 0; });
}

// Copies [from, to) of `in` to the same offsets of `out`, stopping early at
// the end of `in`. Chunks of zeros at or past `zeros_from` (where `out`
// already reads zeros) are not written.
bool copy_bytes(int in, int out, std::uint64_t from, std::uint64_t to, std::uint64_t zeros_from,
                std::string& error) {
  std::vector<char> buf(64 * 1024);
  while (from < to) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - from));
    ssize_t n = ::pread(in, buf.data(), want, static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed(error, "read");
    if (n == 0) break;
    const auto got = static_cast<std::size_t>(n);
    if (!(from >= zeros_from && all_zero(buf.data(), got))) {
      for (std::size_t done = 0; done < got;) {
        ssize_t w = ::pwrite(out, buf.data() + done, got - done, static_cast<off_t>(from + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return failed(error, "write");
        done += static_cast<std::size_t>(w);
      }
    }
    from += got;
  }
  return true;
}

std::uint64_t size_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// A whole file, sparse where it is zeros, with `mode`.
bool copy_file(const std::string& src, const std::string& dst, mode_t mode, std::string& error) {
  fd_guard in{::open(src.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return failed(error, src + ": open");
  fd_guard out{::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)};
  if (out.fd < 0) return failed(error, dst + ": create");
  const std::uint64_t size = size_of(in.fd);
  if (!copy_bytes(in.fd, out.fd, 0, size, 0, error)) {
    error = src + " -> " + dst + ": " + error;
    return false;
  }
  if (::ftruncate(out.fd, static_cast<off_t>(size)) != 0) return failed(error, dst + ": truncate");
  if (::fchmod(out.fd, mode) != 0) return failed(error, dst + ": chmod");
  return true;
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

}  // namespace

void ranges::add(std::uint64_t from, std::uint64_t to) {
  if (to <= from) return;
  auto it = spans_.upper_bound(from);
  if (it != spans_.begin() && std::prev(it)->second >= from) {
    --it;
    from = it->first;
    to = std::max(to, it->second);
    it = spans_.erase(it);
  }
  while (it != spans_.end() && it->first <= to) {
    to = std::max(to, it->second);
    it = spans_.erase(it);
  }
  spans_.emplace(from, to);
}

std::string drop_report::text() const {
  return "unsynced_bytes " + std::to_string(unsynced_bytes) + "\ntorn_kept_bytes " + std::to_string(torn_kept_bytes) +
         "\ndirty_files " + std::to_string(dirty_files) + "\nreverted_entries " + std::to_string(reverted_entries) +
         "\n";
}

model::model(std::string backing, std::string store) : backing_(std::move(backing)), store_(std::move(store)) {
  nodes_[root_id].dir = true;
  nodes_[root_id].mode = 0755;
  current_[root_id];
  durable_[root_id];
}

node_id model::add_node(bool dir, mode_t mode) {
  node_id id = next_id_++;
  nodes_[id].dir = dir;
  nodes_[id].mode = mode & 07777;
  return id;
}

std::string model::store_path(node_id id) const { return store_ + "/" + std::to_string(id); }

bool model::is_dir(node_id id) const {
  auto it = nodes_.find(id);
  return it != nodes_.end() && it->second.dir;
}

bool model::import(std::string& error) {
  // Depth first from the root: every directory and file becomes durable.
  std::vector<std::pair<node_id, std::string>> todo{{root_id, backing_}};
  while (!todo.empty()) {
    auto [dir, path] = todo.back();
    todo.pop_back();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      struct stat st {};
      if (::lstat(e.path().c_str(), &st) != 0) return failed(error, e.path().string() + ": stat");
      const std::string name = e.path().filename().string();
      if (S_ISDIR(st.st_mode)) {
        node_id id = add_node(true, st.st_mode);
        current_[dir][name] = durable_[dir][name] = id;
        current_[id];
        durable_[id];
        todo.emplace_back(id, e.path().string());
      } else if (S_ISREG(st.st_mode)) {
        node_id id = add_node(false, st.st_mode);
        current_[dir][name] = durable_[dir][name] = id;
        if (!copy_file(e.path().string(), store_path(id), st.st_mode & 07777, error)) return false;
        nodes_[id].stored = true;
      } else {
        error = e.path().string() + ": only directories and regular files are supported";
        return false;
      }
    }
    if (ec) {
      error = path + ": " + ec.message();
      return false;
    }
  }
  return true;
}

std::optional<node_id> model::lookup(const std::string& path) const {
  node_id at = root_id;
  for (const auto& name : components(path)) {
    auto dir = current_.find(at);
    if (dir == current_.end()) return std::nullopt;
    auto it = dir->second.find(name);
    if (it == dir->second.end()) return std::nullopt;
    at = it->second;
  }
  return at;
}

std::optional<std::pair<node_id, std::string>> model::parent_of(const std::string& path) const {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 == path.size()) return std::nullopt;
  auto parent = lookup(path.substr(0, slash));
  if (!parent || !is_dir(*parent)) return std::nullopt;
  return std::make_pair(*parent, path.substr(slash + 1));
}

void model::created(const std::string& path, bool dir, mode_t mode) {
  auto p = parent_of(path);
  if (!p) return;
  node_id id = add_node(dir, mode);
  current_[p->first][p->second] = id;
  if (dir) current_[id];
}

void model::removed(const std::string& path) {
  if (auto p = parent_of(path)) current_[p->first].erase(p->second);
}

void model::renamed(const std::string& from, const std::string& to, unsigned flags) {
  auto pf = parent_of(from);
  auto pt = parent_of(to);
  if (!pf || !pt) return;
  auto& src = current_[pf->first];
  auto it = src.find(pf->second);
  if (it == src.end()) return;
  const node_id moved = it->second;
  if (flags & RENAME_EXCHANGE) {
    auto& dst = current_[pt->first];
    auto other = dst.find(pt->second);
    if (other == dst.end()) return;
    std::swap(it->second, other->second);
    return;
  }
  src.erase(it);
  current_[pt->first][pt->second] = moved;
}

void model::mode_changed(node_id id, mode_t mode) {
  auto it = nodes_.find(id);
  if (it != nodes_.end()) it->second.mode = mode & 07777;
}

void model::written(node_id id, std::uint64_t from, std::uint64_t to) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.dir) return;
  it->second.dirty.add(from, to);
  ++stats_.writes;
}

bool model::ensure_stored(node_id id, std::string& error) {
  node& n = nodes_[id];
  if (n.stored) return true;
  fd_guard f{::open(store_path(id).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  if (f.fd < 0) return failed(error, store_path(id) + ": create");
  n.stored = true;
  return true;
}

bool model::sync_file(node_id id, int fd, std::string& error) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.dir) return true;
  ++stats_.file_syncs;
  if (!ensure_stored(id, error)) return false;
  fd_guard out{::open(store_path(id).c_str(), O_RDWR | O_CLOEXEC)};
  if (out.fd < 0) return failed(error, store_path(id) + ": open");
  const std::uint64_t size = size_of(fd);
  const std::uint64_t old_size = size_of(out.fd);
  for (const auto& [from, to] : it->second.dirty.spans())
    if (from < size && !copy_bytes(fd, out.fd, from, std::min(to, size), old_size, error)) return false;
  if (::ftruncate(out.fd, static_cast<off_t>(size)) != 0) return failed(error, store_path(id) + ": truncate");
  it->second.dirty.clear();
  return true;
}

bool model::sync_dir(node_id id, std::string& error) {
  if (!is_dir(id)) return true;
  ++stats_.dir_syncs;
  durable_[id] = current_[id];
  // A child the directory now names durably exists as an inode: a new
  // file, empty until its own fsync; a new directory, empty until its fsync.
  for (const auto& [name, child] : durable_[id]) {
    if (is_dir(child)) {
      durable_[child];
    } else if (!ensure_stored(child, error)) {
      return false;
    }
  }
  return true;
}

void model::paths_of(node_id dir, const std::string& prefix, std::map<node_id, std::string>& out) const {
  auto it = current_.find(dir);
  if (it == current_.end()) return;
  for (const auto& [name, child] : it->second) {
    out.emplace(child, prefix + "/" + name);
    if (is_dir(child)) paths_of(child, prefix + "/" + name, out);
  }
}

std::uint64_t model::count_reverted() const {
  // Entries of `a` that `b` (which may be absent) does not have, with the same inode.
  auto missing = [](const entries& a, const entries* b) {
    std::uint64_t n = 0;
    for (const auto& [name, id] : a) {
      if (b == nullptr) {
        ++n;
        continue;
      }
      auto it = b->find(name);
      n += it == b->end() || it->second != id;
    }
    return n;
  };
  std::uint64_t n = 0;
  for (const auto& [dir, names] : current_) {
    auto d = durable_.find(dir);
    n += missing(names, d == durable_.end() ? nullptr : &d->second);
  }
  for (const auto& [dir, names] : durable_) {
    auto c = current_.find(dir);
    n += missing(names, c == current_.end() ? nullptr : &c->second);
  }
  return n;
}

bool model::keep_torn_prefix(node_id id, int fd, std::uint64_t keep, std::string& error) {
  if (keep == 0) return true;
  if (!ensure_stored(id, error)) return false;
  fd_guard out{::open(store_path(id).c_str(), O_RDWR | O_CLOEXEC)};
  if (out.fd < 0) return failed(error, store_path(id) + ": open");
  const std::uint64_t size = size_of(fd);
  const std::uint64_t old_size = size_of(out.fd);
  std::uint64_t end = 0;
  for (const auto& [from, to] : nodes_[id].dirty.spans()) {
    if (keep == 0 || from >= size) break;
    const std::uint64_t take = std::min(keep, std::min(to, size) - from);
    if (!copy_bytes(fd, out.fd, from, from + take, old_size, error)) return false;
    keep -= take;
    end = from + take;
  }
  // The kept bytes are inside the file even where they were zeros.
  if (end > size_of(out.fd) && ::ftruncate(out.fd, static_cast<off_t>(end)) != 0)
    return failed(error, store_path(id) + ": truncate");
  return true;
}

// Every file with unsynced bytes keeps a random prefix of them (from none to
// all, cut at any byte) in its durable copy: the write that was reaching the
// disk when the power went.
bool model::tear(std::uint64_t seed, const std::map<node_id, int>& open_fds, drop_report& report,
                 std::string& error) {
  std::mt19937_64 rng(seed);
  std::map<node_id, std::string> paths;
  paths_of(root_id, backing_, paths);
  for (auto& [id, n] : nodes_) {
    if (n.dir || n.dirty.empty()) continue;
    ++report.dirty_files;
    int fd = -1;
    fd_guard own{-1};
    if (auto o = open_fds.find(id); o != open_fds.end()) {
      fd = o->second;
    } else if (auto p = paths.find(id); p != paths.end()) {
      fd = own.fd = ::open(p->second.c_str(), O_RDONLY | O_CLOEXEC);
    }
    std::uint64_t unsynced = 0;
    const std::uint64_t size = fd >= 0 ? size_of(fd) : 0;
    for (const auto& [from, to] : n.dirty.spans())
      if (fd < 0) unsynced += to - from;
      else if (from < size) unsynced += std::min(to, size) - from;
    // A file nobody names or holds any more: its unsynced bytes are gone.
    const std::uint64_t keep = fd >= 0 ? rng() % (unsynced + 1) : 0;
    report.unsynced_bytes += unsynced;
    report.torn_kept_bytes += keep;
    if (!keep_torn_prefix(id, fd, keep, error)) return false;
  }
  return true;
}

bool model::build_dir(node_id dir, const std::string& path, std::set<node_id>& seen, std::string& error) {
  entries names = durable_[dir];
  for (auto [name, id] : names) {
    if (!seen.insert(id).second) {
      // Two durable names for one inode (a move between two directories of
      // which only one was fsynced): a directory keeps its first name, a
      // file becomes two files, so later writes to one never reach the other.
      if (is_dir(id)) {
        durable_[dir].erase(name);
        continue;
      }
      node_id copy = add_node(false, nodes_[id].mode);
      if (!copy_file(store_path(id), store_path(copy), 0600, error)) return false;
      nodes_[copy].stored = true;
      durable_[dir][name] = id = copy;
      seen.insert(copy);
    }
    const std::string target = path + "/" + name;
    const node& n = nodes_[id];
    if (n.dir) {
      if (::mkdir(target.c_str(), n.mode | 0700) != 0) return failed(error, target + ": mkdir");
      if (!build_dir(id, target, seen, error)) return false;
      if (::chmod(target.c_str(), n.mode) != 0) return failed(error, target + ": chmod");
    } else if (!copy_file(store_path(id), target, n.mode, error)) {
      return false;
    }
  }
  return true;
}

void model::forget_unreachable(const std::set<node_id>& reachable) {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    const node_id id = it->first;
    if (reachable.count(id)) {
      it->second.dirty.clear();
      ++it;
      continue;
    }
    if (it->second.stored) ::unlink(store_path(id).c_str());
    durable_.erase(id);
    it = nodes_.erase(it);
  }
  current_.clear();
  for (node_id id : reachable)
    if (is_dir(id)) current_[id] = durable_[id];
}

bool model::rebuild(std::string& error) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(backing_, ec)) {
    fs::remove_all(e.path(), ec);
    if (ec) {
      error = e.path().string() + ": remove: " + ec.message();
      return false;
    }
  }
  if (ec) {
    error = backing_ + ": " + ec.message();
    return false;
  }
  std::set<node_id> seen{root_id};
  if (!build_dir(root_id, backing_, seen, error)) return false;
  forget_unreachable(seen);
  return true;
}

bool model::drop(std::uint64_t seed, const std::map<node_id, int>& open_fds, drop_report& report,
                 std::string& error) {
  ++stats_.drops;
  report = {};
  report.reverted_entries = count_reverted();
  return tear(seed, open_fds, report, error) && rebuild(error);
}

}  // namespace powercut
