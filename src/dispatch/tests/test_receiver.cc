#include "dispatch/tests/test_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "base/check.h"
#include "base/strings.h"

namespace chronos::dispatch::testing {

namespace {

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the client gave up; nothing to do
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::string ReceivedRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

bool ReceivedRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return iequals(h.first, name); });
}

TestReceiver::TestReceiver() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHRONOS_CHECK(listen_fd_ >= 0) << "socket: " << std::strerror(errno);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  CHRONOS_CHECK(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
      << "bind: " << std::strerror(errno);
  CHRONOS_CHECK(::listen(listen_fd_, 128) == 0) << "listen: " << std::strerror(errno);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

TestReceiver::~TestReceiver() { stop(); }

std::string TestReceiver::url(std::string_view path) const {
  return str_cat("http://127.0.0.1:", port_, path);
}

void TestReceiver::script(std::vector<ScriptedResponse> responses) {
  std::lock_guard lock(mu_);
  for (auto& r : responses) script_.push_back(std::move(r));
}

void TestReceiver::set_default(ScriptedResponse response) {
  std::lock_guard lock(mu_);
  default_ = std::move(response);
}

std::vector<ReceivedRequest> TestReceiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t TestReceiver::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

bool TestReceiver::wait_for_requests(size_t n, absl::Duration timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                      [&] { return requests_.size() >= n; });
}

bool TestReceiver::wait_stop_for(absl::Duration d) {
  std::unique_lock lock(mu_);
  if (d == absl::InfiniteDuration()) {
    cv_.wait(lock, [&] { return stopping_; });
    return true;
  }
  return cv_.wait_for(lock, absl::ToChronoMilliseconds(d), [&] { return stopping_; });
}

void TestReceiver::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && listen_fd_ < 0) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard lock(mu_);
    threads = std::move(conn_threads_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void TestReceiver::accept_loop() {
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    conn_threads_.emplace_back([this, fd] {
      serve(fd);
      ::close(fd);
    });
  }
}

void TestReceiver::serve(int fd) {
  // Read until the header block ends, then the Content-Length body.
  std::string buf;
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  char chunk[16 * 1024];
  while (true) {
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string_view head(buf.data(), header_end);
        size_t pos = 0;
        while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
          pos += 2;
          size_t eol = head.find("\r\n", pos);
          std::string_view line = head.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
          size_t colon = line.find(':');
          if (colon != std::string_view::npos &&
              iequals(trim_whitespace(line.substr(0, colon)), "Content-Length")) {
            parse_int(trim_whitespace(line.substr(colon + 1)), &content_length);
          }
        }
      }
    }
    if (header_end != std::string::npos && buf.size() >= header_end + 4 + content_length) break;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return;  // client closed before a whole request
    buf.append(chunk, static_cast<size_t>(n));
  }

  ReceivedRequest req;
  req.received_at = std::chrono::steady_clock::now();
  std::string_view head(buf.data(), header_end);
  size_t first_eol = head.find("\r\n");
  std::string_view request_line = head.substr(0, first_eol);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.find(' ', sp1 + 1);
  req.method = std::string(request_line.substr(0, sp1));
  req.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view rest =
      first_eol == std::string_view::npos ? std::string_view() : head.substr(first_eol + 2);
  for (std::string_view line : split_skip_empty(rest, '\n')) {
    line = trim_whitespace(line);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    req.headers.emplace_back(std::string(trim_whitespace(line.substr(0, colon))),
                             std::string(trim_whitespace(line.substr(colon + 1))));
  }
  req.body = buf.substr(header_end + 4, content_length);

  ScriptedResponse resp;
  {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(req));
    if (!script_.empty()) {
      resp = std::move(script_.front());
      script_.pop_front();
    } else {
      resp = default_;
    }
  }
  cv_.notify_all();

  if (resp.hang) {
    wait_stop_for(absl::InfiniteDuration());
    return;
  }
  if (resp.delay > absl::ZeroDuration() && wait_stop_for(resp.delay)) return;
  std::string out = str_cat("HTTP/1.1 ", resp.status, " ", reason(resp.status), "\r\n");
  for (const auto& [k, v] : resp.headers) out += str_cat(k, ": ", v, "\r\n");
  out += str_cat("Content-Length: ", resp.body.size(), "\r\nConnection: close\r\n\r\n");
  send_all(fd, out);
  send_all(fd, resp.body);
  ::shutdown(fd, SHUT_WR);
}

}  // namespace chronos::dispatch::testing
