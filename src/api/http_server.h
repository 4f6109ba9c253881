#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace chronos::api {

// A parsed HTTP request, independent of the server library.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // request target as received (path and query, encoded)
  std::string path;    // decoded path without the query ("/api/v1/jobs/x")
  std::multimap<std::string, std::string> query;  // decoded query parameters
  std::map<std::string, std::string> headers;     // names lower-cased
  std::string body;

  // First value of a query parameter, or nullptr.
  const std::string* query_param(const std::string& name) const;
  // Header value by lower-case name, or nullptr.
  const std::string* header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Completes a request; may be called from any thread, exactly once.
using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest, Responder)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1:8080";  // host:port; port 0 picks one
  unsigned threads = 2;
  size_t max_body_bytes = 1 << 20;     // larger bodies get 413
  size_t max_header_bytes = 16 << 10;  // larger headers get 431
  unsigned idle_timeout_s = 60;        // keep-alive connections idle longer are closed
  size_t max_connections = 4096;       // more are accepted and closed at once
  unsigned drain_timeout_ms = 3000;    // stop(): wait this long for in-flight responses
};

// HTTP/1.1 server (Boost.Beast on asio; Beast stays inside http_server.cc).
// Keep-alive, one request at a time per connection. The handler runs on an
// I/O thread and must not block: it answers through the Responder, possibly
// later from another thread.
//
// Thread safety: start()/stop() from one controlling thread; the handler is
// called concurrently from the I/O threads.
class HttpServer {
 public:
  virtual ~HttpServer() = default;
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                   Handler handler);
  // Port actually bound (useful with port 0).
  virtual uint16_t port() const = 0;
  // Runs `fn` on one of the I/O threads (never inline). Used to move work
  // off threads that must stay responsive (the Raft loop). Safe from any
  // thread until stop() returns; afterwards `fn` is dropped unrun.
  virtual void post(std::function<void()> fn) = 0;
  // Stops accepting connections and turns keep-alive off, so each open
  // connection closes after its current response. Requests already being
  // handled still get their response. Idempotent.
  virtual void stop_accepting() = 0;
  // stop_accepting(), then waits (bounded by `drain_timeout_ms` of the
  // options) until every request handed to the handler has been answered,
  // then closes what is left and joins the I/O threads. Idempotent.
  virtual void stop() = 0;
};

// Splits "host:port"; port must be 0..65535. Error field is `field`.
Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view address,
                                                         std::string_view field);

}  // namespace chronos::api
