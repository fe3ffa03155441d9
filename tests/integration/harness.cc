// Integration-test harness (see harness.h). Child processes get their own
// process group so a timeout kills the whole tree; pipes are drained with
// poll() so a chatty child never blocks on a full pipe.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace postino::test {
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// POSTINO_TEST_BINARY_DIR runs the tests against other binaries (an older
// build, to see a regression test fail without its fix).
bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::string binary_path(const std::string& name) {
  const char* other = std::getenv("POSTINO_TEST_BINARY_DIR");
  return std::string(other != nullptr && *other != '\0' ? other : POSTINO_BINARY_DIR) + "/" + name;
}
std::string source_path(const std::string& rel) { return std::string(POSTINO_SOURCE_DIR) + "/" + rel; }

bool have_program(const std::string& name) {
  return run_command({"/bin/sh", "-c", "command -v " + name}, "", std::chrono::seconds(10)).exit_code == 0;
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, int in_fd, int out_fd, int err_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0) posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : -1;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout, bool* timed_out) {
  auto deadline = clock_type::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (clock_type::now() >= deadline) {
      if (timed_out) *timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// Polls `ready` every 20 ms for up to 30 s while child `pid` runs; false
// (and pid = -1) when the child exits first.
bool await_child(int& pid, const std::function<bool()>& ready) {
  const auto deadline = clock_type::now() + std::chrono::seconds(30);
  while (clock_type::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return false;
    }
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

command_result run_command(const std::vector<std::string>& argv, const std::string& input,
                           std::chrono::seconds timeout) {
  command_result result;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return result;
  pid_t pid = spawn(argv, in[0], out[1], err[1]);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    result.err = "cannot start " + argv[0];
    return result;
  }
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (input.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  auto deadline = clock_type::now() + timeout;
  bool out_open = true, err_open = true;
  while ((out_open || err_open) && clock_type::now() < deadline) {
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0},
                     {in[1], POLLOUT, 0}};
    if (poll(fds, 3, 100) < 0 && errno != EINTR) break;
    char buf[65536];
    if (fds[0].revents) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n > 0) result.out.append(buf, n);
      else out_open = false;
    }
    if (fds[1].revents) {
      ssize_t n = read(err[0], buf, sizeof buf);
      if (n > 0) result.err.append(buf, n);
      else err_open = false;
    }
    if (in[1] >= 0 && fds[2].revents) {
      ssize_t n = write(in[1], input.data() + written, input.size() - written);
      if (n > 0) written += n;
      if (n < 0 || written == input.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  if (in[1] >= 0) close(in[1]);
  close(out[0]);
  close(err[0]);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
  result.exit_code = wait_exit(pid, std::max(left, std::chrono::milliseconds(100)), &result.timed_out);
  return result;
}

temp_dir::temp_dir() {
  char tmpl[] = "/tmp/postino-test-XXXXXX";
  path_ = mkdtemp(tmpl);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  if (!path_.empty() && !getenv("POSTINO_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

gateway::gateway(const std::vector<account_spec>& accounts, const std::string& extra_toml,
                 unsigned shards) {
  config_path_ = dir_.path() + "/postino.toml";
  ports_path_ = dir_.path() + "/ports";
  log_path_ = dir_.path() + "/postino.log";
  for (const auto& a : accounts) {
    std::vector<std::string> args = {"account", "add", a.username, "--password", a.password,
                                     "--credit", std::to_string(a.credit)};
    args.insert(args.end(), a.extra_flags.begin(), a.extra_flags.end());
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << "postino-ctl account add " << a.username << ": " << r.out << r.err;
  }
  std::ofstream cfg(config_path_);
  cfg << "hostname = \"postino.test\"\n"
      << "shards = " << shards << "\n"
      << "data_dir = \"" << dir_.path() << "\"\n"
      << "ports_file = \"" << ports_path_ << "\"\n"
      << "create_demo_account = false\n";
  // Top-level keys must precede tables, so split the caller's TOML.
  std::string tables = extra_toml;
  if (tables.find("[[listener]]") == std::string::npos)
    tables += "\n[[listener]]\naddress = \"127.0.0.1\"\nport = 0\n";
  cfg << tables << "\n";
}

gateway::~gateway() {
  if (pid_ > 0) kill_hard();
}

std::unique_ptr<gateway> gateway::on_copy_of(const std::string& data_dir, const std::string& extra_toml,
                                             unsigned shards) {
  auto gw = std::make_unique<gateway>(std::vector<account_spec>{}, extra_toml, shards);
  std::error_code ec;
  fs::copy(data_dir, gw->dir_.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  EXPECT_FALSE(ec) << "copying " << data_dir << ": " << ec.message();
  return gw;
}

bool gateway::start() {
  std::error_code ec;
  fs::remove(ports_path_, ec);
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = spawn({binary_path("postino"), "--config", config_path_}, null_fd, log_fd, log_fd);
  close(log_fd);
  close(null_fd);
  if (pid_ < 0) return false;
  return await_child(pid_, [&] {
    std::ifstream ports(ports_path_);
    if (!ports) return false;
    smtp_ports_.clear();
    std::string kind, line;
    while (std::getline(ports, line)) {
      std::istringstream ls(line);
      ls >> kind;
      std::string addr;
      if (kind == "smtp") {
        unsigned index;
        ls >> index >> addr;
      } else {
        ls >> addr;
      }
      auto colon = addr.rfind(':');
      if (colon == std::string::npos) continue;
      auto port = static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1)));
      if (kind == "smtp") smtp_ports_.push_back(port);
      else if (kind == "admin") admin_port_ = port;
    }
    return !smtp_ports_.empty();
  });
}

int gateway::stop(std::chrono::seconds grace) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  bool timed_out = false;
  int code = wait_exit(pid_, grace, &timed_out);
  pid_ = -1;
  return timed_out ? -2 : code;
}

void gateway::kill_hard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::uint16_t gateway::smtp_port(unsigned listener) const {
  return listener < smtp_ports_.size() ? smtp_ports_[listener] : 0;
}

std::string gateway::last_log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string gateway::admin_token() const {
  std::ifstream in(dir_.path() + "/admin-token");
  std::string token;
  std::getline(in, token);
  return token;
}

http_reply gateway::admin(const std::string& method, const std::string& target,
                          const std::string& header_lines) const {
  const std::string token = admin_token();
  return http_exchange(admin_port_, method, target,
                       (token.empty() ? "" : "Authorization: Bearer " + token + "\r\n") + header_lines);
}

std::map<std::string, double> gateway::metrics() const {
  std::map<std::string, double> values;
  if (admin_port_ == 0) return values;
  std::istringstream lines(admin("GET", "/metrics").body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return values;
}

command_result gateway::ctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {binary_path("postino-ctl"), "--database", database()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, "", std::chrono::seconds(60));
}

namespace {

std::vector<fs::path> journal_dirs(const std::string& data_dir) {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(data_dir))
    if (entry.is_directory() && entry.path().filename().string().rfind("journal-", 0) == 0)
      dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

void read_journal(const fs::path& dir, const std::function<void(const spool::record&)>& visit) {
  spool::journal_options options;
  options.dir = dir.string();
  std::string error;
  auto j = spool::journal::open(options, visit, error);
  EXPECT_TRUE(j) << error;
}

}  // namespace

std::vector<spool::record> read_journals(const std::string& data_dir) {
  std::vector<spool::record> records;
  for (const auto& dir : journal_dirs(data_dir))
    read_journal(dir, [&](const spool::record& r) { records.push_back(r); });
  return records;
}

std::vector<std::string> journal_queue_ids(const std::string& data_dir) {
  std::vector<std::string> ids;
  for (const auto& dir : journal_dirs(data_dir)) {
    unsigned shard = std::stoul(dir.filename().string().substr(std::strlen("journal-")));
    read_journal(dir, [&](const spool::record& r) {
      if (r.type == spool::record_type::message) ids.push_back(queue_id{0, static_cast<std::uint8_t>(shard), r.sequence}.format());
    });
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<spool::record> messages_in(const std::vector<spool::record>& records) {
  std::vector<spool::record> out;
  for (const auto& r : records)
    if (r.type == spool::record_type::message) out.push_back(r);
  return out;
}

raw_client::raw_client(std::uint16_t port, const std::string& source) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1 ||
        bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd_);
    fd_ = -1;
  }
  int one = 1;
  if (fd_ >= 0) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void raw_client::finish_sending() {
  if (fd_ >= 0) shutdown(fd_, SHUT_WR);
}

std::size_t raw_client::send_for(const std::string& bytes, std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  std::size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  return off;
}

std::int64_t rss_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state; utime is 14, stime 15
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

raw_client::~raw_client() {
  if (fd_ >= 0) close(fd_);
}

void raw_client::send(const std::string& bytes) {
  std::size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += n;
  }
}

namespace {

// A reply is complete when its last line has a space (or nothing) after the code.
bool complete_reply(const std::string& buf, std::size_t* end) {
  std::size_t pos = 0;
  while (true) {
    auto lf = buf.find('\n', pos);
    if (lf == std::string::npos) return false;
    if (lf - pos < 4 || buf[pos + 3] != '-') {
      *end = lf + 1;
      return true;
    }
    pos = lf + 1;
  }
}

}  // namespace

std::string raw_client::reply(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  std::size_t end = 0;
  while (!complete_reply(buffer_, &end)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0 || fd_ < 0) return "";
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[16384];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return "";
    buffer_.append(buf, n);
  }
  std::string r = buffer_.substr(0, end);
  buffer_.erase(0, end);
  return r;
}

std::string raw_client::until_close(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (fd_ >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[16384];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    buffer_.append(buf, n);
  }
  std::string r;
  r.swap(buffer_);
  return r;
}

std::string base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < in.size()) v |= (unsigned char)in[i + 1] << 8;
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += i + 1 < in.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace postino::test

namespace postino::test {

http_reply http_exchange(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::string& header_lines, const std::string& body,
                         std::chrono::milliseconds timeout) {
  http_reply r;
  raw_client c(port);
  if (!c.connected()) return r;
  // A caller's own Host line replaces the default one.
  std::string lower_lines = "\n" + header_lines;
  for (auto& ch : lower_lines) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const bool own_host = lower_lines.find("\nhost:") != std::string::npos;
  c.send(method + " " + target + " HTTP/1.0\r\n" + (own_host ? "" : "Host: localhost\r\n") + header_lines +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string response = c.until_close(timeout);
  auto start = response.find("\r\n\r\n");
  if (start == std::string::npos) return r;
  r.headers = response.substr(0, start + 2);
  r.body = response.substr(start + 4);
  std::smatch m;
  if (std::regex_search(r.headers, m, std::regex("^HTTP/1\\.[01] (\\d{3})"))) r.status = std::stoi(m[1]);
  return r;
}

std::string http_reply::header(const std::string& name) const {
  std::istringstream lines(headers);
  std::string line, lower_name = name;
  for (auto& ch : lower_name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (key != lower_name) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
    return value.substr(std::min(value.find_first_not_of(' '), value.size()));
  }
  return "";
}

std::string http_request(std::uint16_t port, const std::string& method, const std::string& target,
                         const std::string& body) {
  return http_exchange(port, method, target, "", body).body;
}

namespace {

// The first member named `key` in document order, nested ones included (the
// order a search of the text would meet them), or null.
const nlohmann::ordered_json* first_member(const nlohmann::ordered_json& v, const std::string& key) {
  if (!v.is_structured()) return nullptr;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (v.is_object() && it.key() == key) return &it.value();
    if (const auto* found = first_member(it.value(), key)) return found;
  }
  return nullptr;
}

}  // namespace

double json_number(const std::string& json, const std::string& key) {
  const auto doc = nlohmann::ordered_json::parse(json, nullptr, /*allow_exceptions=*/false);
  const auto* v = first_member(doc, key);
  return v != nullptr && v->is_number() ? v->get<double>() : -1;
}

smsc_simulator::smsc_simulator(const std::string& rules_json) {
  std::ofstream(dir_.path() + "/rules.json") << rules_json;
}

smsc_simulator::~smsc_simulator() { stop(); }

bool smsc_simulator::available(std::string& why) {
  if (!have_program("node")) {
    why = "node is not installed";
    return false;
  }
  if (!fs::exists(source_path("tests/smsc/node_modules/smpp/package.json"))) {
    why = "tests/smsc/node_modules is missing: run scripts/deps (npm ci of the simulator)";
    return false;
  }
  return true;
}

bool smsc_simulator::start() {
  const std::string ready = dir_.path() + "/ready";
  const std::string log = dir_.path() + "/simulator.log";
  int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = spawn({"node", source_path("tests/smsc/simulator.js"), "--port", "0", "--ready-file", ready, "--config",
                dir_.path() + "/rules.json"},
               null_fd, log_fd, log_fd);
  close(log_fd);
  close(null_fd);
  if (pid_ < 0) return false;
  return await_child(pid_, [&] {
    std::ifstream in(ready);
    std::string kind;
    unsigned port = 0;
    while (in >> kind >> port) {
      if (kind == "smpp") smpp_port_ = static_cast<std::uint16_t>(port);
      if (kind == "control") control_port_ = static_cast<std::uint16_t>(port);
    }
    return smpp_port_ != 0 && control_port_ != 0;
  });
}

void smsc_simulator::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  bool timed_out = false;
  wait_exit(pid_, std::chrono::milliseconds(10000), &timed_out);
  if (timed_out) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

std::string smsc_simulator::last_log() const {
  std::ifstream in(dir_.path() + "/simulator.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
}

}  // namespace postino::test

namespace postino::test {

std::string auth_plain(const std::string& user, const std::string& pass) {
  return "AUTH PLAIN " + base64(std::string(1, '\0') + user + std::string(1, '\0') + pass) + "\r\n";
}

std::string login(raw_client& c, const std::string& user, const std::string& pass) {
  if (c.reply().rfind("220 ", 0) != 0) return "";
  c.send("EHLO test\r\n");
  if (c.reply().rfind("250", 0) != 0) return "";
  c.send(auth_plain(user, pass));
  return c.reply();
}

std::string login_ok(raw_client& c, const std::string& user, const std::string& pass) {
  std::string r = login(c, user, pass);
  return r.rfind("235 ", 0) == 0 ? r : "";
}

// The connections stay open until every shard holds one of them (the
// gateway's per-shard session counts say so), so no shard goes unasked.
void expect_suspended_on_every_shard(const gateway& gw, const std::string& user, const std::string& pass) {
  constexpr std::size_t most = 64;
  const auto active = [](std::map<std::string, double>& m, unsigned shard) {
    return m["postino_sessions_active{shard=\"" + std::to_string(shard) + "\"}"];
  };
  // Sessions of others must not count: start from counts that have settled
  // (a connection the test just closed may still be live in the gateway).
  auto before = gw.metrics();
  for (int i = 0; i < 25; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto now = gw.metrics();
    const bool settled = now["postino_sessions_active"] == before["postino_sessions_active"];
    before = std::move(now);
    if (settled) break;
  }
  const auto shards = static_cast<unsigned>(before["postino_shards"]);
  const auto every_shard_reached = [&] {
    auto m = gw.metrics();
    for (unsigned s = 0; s < shards; ++s)
      if (active(m, s) <= active(before, s)) return false;
    return true;
  };
  std::vector<std::unique_ptr<raw_client>> held;
  while (held.size() < most && (held.empty() || !every_shard_reached())) {
    held.push_back(std::make_unique<raw_client>(gw.smtp_port()));
    raw_client& s = *held.back();
    std::string line = login(s, user, pass);
    EXPECT_NE(line.find("STATUS: SUSPENDED"), std::string::npos) << line;
    s.send("MAIL FROM:<ACME>\r\n");
    EXPECT_EQ(s.reply(), "550 5.7.1 Account suspended\r\n");
  }
  EXPECT_GT(shards, 0u);
  EXPECT_TRUE(every_shard_reached()) << held.size() << " connections and a shard still had none";
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::int64_t query_number(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::int64_t n = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return n;
}

spool::record only_message(gateway& gw) {
  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
  auto messages = messages_in(read_journals(gw.data_dir()));
  EXPECT_EQ(messages.size(), 1u);
  return messages.empty() ? spool::record{} : messages[0];
}

std::int64_t credit_in(const std::string& line235) {
  std::smatch m;
  static const std::regex credit("CREDIT: (-?\\d+) ");
  return std::regex_search(line235, m, credit) ? std::stoll(m[1]) : -1;
}

}  // namespace postino::test
