#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "api/http_server.h"
#include "base/result.h"

namespace chronos::api {

struct ForwarderOptions {
  // Requests sent at once (one keep-alive connection per worker).
  unsigned workers = 16;
  // Requests waiting for a worker; beyond it forward() fails at once.
  size_t max_queued = 4096;
  absl::Duration connect_timeout = absl::Seconds(3);
  // Whole exchange unless forward() is given its own. Short: a worker
  // waiting on a leader that stopped answering holds up the requests
  // behind it.
  absl::Duration request_timeout = absl::Seconds(10);
  size_t max_response_bytes = 64 << 20;
};

// Sends API requests to another node (the leader) over HTTP/1.1 and hands
// back its response unchanged: status, headers and body (DESIGN "Writes to
// followers are proxied to the leader"). Headers are sent as given, minus
// connection-level ones. Beast stays inside forwarder.cc.
//
// Thread safety: forward() from any thread; `done` runs on a worker thread
// and must not block for long. stop() from the owner: requests still queued
// and exchanges under way complete with kUnavailable.
class Forwarder {
 public:
  using Done = std::function<void(Result<HttpResponse>)>;
  virtual ~Forwarder() = default;
  static std::unique_ptr<Forwarder> start(ForwarderOptions options);

  // `address` is host:port (IPv4 or a name that resolves to one). Errors:
  // kUnavailable when the node cannot be reached, answers garbage or the
  // queue is full.
  // `timeout` (when not zero) replaces request_timeout for this exchange,
  // for requests that wait on purpose (a trigger with ?wait=true).
  virtual void forward(const HttpRequest& request, std::string address, Done done,
                       absl::Duration timeout = absl::ZeroDuration()) = 0;
  virtual void stop() = 0;
};

}  // namespace chronos::api
