#pragma once

// A tiny HTTP/1.1 receiver on 127.0.0.1 for dispatcher tests: POSIX sockets,
// one accept thread plus one thread per connection. Parses the request line,
// headers and a Content-Length body (no chunked bodies), answers from a
// script (status, headers, body, delay, or hang), always with
// "Connection: close", and records every request it got.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace chronos::dispatch::testing {

struct ScriptedResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  absl::Duration delay = absl::ZeroDuration();  // before answering
  bool hang = false;  // never answer; the connection stays open until stop()
};

struct ReceivedRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::steady_clock::time_point received_at;

  // First header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// Thread-safe. Stops (promptly, also with hanging connections) on
// destruction.
class TestReceiver {
 public:
  TestReceiver();
  ~TestReceiver();
  TestReceiver(const TestReceiver&) = delete;
  TestReceiver& operator=(const TestReceiver&) = delete;

  int port() const { return port_; }
  std::string url(std::string_view path = "/hook") const;

  // Responses for the next requests, in order; after them, the default.
  void script(std::vector<ScriptedResponse> responses);
  void set_default(ScriptedResponse response);

  std::vector<ReceivedRequest> requests() const;
  size_t request_count() const;
  // True once at least n requests arrived; false after `timeout`.
  bool wait_for_requests(size_t n, absl::Duration timeout) const;

  void stop();

 private:
  void accept_loop();
  void serve(int fd);
  bool wait_stop_for(absl::Duration d);  // true if stopping

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  std::deque<ScriptedResponse> script_;    // guarded by mu_
  ScriptedResponse default_;               // guarded by mu_
  std::vector<ReceivedRequest> requests_;  // guarded by mu_
  std::vector<std::thread> conn_threads_;  // guarded by mu_
};

}  // namespace chronos::dispatch::testing
