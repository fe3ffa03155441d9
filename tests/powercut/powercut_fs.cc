// postino-powercut-fs: a FUSE filesystem for the power-cut test
// (tests/powercut/README.md). A passthrough over a backing directory that
// remembers what has not been fsynced and, when told, drops it, as LazyFS
// does: durable_model.h keeps the durable state, this file is the FUSE 3
// high-level glue. Writing "drop <seed>" to the control file <mount>/.powercut
// is the power cut; the write returns when the backing directory holds only
// what a disk would still hold. Reading the control file gives the last
// drop's report and the counters.
//
//   postino-powercut-fs BACKING STORE MOUNTPOINT [FUSE options]
//
// Runs single-threaded (-s), in the foreground, until unmounted or SIGTERM.
// Ownership: the open-file table owns the backing descriptors (closed at
// release); the model owns the store. No kernel caching that could outlive a
// drop: entry, attribute and negative timeouts are 0 and every open drops
// the page cache (no keep_cache), so the next reader sees the rebuilt files.
#define FUSE_USE_VERSION 35
#include <fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "durable_model.h"

namespace {

using powercut::node_id;

constexpr const char* control_name = "/.powercut";

struct open_file {
  int fd = -1;
  node_id id = 0;
  unsigned generation = 0;  // files opened before a drop refer to a world that is gone
  bool control = false;
};

struct filesystem {
  std::unique_ptr<powercut::model> model;
  std::map<std::uint64_t, open_file> files;  // by fuse_file_info::fh
  std::uint64_t next_handle = 1;
  unsigned generation = 0;
  std::string last_report = "no drop yet\n";
};

filesystem fs_state;

bool is_control(const char* path) { return path != nullptr && std::strcmp(path, control_name) == 0; }

open_file* file_of(const fuse_file_info* fi) {
  if (fi == nullptr) return nullptr;
  auto it = fs_state.files.find(fi->fh);
  return it == fs_state.files.end() ? nullptr : &it->second;
}

// A file opened since the last drop: its writes and syncs count.
open_file* live_file(const fuse_file_info* fi) {
  open_file* f = file_of(fi);
  return f != nullptr && !f->control && f->generation == fs_state.generation ? f : nullptr;
}

// The backing path of a FUSE path; calls that come with a file and no path
// (nullpath_ok) use the file's descriptor instead.
std::string backing(const char* path) { return fs_state.model->backing_path(path != nullptr ? path : "/.missing"); }

std::uint64_t handle_for(const open_file& f) {
  std::uint64_t h = fs_state.next_handle++;
  fs_state.files[h] = f;
  return h;
}

std::uint64_t size_at(const char* path, const fuse_file_info* fi) {
  struct stat st {};
  const open_file* f = file_of(fi);
  int rc = f != nullptr && f->fd >= 0 ? ::fstat(f->fd, &st) : ::lstat(backing(path).c_str(), &st);
  return rc == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// The model's id of the file behind `fi`, or else behind `path`.
std::optional<node_id> id_of(const char* path, const fuse_file_info* fi) {
  if (const open_file* f = live_file(fi)) return f->id;
  if (path == nullptr) return std::nullopt;
  return fs_state.model->lookup(path);
}

int attach(const char* path, int fd, fuse_file_info* fi);

void report_error(const std::string& what) { std::fprintf(stderr, "powercut: %s\n", what.c_str()); }

void* fs_init(fuse_conn_info* conn, fuse_config* cfg) {
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->hard_remove = 1;  // an unlinked open file keeps its descriptor, not a .fuse_hidden name
  cfg->nullpath_ok = 1;  // then calls on it come with fi and no path
  cfg->use_ino = 0;
  cfg->kernel_cache = 0;
  cfg->auto_cache = 0;
  cfg->direct_io = 0;  // mmap reads (recovery maps segments) need the page cache
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // every write reaches us before write() returns
  std::fprintf(stderr, "powercut: mounted\n");
  return nullptr;
}

int fs_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
  if (is_control(path)) {
    std::memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    return 0;
  }
  const open_file* f = file_of(fi);
  int rc = f != nullptr && f->fd >= 0 ? ::fstat(f->fd, st) : ::lstat(backing(path).c_str(), st);
  return rc == 0 ? 0 : -errno;
}

int fs_access(const char* path, int mask) {
  if (is_control(path)) return 0;
  return ::access(backing(path).c_str(), mask) == 0 ? 0 : -errno;
}

// Directories are opened like files (a descriptor and the model's id), since
// with nullpath_ok readdir and fsyncdir come without a path.
int fs_opendir(const char* path, fuse_file_info* fi) {
  int fd = ::open(backing(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  return attach(path, fd, fi);
}

int fs_readdir(const char*, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info* fi, fuse_readdir_flags) {
  const open_file* f = file_of(fi);
  if (f == nullptr || f->fd < 0) return -EBADF;
  int fd = ::dup(f->fd);
  DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (d == nullptr) {
    int error = errno;
    if (fd >= 0) ::close(fd);
    return -error;
  }
  ::rewinddir(d);
  while (dirent* e = ::readdir(d)) fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  ::closedir(d);
  return 0;
}

int fs_mkdir(const char* path, mode_t mode) {
  if (::mkdir(backing(path).c_str(), mode) != 0) return -errno;
  fs_state.model->created(path, true, mode);
  return 0;
}

int fs_unlink(const char* path) {
  if (is_control(path)) return -EPERM;
  if (::unlink(backing(path).c_str()) != 0) return -errno;
  fs_state.model->removed(path);
  return 0;
}

int fs_rmdir(const char* path) {
  if (::rmdir(backing(path).c_str()) != 0) return -errno;
  fs_state.model->removed(path);
  return 0;
}

int fs_rename(const char* from, const char* to, unsigned flags) {
  if (is_control(from) || is_control(to)) return -EPERM;
  if (::renameat2(AT_FDCWD, backing(from).c_str(), AT_FDCWD, backing(to).c_str(), flags) != 0) return -errno;
  fs_state.model->renamed(from, to, flags);
  return 0;
}

int fs_chmod(const char* path, mode_t mode, fuse_file_info* fi) {
  const open_file* f = live_file(fi);
  int rc = f != nullptr ? ::fchmod(f->fd, mode) : ::chmod(backing(path).c_str(), mode);
  if (rc != 0) return -errno;
  if (auto id = id_of(path, fi)) fs_state.model->mode_changed(*id, mode);
  return 0;
}

int fs_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
  const open_file* f = live_file(fi);
  int rc = f != nullptr ? ::fchown(f->fd, uid, gid) : ::lchown(backing(path).c_str(), uid, gid);
  return rc == 0 ? 0 : -errno;
}

int fs_utimens(const char* path, const timespec tv[2], fuse_file_info* fi) {
  const open_file* f = live_file(fi);
  int rc = f != nullptr ? ::futimens(f->fd, tv) : ::utimensat(AT_FDCWD, backing(path).c_str(), tv, AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? 0 : -errno;
}

int fs_truncate(const char* path, off_t size, fuse_file_info* fi) {
  if (is_control(path) || (file_of(fi) != nullptr && file_of(fi)->control)) return 0;  // `echo drop 1 >`
  const std::uint64_t old_size = size_at(path, fi);
  const open_file* f = live_file(fi);
  int rc = f != nullptr ? ::ftruncate(f->fd, size) : ::truncate(backing(path).c_str(), size);
  if (rc != 0) return -errno;
  if (auto id = id_of(path, fi))
    fs_state.model->written(*id, std::min<std::uint64_t>(old_size, size), std::max<std::uint64_t>(old_size, size));
  return 0;
}

// Opens the backing file of `path` with the caller's flags. O_APPEND is left
// to the kernel, which sends the offset it chose with each write. The
// filesystem runs as root (the test's user), so read access is never refused.
int open_backing(const char* path, int flags, mode_t mode) {
  // Write-only opens read too: a fsync copies the written ranges out of the file.
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  int fd = ::open(backing(path).c_str(), (flags & ~(O_APPEND | O_NOCTTY)) | O_CLOEXEC, mode);
  return fd >= 0 ? fd : -errno;
}

// Gives `fd` (open on `path`) a handle in `fi`.
int attach(const char* path, int fd, fuse_file_info* fi) {
  auto id = fs_state.model->lookup(path);
  if (!id) {
    ::close(fd);
    report_error(std::string(path) + ": opened but unknown to the model");
    return -EIO;
  }
  fi->fh = handle_for({fd, *id, fs_state.generation, false});
  return 0;
}

int fs_open(const char* path, fuse_file_info* fi) {
  if (is_control(path)) {
    fi->direct_io = 1;  // size 0, yet reads return the report
    fi->fh = handle_for({-1, 0, 0, true});
    return 0;
  }
  const std::uint64_t old_size = (fi->flags & O_TRUNC) ? size_at(path, nullptr) : 0;
  int fd = open_backing(path, fi->flags & ~(O_CREAT | O_EXCL), 0);
  if (fd < 0) return fd;
  int rc = attach(path, fd, fi);
  if (rc == 0 && old_size > 0) fs_state.model->written(file_of(fi)->id, 0, old_size);
  return rc;
}

int fs_create(const char* path, mode_t mode, fuse_file_info* fi) {
  if (is_control(path)) return -EEXIST;
  struct stat st {};
  const bool existed = ::lstat(backing(path).c_str(), &st) == 0;
  int fd = open_backing(path, fi->flags | O_CREAT, mode);
  if (fd < 0) return fd;
  if (!existed) fs_state.model->created(path, false, mode);
  int rc = attach(path, fd, fi);
  if (rc == 0 && existed && (fi->flags & O_TRUNC) && st.st_size > 0)
    fs_state.model->written(file_of(fi)->id, 0, static_cast<std::uint64_t>(st.st_size));
  return rc;
}

int control_read(char* buf, size_t size, off_t off) {
  const auto& c = fs_state.model->stats();
  const std::string text = fs_state.last_report + "writes " + std::to_string(c.writes) + "\nfile_syncs " +
                           std::to_string(c.file_syncs) + "\ndir_syncs " + std::to_string(c.dir_syncs) +
                           "\ndrops " + std::to_string(c.drops) + "\n";
  if (static_cast<std::size_t>(off) >= text.size()) return 0;
  const std::size_t n = std::min(size, text.size() - static_cast<std::size_t>(off));
  std::memcpy(buf, text.data() + off, n);
  return static_cast<int>(n);
}

int fs_read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  open_file* f = file_of(fi);
  if (f == nullptr) return -EBADF;
  if (f->control) return control_read(buf, size, off);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(f->fd, buf + done, size - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<int>(done);
}

// "drop <seed>": the power cut. Every descriptor open now belongs to the
// world before it; their inodes' descriptors let a nameless file keep its tail.
int control_write(const char* buf, size_t size) {
  std::string command(buf, size);
  while (!command.empty() && (command.back() == '\n' || command.back() == ' ')) command.pop_back();
  std::uint64_t seed = 0;
  if (command.rfind("drop ", 0) != 0) return -EINVAL;
  const char* first = command.data() + 5;
  const char* last = command.data() + command.size();
  auto [end, ec] = std::from_chars(first, last, seed);
  if (ec != std::errc() || end != last) return -EINVAL;
  std::map<node_id, int> open_fds;
  for (const auto& [h, f] : fs_state.files)
    if (!f.control && f.generation == fs_state.generation) open_fds.emplace(f.id, f.fd);
  ++fs_state.generation;
  powercut::drop_report report;
  std::string error;
  if (!fs_state.model->drop(seed, open_fds, report, error)) {
    report_error("drop failed: " + error);
    fs_state.last_report = "drop failed: " + error + "\n";
    return -EIO;
  }
  fs_state.last_report = report.text();
  std::fprintf(stderr, "powercut: drop %llu: %llu unsynced bytes in %llu files, %llu kept as torn tails, %llu entries reverted\n",
               static_cast<unsigned long long>(seed), static_cast<unsigned long long>(report.unsynced_bytes),
               static_cast<unsigned long long>(report.dirty_files),
               static_cast<unsigned long long>(report.torn_kept_bytes),
               static_cast<unsigned long long>(report.reverted_entries));
  return static_cast<int>(size);
}

int fs_write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  open_file* f = file_of(fi);
  if (f == nullptr) return -EBADF;
  if (f->control) return control_write(buf, size);
  std::size_t done = 0;
  int error = 0;
  while (done < size) {
    ssize_t n = ::pwrite(f->fd, buf + done, size - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  if (done > 0 && f->generation == fs_state.generation)
    fs_state.model->written(f->id, static_cast<std::uint64_t>(off), static_cast<std::uint64_t>(off) + done);
  return done > 0 || error == 0 ? static_cast<int>(done) : -error;
}

int fs_fallocate(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
  open_file* f = live_file(fi);
  if (f == nullptr) return -EBADF;
  const std::uint64_t old_size = size_at(nullptr, fi);
  if (::fallocate(f->fd, mode, off, len) != 0) return -errno;
  const std::uint64_t new_size = size_at(nullptr, fi);
  fs_state.model->written(f->id, static_cast<std::uint64_t>(off), static_cast<std::uint64_t>(off + len));
  if (new_size != old_size) fs_state.model->written(f->id, std::min(old_size, new_size), std::max(old_size, new_size));
  return 0;
}

int fs_fsync(const char*, int, fuse_file_info* fi) {
  open_file* f = live_file(fi);
  if (f == nullptr) return 0;  // the control file, or a file from before a drop
  std::string error;
  if (!fs_state.model->sync_file(f->id, f->fd, error)) {
    report_error("fsync: " + error);
    return -EIO;
  }
  return 0;
}

int fs_fsyncdir(const char*, int, fuse_file_info* fi) {
  open_file* f = live_file(fi);
  if (f == nullptr) return 0;  // opened before a drop
  std::string error;
  if (!fs_state.model->sync_dir(f->id, error)) {
    report_error("fsync of a directory: " + error);
    return -EIO;
  }
  return 0;
}

int fs_statfs(const char*, struct statvfs* st) {
  return ::statvfs(fs_state.model->backing_path("").c_str(), st) == 0 ? 0 : -errno;
}

int fs_release(const char*, fuse_file_info* fi) {
  auto it = fs_state.files.find(fi->fh);
  if (it == fs_state.files.end()) return 0;
  if (it->second.fd >= 0) ::close(it->second.fd);
  fs_state.files.erase(it);
  return 0;
}

fuse_operations operations() {
  fuse_operations ops{};
  ops.init = fs_init;
  ops.getattr = fs_getattr;
  ops.access = fs_access;
  ops.readdir = fs_readdir;
  ops.mkdir = fs_mkdir;
  ops.unlink = fs_unlink;
  ops.rmdir = fs_rmdir;
  ops.rename = fs_rename;
  ops.chmod = fs_chmod;
  ops.chown = fs_chown;
  ops.utimens = fs_utimens;
  ops.truncate = fs_truncate;
  ops.open = fs_open;
  ops.create = fs_create;
  ops.read = fs_read;
  ops.write = fs_write;
  ops.fallocate = fs_fallocate;
  ops.fsync = fs_fsync;
  ops.fsyncdir = fs_fsyncdir;
  ops.statfs = fs_statfs;
  ops.release = fs_release;
  ops.opendir = fs_opendir;
  ops.releasedir = fs_release;
  return ops;
}

// An empty store directory (created, or emptied of an earlier run's copies).
bool prepare_store(const std::string& store, std::string& error) {
  std::error_code ec;
  std::filesystem::create_directories(store, ec);
  for (const auto& e : std::filesystem::directory_iterator(store, ec)) std::filesystem::remove_all(e.path(), ec);
  if (ec) error = store + ": " + ec.message();
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s BACKING STORE MOUNTPOINT [FUSE options]\n", argv[0]);
    return 2;
  }
  std::error_code ec;
  const std::string backing_dir = std::filesystem::canonical(argv[1], ec).string();
  if (ec) {
    std::fprintf(stderr, "powercut: %s: %s\n", argv[1], ec.message().c_str());
    return 1;
  }
  const std::string store = std::filesystem::absolute(argv[2]).lexically_normal().string();
  std::string error;
  if (!prepare_store(store, error)) {
    report_error(error);
    return 1;
  }
  fs_state.model = std::make_unique<powercut::model>(backing_dir, store);
  if (!fs_state.model->import(error)) {
    report_error("import: " + error);
    return 1;
  }
  std::vector<char*> args = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-s"), const_cast<char*>("-o"),
                             const_cast<char*>("fsname=postino-powercut,subtype=powercut"), argv[3]};
  for (int i = 4; i < argc; ++i) args.push_back(argv[i]);
  const fuse_operations ops = operations();
  return fuse_main(static_cast<int>(args.size()), args.data(), &ops, nullptr);
}
