#include "api/http_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "base/strings.h"
#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace chronos::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const std::string* HttpRequest::query_param(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? nullptr : &it->second;
}

const std::string* HttpRequest::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? nullptr : &it->second;
}

Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view address,
                                                         std::string_view field) {
  auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error::validation(std::string(field),
                             str_cat("must be host:port, got \"", address, "\""));
  }
  std::string host(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint32_t port = 0;
  if (!parse_int(address.substr(colon + 1), &port) || port > 65535) {
    return Error::validation(std::string(field), str_cat("port must be a number 0-65535, got \"",
                                                         address.substr(colon + 1), "\""));
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

void parse_target(std::string_view target, HttpRequest& req) {
  auto q = target.find('?');
  req.path = percent_decode(target.substr(0, q), false);
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      std::string key = percent_decode(pair.substr(0, eq), true);
      std::string value =
          eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), true);
      req.query.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
}

std::string error_body(std::string_view code, std::string_view message) {
  // Fixed texts only; no user input is echoed here, so no escaping needed.
  return str_cat(R"({"success":false,"error":{"code":")", code, R"(","message":")", message,
                 R"("}})");
}

// A response must reach the client within this long once it is ready; the
// idle timeout only bounds waiting for (and reading) the next request.
constexpr std::chrono::seconds kWriteTimeout{30};
// Accept errors (EMFILE, ENFILE, ENOBUFS, ...) are retried after a backoff
// that doubles from kAcceptBackoffMin up to kAcceptBackoffMax.
constexpr std::chrono::milliseconds kAcceptBackoffMin{100};
constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};
// At most one warning per kind per interval; the rest are counted.
constexpr std::chrono::seconds kWarnInterval{1};

// Counts warnings that arrive faster than kWarnInterval. Not thread-safe:
// each instance lives on one strand.
class WarnLimiter {
 public:
  // True if a warning may be logged now; `*suppressed` then holds how many
  // were swallowed since the last logged one.
  bool allow(size_t* suppressed) {
    auto now = std::chrono::steady_clock::now();
    if (last_ && now - *last_ < kWarnInterval) {
      ++suppressed_;
      return false;
    }
    last_ = now;
    *suppressed = std::exchange(suppressed_, 0);
    return true;
  }
  // Warnings swallowed since the last logged one (and forgets them).
  size_t take_suppressed() { return std::exchange(suppressed_, 0); }

 private:
  std::optional<std::chrono::steady_clock::time_point> last_;
  size_t suppressed_ = 0;
};

// " (N similar warnings suppressed)", or nothing for N = 0.
std::string suppressed_note(size_t n) {
  return n == 0 ? std::string() : str_cat(" (", n, " similar warnings suppressed)");
}

class Session;

// State shared by the server and its sessions. Owned by BeastServer and
// declared before its io_context, so it outlives every session (sessions
// still queued in the io_context die with it).
struct ServerCore {
  ServerCore(HttpServerOptions o, Handler h) : options(std::move(o)), handler(std::move(h)) {}

  const HttpServerOptions options;
  const Handler handler;
  // Open connections, rejected ones excluded. A slot is taken in the accept
  // handler and released by ~Session.
  std::atomic<size_t> live_sessions{0};
  // Requests handed to the handler whose response has not been written yet
  // (or whose connection died first). stop() drains this to 0.
  std::atomic<size_t> in_flight{0};

  std::mutex mu;
  std::condition_variable drained_cv;  // signalled (under mu) when in_flight hits 0
  // Set once, under mu, by stop_accepting(); read lock-free on the strands.
  std::atomic<bool> stopping{false};
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;  // guarded by mu
  uint64_t next_session_id = 0;                                   // guarded by mu

  void request_started() { in_flight.fetch_add(1); }
  void request_finished() {
    if (in_flight.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      drained_cv.notify_all();
    }
  }
};

HttpResponse internal_error_response() {
  HttpResponse resp;
  resp.status = 500;
  resp.body = error_body("INTERNAL", "internal error");
  return resp;
}

// One connection. Owned by shared_ptrs held by its pending asio operations
// and by the Responder of a request being handled; it dies when neither is
// left. All members except the executor are confined to the connection's
// strand; close_if_idle()/close_now() are the entry points from other threads.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // Takes over one `live_sessions` slot that the caller already counted.
  Session(tcp::socket socket, ServerCore& core) : stream_(std::move(socket)), core_(core) {}

  ~Session() {
    if (awaiting_response_) core_.request_finished();
    if (registered_) {
      std::lock_guard<std::mutex> lock(core_.mu);
      core_.sessions.erase(id_);
    }
    core_.live_sessions.fetch_sub(1);
  }

  // Adds the session to the registry that stop_accepting() walks. False if
  // the server is already stopping (the session must then be dropped).
  bool register_with_server() {
    std::lock_guard<std::mutex> lock(core_.mu);
    if (core_.stopping.load()) return false;
    id_ = core_.next_session_id++;
    core_.sessions.emplace(id_, weak_from_this());
    registered_ = true;
    return true;
  }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  // Any thread: closes the connection if it is waiting for a new request and
  // nothing of one has arrived yet. A connection busy with a request closes
  // after its response instead (the strands check core_.stopping).
  void close_if_idle() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      // No parser yet: read() has not run, so nothing was received either.
      bool nothing_received =
          !self->parser_ || (!self->parser_->got_some() && self->buffer_.size() == 0);
      if (self->phase_ == Phase::kReading && nothing_received) {
        self->close();
      }
    });
  }

  // Only once no thread runs the io_context any more (end of stop()).
  void close_now() { close(); }

 private:
  enum class Phase { kReading, kHandling, kWriting, kClosed };

  void read() {
    if (phase_ == Phase::kClosed) return;  // closed by close_if_idle() before the first read
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->body_limit(core_.options.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(core_.options.max_header_bytes));
    stream_.expires_after(std::chrono::seconds(core_.options.idle_timeout_s));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        phase_ == Phase::kClosed) {
      close();
      return;
    }
    head_ = false;
    if (ec == http::error::body_limit) {
      send_error_and_close(
          http::status::payload_too_large, "PAYLOAD_TOO_LARGE",
          str_cat("request body exceeds ", core_.options.max_body_bytes, " bytes"));
      return;
    }
    if (ec == http::error::header_limit) {
      send_error_and_close(http::status::request_header_fields_too_large, "PAYLOAD_TOO_LARGE",
                           "request headers too large");
      return;
    }
    if (ec) {
      send_error_and_close(http::status::bad_request, "INVALID_REQUEST", "malformed HTTP request");
      return;
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive() && !core_.stopping.load();
    version_ = msg.version();
    head_ = msg.method() == http::verb::head;
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    parse_target(req.target, req);
    for (const auto& field : msg) {
      req.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    req.body = std::move(msg.body());

    phase_ = Phase::kHandling;
    awaiting_response_ = true;
    core_.request_started();
    // Guards "exactly once": a second call (or the 500 below racing a
    // responder the handler already used) is dropped.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    // The responder may run on any thread; it hops back to this
    // connection's strand before touching the stream.
    Responder respond = [self = shared_from_this(), answered](HttpResponse resp) {
      if (answered->exchange(true)) {
        spdlog::error("http: a request was answered twice; extra response dropped");
        return;
      }
      asio::post(self->stream_.get_executor(),
                 [self, resp = std::move(resp)]() mutable { self->write(std::move(resp)); });
    };
    std::string method = req.method;
    std::string path = req.path;
    std::string failure;
    try {
      core_.handler(std::move(req), respond);
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    if (!failure.empty()) {
      spdlog::error("http: handler for {} {} threw: {}", method, path, failure);
      if (!answered->exchange(true)) write(internal_error_response());
    }
  }

  void write(HttpResponse resp) {
    if (phase_ == Phase::kClosed) {  // close_now() got here first
      finish_request();
      return;
    }
    phase_ = Phase::kWriting;
    keep_alive_ = keep_alive_ && !core_.stopping.load();
    try {
      if (head_) {
        // Same headers as GET, Content-Length included, but no body.
        auto res = std::make_shared<http::response<http::empty_body>>();
        fill_header(*res, resp);
        if (resp.status >= 200 && resp.status != 204) res->content_length(resp.body.size());
        send(std::move(res));
      } else {
        auto res = std::make_shared<http::response<http::string_body>>();
        fill_header(*res, resp);
        res->body() = std::move(resp.body);
        res->prepare_payload();
        send(std::move(res));
      }
    } catch (const std::exception& e) {
      // Beast rejects e.g. a status outside 0..999; nothing sane can be sent.
      spdlog::error("http: cannot build response (status {}): {}", resp.status, e.what());
      close();
      finish_request();
    }
  }

  template <class Message>
  void fill_header(Message& res, const HttpResponse& resp) {
    res.result(static_cast<unsigned>(resp.status));
    res.version(version_);
    res.set(http::field::server, "chronos");
    res.set(http::field::content_type, resp.content_type);
    for (const auto& [k, v] : resp.headers) res.set(k, v);
    res.keep_alive(keep_alive_);
  }

  template <class Body>
  void send(std::shared_ptr<http::response<Body>> res) {
    // A fresh deadline: the read deadline may be nearly spent by a slow
    // upload plus a slow handler.
    stream_.expires_after(kWriteTimeout);
    http::async_write(
        stream_, *res,
        [self = shared_from_this(), res](beast::error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    bool again = !ec && keep_alive_ && !core_.stopping.load() && phase_ != Phase::kClosed;
    if (!again) close();
    // After close(), so a draining stop() finds this connection closed.
    finish_request();
    if (again) read();
  }

  void finish_request() {
    if (!awaiting_response_) return;
    awaiting_response_ = false;
    core_.request_finished();
  }

  void send_error_and_close(http::status status, std::string_view code, std::string_view msg) {
    keep_alive_ = false;
    HttpResponse resp;
    resp.status = static_cast<int>(status);
    resp.body = error_body(code, msg);
    write(std::move(resp));
  }

  void close() {
    phase_ = Phase::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  ServerCore& core_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::kReading;
  bool awaiting_response_ = false;  // counted in core_.in_flight
  bool keep_alive_ = false;
  bool head_ = false;
  unsigned version_ = 11;
  bool registered_ = false;
  uint64_t id_ = 0;
};

// Owns the io_context, its threads and the acceptor. start()/stop() from one
// controlling thread; post() from any thread; the rest runs on the I/O
// threads (acceptor state on the acceptor's strand).
//
// Lifetime contract: the server outlives every post() caller and every
// Responder it handed out (a Responder holds its connection, whose socket
// belongs to this io_context). A Responder called after stop() returned is
// harmless: its write is queued into the stopped io_context and discarded
// with it.
class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerOptions options, Handler handler)
      : core_(std::move(options), std::move(handler)),
        ioc_(static_cast<int>(std::max(1u, core_.options.threads))),
        work_(asio::make_work_guard(ioc_)),
        acceptor_(asio::make_strand(ioc_)),
        accept_timer_(acceptor_.get_executor()) {}

  ~BeastServer() override { stop(); }

  Status listen() {
    const auto& options = core_.options;
    CHRONOS_ASSIGN_OR_RETURN(auto hp, split_host_port(options.address, "server.http.address"));
    beast::error_code ec;
    auto addr = asio::ip::make_address(hp.first, ec);
    if (ec) {
      return Error::validation("server.http.address",
                               str_cat("\"", hp.first, "\" is not an IP address"));
    }
    tcp::endpoint ep(addr, hp.second);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Error{ErrorCode::kUnavailable,
                   str_cat("cannot listen on ", options.address, ": ", ec.message()),
                   {}};
    }
    port_ = acceptor_.local_endpoint().port();
    asio::dispatch(acceptor_.get_executor(), [this] { accept(); });
    for (unsigned i = 0; i < std::max(1u, options.threads); ++i) {
      threads_.emplace_back([this] {
        name_this_thread("http");
        run_io();
      });
    }
    return ok_status();
  }

  uint16_t port() const override { return port_; }

  void post(std::function<void()> fn) override {
    // Racing the end of stop(), `fn` may still be queued; it is then
    // destroyed unrun with the io_context.
    if (io_stopped_.load()) return;
    asio::post(ioc_, std::move(fn));
  }

  void stop_accepting() override {
    std::vector<std::weak_ptr<Session>> open;
    {
      std::lock_guard<std::mutex> lock(core_.mu);
      if (core_.stopping.exchange(true)) return;
      open.reserve(core_.sessions.size());
      for (const auto& [id, session] : core_.sessions) open.push_back(session);
    }
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      accept_timer_.cancel();
    });
    // Sessions registered later see `stopping` themselves; busy ones close
    // after their current response.
    for (const auto& weak : open) {
      if (auto session = weak.lock()) session->close_if_idle();
    }
  }

  void stop() override {
    if (stopped_.exchange(true)) return;
    stop_accepting();
    // The I/O threads keep running meanwhile: responses arrive by posts
    // from other threads and must still be written.
    {
      std::unique_lock<std::mutex> lock(core_.mu);
      bool drained =
          core_.drained_cv.wait_for(lock, std::chrono::milliseconds(core_.options.drain_timeout_ms),
                                    [this] { return core_.in_flight.load() == 0; });
      if (!drained) {
        spdlog::warn("http: {} request(s) still unanswered after {} ms; closing their connections",
                     core_.in_flight.load(), core_.options.drain_timeout_ms);
      }
    }
    io_stopped_ = true;
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // No thread runs the io_context now: close what is left directly.
    std::vector<std::weak_ptr<Session>> left;
    {
      std::lock_guard<std::mutex> lock(core_.mu);
      for (const auto& [id, session] : core_.sessions) left.push_back(session);
    }
    for (const auto& weak : left) {
      if (auto session = weak.lock()) session->close_now();
    }
  }

 private:
  // An exception escaping a completion handler must not end the process or
  // the thread: log it and keep running (run() resumes without restart()).
  void run_io() {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: exception on I/O thread: {}", e.what());
      } catch (...) {
        spdlog::error("http: unknown exception on I/O thread");
      }
    }
  }

  // On the acceptor's strand, like everything accept_* below.
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      on_accept(ec, std::move(s));
    });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || core_.stopping.load()) return;
    if (ec) {
      size_t suppressed = 0;
      if (accept_warnings_.allow(&suppressed)) {
        spdlog::warn("http: accept failed: {}; retrying in {} ms{}", ec.message(),
                     accept_backoff_.count(), suppressed_note(suppressed));
      }
      accept_timer_.expires_after(accept_backoff_);
      accept_timer_.async_wait([this](beast::error_code wait_ec) {
        if (wait_ec || core_.stopping.load()) return;
        accept();
      });
      accept_backoff_ = std::min(accept_backoff_ * 2, kAcceptBackoffMax);
      return;
    }
    accept_backoff_ = kAcceptBackoffMin;
    if (size_t n = accept_warnings_.take_suppressed(); n > 0) {
      spdlog::info("http: accepting again ({} accept failures not logged)", n);
    }
    admit(std::move(socket));
    accept();
  }

  void admit(tcp::socket socket) {
    if (core_.live_sessions.fetch_add(1) >= core_.options.max_connections) {
      core_.live_sessions.fetch_sub(1);
      size_t suppressed = 0;
      if (reject_warnings_.allow(&suppressed)) {
        spdlog::warn("http: {} connections open, refusing more{}", core_.options.max_connections,
                     suppressed_note(suppressed));
      }
      reject(socket);
      return;
    }
    auto session = std::make_shared<Session>(std::move(socket), core_);
    if (!session->register_with_server()) return;  // stopping: dropped, socket closed
    session->start();
  }

  // Best effort 503 without blocking: a fresh socket's send buffer takes the
  // few bytes at once; if not, the client just sees the close.
  static void reject(tcp::socket& socket) {
    static const std::string kResponse = [] {
      std::string body = error_body("UNAVAILABLE", "too many connections");
      return str_cat("HTTP/1.1 503 Service Unavailable\r\nServer: chronos\r\n",
                     "Content-Type: application/json\r\nConnection: close\r\n",
                     "Retry-After: 1\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
    }();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    if (!ec) socket.write_some(asio::buffer(kResponse), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
  }

  ServerCore core_;  // first: outlives the io_context and the sessions in it
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_;                               // acceptor strand
  std::chrono::milliseconds accept_backoff_ = kAcceptBackoffMin;  // acceptor strand
  WarnLimiter accept_warnings_;                                   // acceptor strand
  WarnLimiter reject_warnings_;                                   // acceptor strand
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> io_stopped_{false};  // io_context stopped; post() drops
  uint16_t port_ = 0;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      Handler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  CHRONOS_RETURN_IF_ERROR(server->listen());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace chronos::api
