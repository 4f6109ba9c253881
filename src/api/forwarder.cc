#include "api/forwarder.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "base/thread_name.h"

namespace chronos::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Connection-level headers are not forwarded (RFC 9110 §7.6.1); Host and
// Content-Length are set for the new hop.
bool is_hop_header(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                             "te", "trailer", "upgrade", "host", "content-length"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

struct Job {
  HttpRequest request;
  std::string address;
  Forwarder::Done done;
  absl::Duration timeout;
};

Error unavailable(std::string_view address, std::string_view what, const beast::error_code& ec) {
  return Error{
      ErrorCode::kUnavailable,
      str_cat("forwarding to the leader at ", address, " failed: ", what, ": ", ec.message()),
      {}};
}

// One worker: its own io_context (run only by this thread, one operation at
// a time, so the async calls read like blocking ones with timeouts) and one
// keep-alive connection to the last address it talked to.
class Worker {
 public:
  explicit Worker(const ForwarderOptions& options) : options_(options), stream_(ioc_) {}

  // Aborts the exchange under way, if any (any thread): its pending
  // operation completes with operation_aborted on the worker's thread.
  void cancel() {
    asio::post(ioc_, [this] {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
    });
  }

  Result<HttpResponse> exchange(const Job& job) {
    // Connections idle longer than kMaxIdle are not reused: the other side
    // closes idle keep-alive connections (60 s by default), and a request
    // sent on one it is closing may or may not have been processed.
    auto now = std::chrono::steady_clock::now();
    bool reused = connected_ && job.address == address_ && now - last_used_ < kMaxIdle;
    auto result = attempt(job, reused);
    // A reused connection that fails while the request is being written was
    // closed by the other side before it read the request: nothing was
    // processed, so one retry on a fresh connection is safe. A failure after
    // the request was sent is not retried (the write may have happened).
    if (!result.ok() && reused && !request_sent_) result = attempt(job, false);
    last_used_ = std::chrono::steady_clock::now();
    return result;
  }

 private:
  template <typename Op>
  beast::error_code run(Op&& op) {
    beast::error_code result = asio::error::would_block;
    op([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    connected_ = false;
  }

  static constexpr auto kMaxIdle = std::chrono::seconds(20);

  Result<HttpResponse> attempt(const Job& job, bool reuse) {
    request_sent_ = false;
    if (!reuse) {
      if (connected_) close();
      auto hp = split_host_port(job.address, "address");
      if (!hp.ok()) return hp.error();
      tcp::resolver resolver(ioc_);
      beast::error_code ec;
      auto endpoints = resolver.resolve(hp->first, std::to_string(hp->second), ec);
      if (ec) return unavailable(job.address, "resolve", ec);
      stream_.expires_after(absl::ToChronoMilliseconds(options_.connect_timeout));
      ec = run([&](auto handler) { stream_.async_connect(endpoints, handler); });
      if (ec) {
        close();
        return unavailable(job.address, "connect", ec);
      }
      connected_ = true;
      address_ = job.address;
    }

    const HttpRequest& in = job.request;
    http::verb verb = http::string_to_verb(in.method);
    if (verb == http::verb::unknown) {
      return Error{ErrorCode::kValidation, str_cat("method ", in.method, " cannot be forwarded"),
                   "method"};
    }
    http::request<http::string_body> req{verb, in.target.empty() ? in.path : in.target, 11};
    for (const auto& [name, value] : in.headers) {
      if (!is_hop_header(name)) req.set(name, value);
    }
    req.set(http::field::host, job.address);
    req.keep_alive(true);
    req.body() = in.body;
    req.prepare_payload();

    stream_.expires_after(absl::ToChronoMilliseconds(
        job.timeout > absl::ZeroDuration() ? job.timeout : options_.request_timeout));
    beast::error_code ec = run([&](auto handler) { http::async_write(stream_, req, handler); });
    if (ec) {
      close();
      return unavailable(job.address, "send", ec);
    }
    request_sent_ = true;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.max_response_bytes);
    ec = run([&](auto handler) { http::async_read(stream_, buffer, parser, handler); });
    if (ec) {
      close();
      return unavailable(job.address, "read the answer", ec);
    }
    auto msg = parser.release();
    if (!msg.keep_alive()) close();

    HttpResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) {
      std::string_view name(field.name_string().data(), field.name_string().size());
      std::string value(field.value());
      if (iequals(name, "content-type")) {
        out.content_type = std::move(value);
      } else if (!is_hop_header(name) && !iequals(name, "date") && !iequals(name, "server")) {
        out.headers.emplace_back(std::string(name), std::move(value));
      }
    }
    out.body = std::move(msg.body());
    return out;
  }

  const ForwarderOptions& options_;
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  bool connected_ = false;
  bool request_sent_ = false;
  std::chrono::steady_clock::time_point last_used_{};
  std::string address_;
};

class ForwarderImpl final : public Forwarder {
 public:
  explicit ForwarderImpl(ForwarderOptions options) : options_(std::move(options)) {
    for (unsigned i = 0; i < std::max(1u, options_.workers); ++i) {
      threads_.emplace_back([this] {
        name_this_thread("forwarder");
        work();
      });
    }
  }
  ~ForwarderImpl() override { stop(); }

  void forward(const HttpRequest& request, std::string address, Done done,
               absl::Duration timeout) override {
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && queue_.size() < options_.max_queued) {
        queue_.push_back(Job{request, std::move(address), std::move(done), timeout});
        cv_.notify_one();
        return;
      }
    }
    done(Error{ErrorCode::kUnavailable,
               "too many requests waiting to be forwarded to the leader; retry later",
               {}});
  }

  void stop() override {
    std::deque<Job> dropped;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      dropped.swap(queue_);
      cv_.notify_all();
      for (Worker* w : workers_) w->cancel();
    }
    for (auto& job : dropped) {
      job.done(Error{ErrorCode::kUnavailable, "node is shutting down", {}});
    }
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    Worker worker(options_);
    {
      std::lock_guard lock(mu_);
      workers_.push_back(&worker);
    }
    // Unregistered before `worker` dies, under the lock stop() cancels with.
    struct Unregister {
      ForwarderImpl* self;
      Worker* w;
      ~Unregister() {
        std::lock_guard lock(self->mu_);
        std::erase(self->workers_, w);
      }
    } unregister{this, &worker};
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_ || queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job.done(worker.exchange(job));
    }
  }

  ForwarderOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;         // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::vector<Worker*> workers_;  // live workers; guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Forwarder> Forwarder::start(ForwarderOptions options) {
  return std::make_unique<ForwarderImpl>(std::move(options));
}

}  // namespace chronos::api
