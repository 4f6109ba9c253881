#include "api/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace chronos::api {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Every wait in these tests is bounded by this (2 shared cores: generous).
constexpr auto kDeadline = std::chrono::seconds(10);
constexpr std::string_view kHelloBody = R"({"hello":"world"})";

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking POSIX client socket speaking raw HTTP/1.1. Every recv is
// bounded by kDeadline (SO_RCVTIMEO).
class Client {
 public:
  explicit Client(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_ < 0) return;
    timeval tv{};
    tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(kDeadline).count();
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (port != 0) connect(port);
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connect(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    return connected_;
  }
  bool connected() const { return connected_; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response. For a HEAD request no body is read, whatever
  // Content-Length says. nullopt if the connection ended or timed out first.
  std::optional<RawResponse> read_response(bool head = false) {
    auto deadline = steady_clock::now() + kDeadline;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (steady_clock::now() > deadline || !fill()) return std::nullopt;
    }
    RawResponse resp;
    std::string_view head_text(buf_.data(), header_end);
    auto line_end = head_text.find("\r\n");
    std::string_view status_line = head_text.substr(0, line_end);
    if (status_line.substr(0, 9) != "HTTP/1.1 " || status_line.size() < 12) return std::nullopt;
    resp.status = std::stoi(std::string(status_line.substr(9, 3)));
    while (line_end != std::string_view::npos) {
      head_text.remove_prefix(line_end + 2);
      line_end = head_text.find("\r\n");
      std::string_view line = head_text.substr(0, line_end);
      auto colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      std::string value(line.substr(colon + 1));
      resp.headers[absl::AsciiStrToLower(std::string(line.substr(0, colon)))] =
          std::string(absl::StripAsciiWhitespace(value));
    }
    size_t body_size = 0;
    if (!head && resp.headers.count("content-length") > 0) {
      body_size = std::stoul(resp.headers["content-length"]);
    }
    size_t total = header_end + 4 + body_size;
    while (buf_.size() < total) {
      if (steady_clock::now() > deadline || !fill()) return std::nullopt;
    }
    resp.body = buf_.substr(header_end + 4, body_size);
    buf_.erase(0, total);
    return resp;
  }

  // Reads until the server closes the connection (EOF or reset) and returns
  // the bytes not consumed yet; nullopt if it stayed open for kDeadline.
  std::optional<std::string> read_until_closed() {
    auto deadline = steady_clock::now() + kDeadline;
    for (;;) {
      if (steady_clock::now() > deadline) return std::nullopt;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
      return std::exchange(buf_, "");  // 0: EOF; other errors: reset
    }
  }

 private:
  bool fill() {
    char chunk[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }

  int fd_;
  bool connected_ = false;
  std::string buf_;
};

std::string get(std::string_view path, std::string_view extra_headers = "") {
  return std::string("GET ") + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(extra_headers) + "\r\n";
}

// Counts log lines that contain a given text; installed as the default
// logger for the lifetime of the guard.
class CountingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CountingSink(std::string needle) : needle_(std::move(needle)) {}
  size_t count() const { return count_.load(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (text.find(needle_) != std::string_view::npos) count_.fetch_add(1);
  }
  void flush_() override {}

 private:
  std::string needle_;
  std::atomic<size_t> count_{0};
};

class HttpServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Responders must be done with before the server goes away.
    join_workers();
    if (server_) server_->stop();
    join_workers();
    {
      std::lock_guard<std::mutex> lock(mu_);
      parked_.clear();
    }
    server_.reset();
  }

  void start(HttpServerOptions options = {}) {
    options.address = "127.0.0.1:0";
    auto server = HttpServer::start(
        options, [this](HttpRequest req, Responder respond) { handle(req, std::move(respond)); });
    ASSERT_TRUE(server.ok());
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }

  uint16_t port() const { return server_->port(); }

  // Routes of the test handler.
  void handle(const HttpRequest& req, Responder respond) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++handled_;
      handler_thread_ = std::this_thread::get_id();
    }
    cv_.notify_all();
    if (req.path == "/hello") {
      HttpResponse resp;
      resp.body = std::string(kHelloBody);
      respond(std::move(resp));
    } else if (req.path == "/slow") {
      // Answers later, from a thread that is not an I/O thread.
      int delay_ms = 200;
      if (const std::string* ms = req.query_param("ms")) delay_ms = std::stoi(*ms);
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([respond = std::move(respond), delay_ms] {
        std::this_thread::sleep_for(milliseconds(delay_ms));
        HttpResponse resp;
        resp.body = "slow";
        respond(std::move(resp));
      });
    } else if (req.path == "/never") {
      std::lock_guard<std::mutex> lock(mu_);
      parked_.push_back(std::move(respond));
    } else if (req.path == "/throw") {
      throw std::runtime_error("boom");
    } else {
      HttpResponse resp;
      resp.status = 404;
      respond(std::move(resp));
    }
  }

  // Waits until the handler has been entered `n` times in total.
  bool wait_handled(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return handled_ >= n; });
  }

  void join_workers() {
    for (;;) {
      std::vector<std::thread> workers;
      {
        std::lock_guard<std::mutex> lock(mu_);
        workers.swap(workers_);
      }
      if (workers.empty()) return;
      for (auto& t : workers) t.join();
    }
  }

  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  int handled_ = 0;                   // guarded by mu_
  std::thread::id handler_thread_;    // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_
  std::vector<Responder> parked_;     // guarded by mu_
};

TEST_F(HttpServerTest, ServesSimpleGet) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/hello")));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, kHelloBody);
  EXPECT_EQ(resp->header("content-type"), "application/json");
}

TEST_F(HttpServerTest, BodyOneByteOverLimitGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 1 << 20;
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  std::string body((1 << 20) + 1, 'x');
  std::string request = "POST /hello HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n" +
                        std::string("Content-Length: ") + std::to_string(body.size()) + "\r\n\r\n" +
                        body;
  // The server answers after the headers and closes; the rest of the upload
  // may then fail, which is fine.
  std::thread writer([&] { c.send_all(request); });
  auto resp = c.read_response();
  writer.join();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 413);
  EXPECT_NE(resp->body.find("PAYLOAD_TOO_LARGE"), std::string::npos);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(handled_, 0) << "the handler must not see an oversized body";
}

TEST_F(HttpServerTest, HeadResponseHasContentLengthButNoBody) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all("HEAD /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
  auto all = c.read_until_closed();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->substr(0, 12), "HTTP/1.1 200");
  EXPECT_NE(all->find("Content-Length: " + std::to_string(kHelloBody.size()) + "\r\n"),
            std::string::npos)
      << *all;
  // Everything received is the header block: it ends the stream.
  EXPECT_EQ(all->find("\r\n\r\n"), all->size() - 4) << *all;
}

TEST_F(HttpServerTest, PipelinedGetAfterHeadParses) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n" + get("/hello")));
  auto head = c.read_response(/*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-length"), std::to_string(kHelloBody.size()));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, kHelloBody);
}

TEST_F(HttpServerTest, DeliversResponseAnsweredLaterFromAnotherThread) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/slow")));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "slow");
}

// Regression: the read deadline used to cover the handler's time too, so a
// response slower than idle_timeout_s could hit an already expired deadline.
TEST_F(HttpServerTest, ResponseSlowerThanIdleTimeoutIsStillDelivered) {
  HttpServerOptions options;
  options.idle_timeout_s = 1;
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/slow?ms=1300")));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->body, "slow");
}

TEST_F(HttpServerTest, StopDeliversInFlightResponseWithinDrainTimeout) {
  HttpServerOptions options;
  options.drain_timeout_ms = 5000;
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/slow")));
  ASSERT_TRUE(wait_handled(1));
  auto t0 = steady_clock::now();
  server_->stop();
  auto elapsed = steady_clock::now() - t0;
  EXPECT_LT(elapsed, milliseconds(options.drain_timeout_ms));
  // The response sits in the client's socket buffer by now.
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "slow");
  EXPECT_EQ(resp->header("connection"), "close");
  EXPECT_EQ(c.read_until_closed(), std::optional<std::string>(""));
}

TEST_F(HttpServerTest, StopGivesUpAfterDrainTimeoutWhenNoResponseComes) {
  HttpServerOptions options;
  options.drain_timeout_ms = 300;
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/never")));
  ASSERT_TRUE(wait_handled(1));
  auto t0 = steady_clock::now();
  server_->stop();
  auto elapsed = steady_clock::now() - t0;
  EXPECT_GE(elapsed, milliseconds(options.drain_timeout_ms));
  EXPECT_LT(elapsed, kDeadline);
  // The unanswered connection is closed without a response.
  EXPECT_EQ(c.read_until_closed(), std::optional<std::string>(""));
}

TEST_F(HttpServerTest, ResponderCalledAfterStopIsHarmless) {
  HttpServerOptions options;
  options.drain_timeout_ms = 50;
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/never")));
  ASSERT_TRUE(wait_handled(1));
  server_->stop();
  Responder late;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_EQ(parked_.size(), 1u);
    late = std::move(parked_.front());
    parked_.clear();
  }
  late(HttpResponse{});
  late = nullptr;
  EXPECT_EQ(c.read_until_closed(), std::optional<std::string>(""));
}

TEST_F(HttpServerTest, StopAcceptingClosesIdleKeepAliveConnections) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/hello")));
  ASSERT_TRUE(c.read_response());
  server_->stop_accepting();
  EXPECT_EQ(c.read_until_closed(), std::optional<std::string>(""));
}

TEST_F(HttpServerTest, StopAcceptingLetsBusyConnectionFinishWithConnectionClose) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/slow")));
  ASSERT_TRUE(wait_handled(1));
  server_->stop_accepting();
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->body, "slow");
  EXPECT_EQ(resp->header("connection"), "close");
  EXPECT_EQ(c.read_until_closed(), std::optional<std::string>(""));
}

TEST_F(HttpServerTest, StopAcceptingRefusesNewConnections) {
  start();
  server_->stop_accepting();
  // The acceptor closes asynchronously: a connection may still get through
  // the handshake, but it is closed without being served.
  Client c(port());
  if (c.connected()) {
    c.send_all(get("/hello"));
    auto rest = c.read_until_closed();
    ASSERT_TRUE(rest);
    EXPECT_EQ(*rest, "");
  }
}

TEST_F(HttpServerTest, HandlerExceptionYields500AndServerKeepsServing) {
  start();
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/throw")));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 500);
  EXPECT_EQ(resp->body,
            R"({"success":false,"error":{"code":"INTERNAL","message":"internal error"}})");
  ASSERT_TRUE(c.send_all(get("/hello")));
  resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  Client other(port());
  ASSERT_TRUE(other.connected());
  ASSERT_TRUE(other.send_all(get("/hello")));
  resp = other.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
}

TEST_F(HttpServerTest, ConnectionBeyondMaxConnectionsIsClosedPromptly) {
  HttpServerOptions options;
  options.max_connections = 2;
  start(options);
  Client a(port());
  Client b(port());
  for (Client* c : {&a, &b}) {
    ASSERT_TRUE(c->connected());
    ASSERT_TRUE(c->send_all(get("/hello")));
    ASSERT_TRUE(c->read_response());  // both are open sessions now
  }
  Client third(port());
  ASSERT_TRUE(third.connected());  // the kernel completes the handshake
  auto t0 = steady_clock::now();
  auto rest = third.read_until_closed();
  ASSERT_TRUE(rest) << "third connection stayed open";
  EXPECT_LT(steady_clock::now() - t0, std::chrono::seconds(5));
  if (!rest->empty()) {
    EXPECT_EQ(rest->substr(0, 12), "HTTP/1.1 503") << *rest;
  }
  // The first two still work.
  ASSERT_TRUE(a.send_all(get("/hello")));
  auto resp = a.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
}

TEST_F(HttpServerTest, ClosedConnectionFreesItsSlot) {
  HttpServerOptions options;
  options.max_connections = 1;
  start(options);
  {
    Client a(port());
    ASSERT_TRUE(a.connected());
    ASSERT_TRUE(a.send_all(get("/hello")));
    ASSERT_TRUE(a.read_response());
  }
  // The server notices the close asynchronously; retry until it has.
  auto deadline = steady_clock::now() + kDeadline;
  bool served = false;
  while (!served && steady_clock::now() < deadline) {
    Client b(port());
    if (b.connected() && b.send_all(get("/hello"))) {
      auto resp = b.read_response();
      served = resp && resp->status == 200;
    }
    if (!served) std::this_thread::sleep_for(milliseconds(10));  // retry pacing only
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpServerTest, PostRunsFunctionOnAnIoThread) {
  HttpServerOptions options;
  options.threads = 1;  // so the handler's thread is the only I/O thread
  start(options);
  Client c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(get("/hello")));
  ASSERT_TRUE(c.read_response());
  std::promise<std::thread::id> ran_on;
  auto future = ran_on.get_future();
  server_->post([&ran_on] { ran_on.set_value(std::this_thread::get_id()); });
  ASSERT_EQ(future.wait_for(kDeadline), std::future_status::ready);
  auto id = future.get();
  EXPECT_NE(id, std::this_thread::get_id());
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(id, handler_thread_);
}

TEST_F(HttpServerTest, PostAfterStopDropsFunctionUnrun) {
  start();
  server_->stop();
  auto token = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  server_->post([token, &ran] { ran = true; });
  server_.reset();
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(token.use_count(), 1) << "the dropped function was not destroyed";
}

// Regression: an accept error (here EMFILE) made the accept loop spin,
// logging ~100k lines/s. Now it retries with backoff and logs at most one
// line per second, and accepts again once descriptors are available.
TEST_F(HttpServerTest, AcceptErrorsBackOffAndRecover) {
  start();
  auto sink = std::make_shared<CountingSink>("accept failed");
  auto test_logger = std::make_shared<spdlog::logger>("http_test", sink);
  auto saved_logger = spdlog::default_logger();
  spdlog::set_default_logger(test_logger);

  Client c(0);  // the client's descriptor, taken before the limit drops
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int probe = ::dup(STDERR_FILENO);  // the lowest free descriptor number
  ASSERT_GE(probe, 0);
  ::close(probe);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(probe);  // no new descriptor fits
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);

  bool connected = c.connect(port());  // completes in the kernel backlog
  auto deadline = steady_clock::now() + kDeadline;
  while (sink->count() == 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));  // polling a counter, bounded
  }
  size_t first = sink->count();
  // Measurement window (not synchronisation): a spinning loop would log
  // thousands of lines here, backoff plus rate limit at most one more.
  std::this_thread::sleep_for(milliseconds(1200));
  size_t during = sink->count();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);

  ASSERT_TRUE(connected);
  EXPECT_GE(first, 1u);
  EXPECT_LE(during, 2u);
  // The retry (at most 1 s later) accepts the waiting connection.
  ASSERT_TRUE(c.send_all(get("/hello")));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);

  server_->stop();
  spdlog::set_default_logger(saved_logger);
}

}  // namespace
}  // namespace chronos::api
