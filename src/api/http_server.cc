#include "api/http_server.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "base/strings.h"
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
    return Error::validation(std::string(field),
                             str_cat("port must be a number 0-65535, got \"",
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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServerOptions& options, const Handler& handler,
          std::atomic<bool>& stopping)
      : stream_(std::move(socket)), options_(options), handler_(handler), stopping_(stopping) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_s));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      close();
      return;
    }
    if (ec == http::error::body_limit) {
      send_error_and_close(http::status::payload_too_large, "PAYLOAD_TOO_LARGE",
                           str_cat("request body exceeds ", options_.max_body_bytes,
                                        " bytes"));
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
    keep_alive_ = msg.keep_alive() && !stopping_.load();
    version_ = msg.version();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    parse_target(std::string_view(msg.target().data(), msg.target().size()), req);
    for (const auto& field : msg) {
      req.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    req.body = std::move(msg.body());
    // The responder may run on any thread; it hops back to this
    // connection's strand before touching the stream.
    handler_(std::move(req), [self = shared_from_this()](HttpResponse resp) {
      asio::post(self->stream_.get_executor(),
                 [self, resp = std::move(resp)]() mutable { self->write(std::move(resp)); });
    });
  }

  void write(HttpResponse resp) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(resp.status), version_);
    res->set(http::field::server, "chronos");
    res->set(http::field::content_type, resp.content_type);
    for (auto& [k, v] : resp.headers) res->set(k, v);
    res->keep_alive(keep_alive_);
    res->body() = std::move(resp.body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) {
                          self->close();
                          return;
                        }
                        self->read();
                      });
  }

  void send_error_and_close(http::status status, std::string_view code, std::string_view msg) {
    keep_alive_ = false;
    HttpResponse resp;
    resp.status = static_cast<int>(status);
    resp.body = error_body(code, msg);
    write(std::move(resp));
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServerOptions& options_;
  const Handler& handler_;
  std::atomic<bool>& stopping_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(static_cast<int>(options_.threads)),
        acceptor_(asio::make_strand(ioc_)) {}

  ~BeastServer() override { stop(); }

  Status listen() {
    CHRONOS_ASSIGN_OR_RETURN(auto hp, split_host_port(options_.address, "server.http.address"));
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
                   str_cat("cannot listen on ", options_.address, ": ", ec.message()), {}};
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    for (unsigned i = 0; i < std::max(1u, options_.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return ok_status();
  }

  uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    // Give in-flight responses a moment by letting the loop run briefly,
    // then stop: sessions hold shared_ptrs and die with the io_context.
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if (!ec) {
        std::make_shared<Session>(std::move(s), options_, handler_, stopping_)->start();
      } else {
        spdlog::warn("http: accept failed: {}", ec.message());
      }
      accept();
    });
  }

  HttpServerOptions options_;
  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
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
