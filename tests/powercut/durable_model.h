// The power-cut filesystem's model of what a disk would still hold after a
// power cut (tests/powercut/README.md). The backing directory is the page
// cache: every write lands there at once and every read comes from it. Beside
// it the model keeps the durable state: a store directory with one file per
// inode holding that inode's durable bytes (copied in on fsync/fdatasync, only
// the ranges written since), and, per directory, the entries a directory fsync
// last made durable. drop() throws away everything else (keeping a random
// prefix of each file's unsynced bytes: a torn tail) and rebuilds the backing
// directory from the durable state. Inodes get the model's own ids, so a
// rename or an unlink keeps the durable data where it belongs and a reused
// backing inode number cannot mix two files up.
// Ownership: the model owns its maps and the store's files; it never keeps a
// caller's descriptor, and never touches the mount itself (only the backing
// and store directories), so calling it from a FUSE handler cannot deadlock.
// Not thread-safe: the filesystem runs single-threaded.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

namespace powercut {

using node_id = std::uint64_t;
constexpr node_id root_id = 1;

// Half-open byte ranges [from, to), kept merged.
class ranges {
 public:
  void add(std::uint64_t from, std::uint64_t to);
  void clear() { spans_.clear(); }
  bool empty() const { return spans_.empty(); }
  const std::map<std::uint64_t, std::uint64_t>& spans() const { return spans_; }

 private:
  std::map<std::uint64_t, std::uint64_t> spans_;  // from -> to
};

// What one drop() threw away and kept.
struct drop_report {
  std::uint64_t unsynced_bytes = 0;   // written since the file's last fsync
  std::uint64_t torn_kept_bytes = 0;  // of those, the prefix kept (a torn tail)
  std::uint64_t dirty_files = 0;      // files that had unsynced bytes
  std::uint64_t reverted_entries = 0; // directory entries made or removed since their directory's fsync
  std::string text() const;
};

// Counters since the mount, for the control file.
struct counters {
  std::uint64_t writes = 0, file_syncs = 0, dir_syncs = 0, drops = 0;
};

class model {
 public:
  model(std::string backing, std::string store);

  // Takes everything already in the backing directory as durable.
  bool import(std::string& error);
  // "<backing><path>" for a FUSE path ("/a/b").
  std::string backing_path(const char* path) const { return backing_ + path; }
  std::optional<node_id> lookup(const std::string& path) const;

  // Namespace changes, told after the backing call succeeded.
  void created(const std::string& path, bool dir, mode_t mode);
  void removed(const std::string& path);
  void renamed(const std::string& from, const std::string& to, unsigned flags);
  void mode_changed(node_id id, mode_t mode);

  // Bytes [from, to) of `id` may now differ from its durable copy.
  void written(node_id id, std::uint64_t from, std::uint64_t to);
  // fsync/fdatasync of a file (read through `fd`): its data and size become durable.
  bool sync_file(node_id id, int fd, std::string& error);
  // fsync of a directory: its current entries become durable.
  bool sync_dir(node_id id, std::string& error);
  // The power cut. `open_fds`: a descriptor for each inode still open, to
  // read the torn tail of a file that has no name any more.
  bool drop(std::uint64_t seed, const std::map<node_id, int>& open_fds, drop_report& report,
            std::string& error);

  counters& stats() { return stats_; }
  bool is_dir(node_id id) const;

 private:
  struct node {
    bool dir = false;
    mode_t mode = 0644;
    ranges dirty;         // bytes that may differ from the store's copy
    bool stored = false;  // store/<id> exists (the inode is durable)
  };
  using entries = std::map<std::string, node_id>;

  node_id add_node(bool dir, mode_t mode);
  std::optional<std::pair<node_id, std::string>> parent_of(const std::string& path) const;
  std::string store_path(node_id id) const;
  bool ensure_stored(node_id id, std::string& error);
  bool keep_torn_prefix(node_id id, int fd, std::uint64_t keep, std::string& error);
  void paths_of(node_id dir, const std::string& prefix, std::map<node_id, std::string>& out) const;
  std::uint64_t count_reverted() const;
  bool tear(std::uint64_t seed, const std::map<node_id, int>& open_fds, drop_report& report,
            std::string& error);
  bool rebuild(std::string& error);
  bool build_dir(node_id dir, const std::string& path, std::set<node_id>& seen, std::string& error);
  void forget_unreachable(const std::set<node_id>& reachable);

  std::string backing_;
  std::string store_;
  node_id next_id_ = root_id + 1;
  std::unordered_map<node_id, node> nodes_;
  std::unordered_map<node_id, entries> current_;  // per directory, as the backing directory has it
  std::unordered_map<node_id, entries> durable_;  // per directory, as its last fsync left it
  counters stats_;
};

}  // namespace powercut
