#include "dispatch/http_dispatcher.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/check.h"
#include "base/strings.h"
#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace chronos::dispatch {

namespace {

std::once_flag g_curl_once;
CURLcode g_curl_init_rc = CURLE_OK;

std::string cap_error(std::string s) {
  if (s.size() > model::kMaxErrorBytes) s.resize(model::kMaxErrorBytes);
  return s;
}

// One unit of work: one attempt and whom to tell.
struct Work {
  HttpRequestSpec spec;
  AttemptCallback done;
};

// One libcurl transfer in flight. Owned by the dispatcher thread.
struct Transfer {
  Work work;
  std::string key;  // breaker endpoint
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;  // CURLOPT_POSTFIELDS points here (not copied by libcurl)
  std::string response;
  size_t max_response_bytes = 0;
  std::string retry_after;  // raw header value of the final response
  char errbuf[CURL_ERROR_SIZE] = {};
  absl::Time started_at;
  absl::Duration started_mono;
  const Clock* clock = nullptr;  // for the send_by check in prereq_cb
  bool not_sent = false;         // prereq_cb refused it: send_by had passed

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

size_t write_cb(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  if (t->response.size() < t->max_response_bytes) {
    t->response.append(data, std::min(n, t->max_response_bytes - t->response.size()));
  }
  return n;  // the rest is dropped; the transfer goes on
}

size_t header_cb(char* data, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nitems;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    t->retry_after.clear();  // a new (possibly final, after 1xx) response
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    if (iequals(trim_whitespace(line.substr(0, colon)), "Retry-After")) {
      t->retry_after = std::string(trim_whitespace(line.substr(colon + 1)));
    }
  }
  return n;
}

// Called by libcurl once the connection is ready, right before the request
// is written: the last point at which an attempt can still be held back
// when its sender lost the right to send (send_by passed) while it queued
// or connected.
int prereq_cb(void* user, char*, char*, int, int) {
  auto* t = static_cast<Transfer*>(user);
  if (t->clock->monotonic() <= t->work.spec.send_by) return CURL_PREREQFUNC_OK;
  t->not_sent = true;
  return CURL_PREREQFUNC_ABORT;
}

// Sets a libcurl option or returns from the enclosing function with an error.
#define CHRONOS_CURL_SET(easy, opt, value)                                           \
  do {                                                                               \
    CURLcode chronos_rc_ = curl_easy_setopt(easy, opt, value);                       \
    if (chronos_rc_ != CURLE_OK) {                                                   \
      return Error::internal(                                                        \
          str_cat("curl_easy_setopt(" #opt "): ", curl_easy_strerror(chronos_rc_))); \
    }                                                                                \
  } while (0)

class HttpDispatcherImpl final : public HttpDispatcher {
 public:
  explicit HttpDispatcherImpl(HttpDispatcherOptions options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : RealClock::instance()),
        breaker_(options_.breaker) {}

  ~HttpDispatcherImpl() override {
    stop();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  Status init() {
    multi_ = curl_multi_init();
    if (multi_ == nullptr) return Error::internal("curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(options_.max_host_connections));
    thread_ = std::thread([this] {
      name_this_thread("dispatcher");
      loop();
    });
    return ok_status();
  }

  void submit(HttpRequestSpec spec, AttemptCallback done) override {
    AttemptKind refusal = AttemptKind::kSuccess;
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        refusal = AttemptKind::kShutdown;
      } else if (queue_.size() >= options_.max_queued) {
        refusal = AttemptKind::kOverloaded;
      } else {
        queue_.push_back(Work{std::move(spec), std::move(done)});
      }
    }
    if (refusal == AttemptKind::kSuccess) {
      curl_multi_wakeup(multi_);
      return;
    }
    done(refused(spec, refusal,
                 refusal == AttemptKind::kShutdown ? "dispatcher stopped"
                                                   : "dispatcher overloaded (submit queue full)"));
  }

  void cancel(std::string execution_id) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (cancels_.size() >= options_.max_queued) {
        spdlog::warn("dispatch: too many cancels pending; execution {} is not cancelled here",
                     execution_id);
        return;
      }
      cancels_.push_back(std::move(execution_id));
    }
    curl_multi_wakeup(multi_);
  }

  void stop() override {
    CHRONOS_CHECK(std::this_thread::get_id() != loop_thread_id_.load())
        << "HttpDispatcher::stop() called from a dispatcher callback";
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
    std::lock_guard lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

  CircuitBreaker& breaker() override { return breaker_; }

  HttpDispatcherStats stats() const override {
    HttpDispatcherStats s;
    std::lock_guard lock(mu_);
    s.in_flight = in_flight_.load();
    s.queued = queue_.size();
    return s;
  }

 private:
  AttemptOutcome refused(const HttpRequestSpec& spec, AttemptKind kind, std::string error) const {
    AttemptOutcome o;
    o.kind = kind;
    o.attempt = spec.attempt;
    o.error = cap_error(std::move(error));
    o.started_at = clock_->now();
    return o;
  }

  // ---- dispatcher thread only from here on ----

  void loop() {
    loop_thread_id_.store(std::this_thread::get_id());
    std::vector<Work> to_start;
    while (true) {
      to_start.clear();
      // Before anything is taken off the queues: a cancelled attempt must
      // not be started.
      apply_cancels();
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
        size_t free = options_.max_in_flight - transfers_.size();
        while (free > 0 && !queue_.empty()) {
          to_start.push_back(std::move(queue_.front()));
          queue_.pop_front();
          --free;
        }
      }
      for (Work& w : to_start) start(std::move(w));
      int running = 0;
      curl_multi_perform(multi_, &running);
      reap();
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
        if (!queue_.empty() && transfers_.size() < options_.max_in_flight) {
          continue;  // slots freed and work waits: no sleep
        }
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    shutdown();
    loop_thread_id_.store(std::thread::id());  // ids are reused after join
  }

  // Ends every attempt of the executions cancel() named: queued work is
  // dropped, transfers in flight aborted (dispatcher thread).
  void apply_cancels() {
    std::deque<std::string> ids;
    std::vector<Work> dropped;
    {
      std::lock_guard lock(mu_);
      if (cancels_.empty()) return;
      ids.swap(cancels_);
      std::unordered_set<std::string> set(ids.begin(), ids.end());
      auto take = [&](std::deque<Work>& q) {
        for (auto it = q.begin(); it != q.end();) {
          if (set.count(it->spec.execution_id) != 0) {
            dropped.push_back(std::move(*it));
            it = q.erase(it);
          } else {
            ++it;
          }
        }
      };
      take(queue_);
      for (auto it = transfers_.begin(); it != transfers_.end();) {
        if (set.count(it->second->work.spec.execution_id) != 0) {
          curl_multi_remove_handle(multi_, it->first);
          breaker_.release_probe(it->second->key);
          dropped.push_back(std::move(it->second->work));
          it = transfers_.erase(it);
        } else {
          ++it;
        }
      }
      in_flight_.store(transfers_.size());
    }
    for (Work& w : dropped) {
      finish_refused(std::move(w), AttemptKind::kCancelled, "cancelled");
    }
  }

  void start(Work w) {
    if (clock_->monotonic() > w.spec.send_by) {
      finish_refused(std::move(w), AttemptKind::kNotSent,
                     "not sent: the sender's leadership lease ran out before it could be sent");
      return;
    }
    auto key = endpoint_key(w.spec.webhook.url);
    if (!key.ok()) {
      finish_refused(std::move(w), AttemptKind::kInvalidRequest,
                     str_cat("bad webhook url: ", key.error().message));
      return;
    }
    auto t = std::make_unique<Transfer>();
    t->key = std::move(*key);
    t->work = std::move(w);
    if (Status s = configure(*t); !s.ok()) {
      Work work = std::move(t->work);
      t.reset();
      finish_refused(std::move(work), AttemptKind::kInvalidRequest, s.error().message);
      return;
    }
    if (!breaker_.allow(t->key, clock_->now())) {
      std::string error = str_cat("circuit breaker open for ", t->key);
      Work work = std::move(t->work);
      t.reset();
      finish_refused(std::move(work), AttemptKind::kBreakerOpen, std::move(error));
      return;
    }
    t->started_at = clock_->now();
    t->started_mono = clock_->monotonic();
    CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
    CHRONOS_CHECK(rc == CURLM_OK) << "curl_multi_add_handle: " << curl_multi_strerror(rc);
    CURL* easy = t->easy;
    transfers_.emplace(easy, std::move(t));
    in_flight_.store(transfers_.size());
  }

  Status configure(Transfer& t) {
    const HttpRequestSpec& spec = t.work.spec;
    const model::Webhook& w = spec.webhook;
    t.easy = curl_easy_init();
    if (t.easy == nullptr) return Error::internal("curl_easy_init failed");
    CURL* e = t.easy;
    t.max_response_bytes = options_.max_response_bytes;
    const long timeout_ms =
        static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(spec.timeout)));
    const long connect_ms = std::min<long>(
        timeout_ms, static_cast<long>(std::max<int64_t>(
                        1, absl::ToInt64Milliseconds(options_.max_connect_timeout))));
    CHRONOS_CURL_SET(e, CURLOPT_URL, w.url.c_str());
    CHRONOS_CURL_SET(e, CURLOPT_PROTOCOLS_STR, "http,https");
    CHRONOS_CURL_SET(e, CURLOPT_NOSIGNAL, 1L);
    CHRONOS_CURL_SET(e, CURLOPT_FOLLOWLOCATION, 0L);
    CHRONOS_CURL_SET(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    CHRONOS_CURL_SET(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    CHRONOS_CURL_SET(e, CURLOPT_ERRORBUFFER, t.errbuf);
    CHRONOS_CURL_SET(e, CURLOPT_PRIVATE, static_cast<void*>(&t));
    CHRONOS_CURL_SET(e, CURLOPT_WRITEFUNCTION, &write_cb);
    CHRONOS_CURL_SET(e, CURLOPT_WRITEDATA, static_cast<void*>(&t));
    CHRONOS_CURL_SET(e, CURLOPT_HEADERFUNCTION, &header_cb);
    CHRONOS_CURL_SET(e, CURLOPT_HEADERDATA, static_cast<void*>(&t));
    t.clock = clock_;
    CHRONOS_CURL_SET(e, CURLOPT_PREREQFUNCTION, &prereq_cb);
    CHRONOS_CURL_SET(e, CURLOPT_PREREQDATA, static_cast<void*>(&t));
    if (w.tls_skip_verify) {
      CHRONOS_CURL_SET(e, CURLOPT_SSL_VERIFYPEER, 0L);
      CHRONOS_CURL_SET(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (w.auth && w.auth->type == "basic") {
      CHRONOS_CURL_SET(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      CHRONOS_CURL_SET(e, CURLOPT_USERNAME, w.auth->username.c_str());
      CHRONOS_CURL_SET(e, CURLOPT_PASSWORD, w.auth->password.c_str());
    }

    // Method and body. POSTFIELDS makes libcurl send the body with a
    // Content-Length; CUSTOMREQUEST swaps the method name.
    t.body = expand_placeholders(w.body, spec);
    const std::string& method = w.method;
    if (method == "HEAD") {
      CHRONOS_CURL_SET(e, CURLOPT_NOBODY, 1L);
    } else if (method == "GET" && t.body.empty()) {
      CHRONOS_CURL_SET(e, CURLOPT_HTTPGET, 1L);
    } else if (!t.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      CHRONOS_CURL_SET(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size()));
      CHRONOS_CURL_SET(e, CURLOPT_POSTFIELDS, t.body.c_str());
      if (method != "POST") CHRONOS_CURL_SET(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else {
      CHRONOS_CURL_SET(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    }

    bool has_content_type = false;
    for (const auto& [name, value] : request_headers(spec, options_.version)) {
      has_content_type = has_content_type || iequals(name, "Content-Type");
      // "Name;" is libcurl's way to send a header with an empty value.
      std::string line = value.empty() ? str_cat(name, ";") : str_cat(name, ": ", value);
      curl_slist* next = curl_slist_append(t.headers, line.c_str());
      if (next == nullptr) return Error::internal("curl_slist_append failed");
      t.headers = next;
    }
    // No "Expect: 100-continue" round trip for larger bodies, and no
    // form-urlencoded Content-Type that libcurl adds to POSTFIELDS bodies.
    std::vector<const char*> suppress = {"Expect:"};
    if (!has_content_type) suppress.push_back("Content-Type:");
    for (const char* line : suppress) {
      curl_slist* next = curl_slist_append(t.headers, line);
      if (next == nullptr) return Error::internal("curl_slist_append failed");
      t.headers = next;
    }
    CHRONOS_CURL_SET(e, CURLOPT_HTTPHEADER, t.headers);
    return ok_status();
  }

  // Moves finished transfers out of the multi handle and reports them.
  void reap() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;  // msg is invalid after remove_handle
      auto it = transfers_.find(easy);
      CHRONOS_CHECK(it != transfers_.end()) << "finished transfer is not ours";
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers_.erase(it);
      in_flight_.store(transfers_.size());
      curl_multi_remove_handle(multi_, easy);
      finish(std::move(t), rc);
    }
  }

  void finish(std::unique_ptr<Transfer> t, CURLcode rc) {
    AttemptOutcome o;
    o.attempt = t->work.spec.attempt;
    o.started_at = t->started_at;
    o.elapsed = clock_->monotonic() - t->started_mono;
    if (t->not_sent) {
      // Nothing was written to the target: no attempt, no breaker record.
      breaker_.release_probe(t->key);
      o.kind = AttemptKind::kNotSent;
      o.error = "not sent: the sender's leadership lease ran out before it could be sent";
      AttemptCallback done = std::move(t->work.done);
      t.reset();
      done(std::move(o));
      return;
    }
    if (rc == CURLE_OK) {
      long code = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
      o.status_code = static_cast<int>(code);
      o.response = std::move(t->response);
      if (is_success_code(t->work.spec.webhook.success_codes, o.status_code)) {
        o.kind = AttemptKind::kSuccess;
      } else {
        o.kind = AttemptKind::kHttpStatus;
        o.error = str_cat("HTTP status ", o.status_code, " is not a success code");
      }
      if (!t->retry_after.empty()) o.retry_after = parse_retry_after(t->retry_after, clock_->now());
    } else {
      // libcurl's messages name hosts and ports, never userinfo or secrets.
      std::string detail = t->errbuf[0] != '\0' ? std::string(t->errbuf) : curl_easy_strerror(rc);
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        o.kind = AttemptKind::kTimeout;
        o.error = cap_error(
            str_cat("timeout after ", absl::FormatDuration(t->work.spec.timeout), ": ", detail));
      } else {
        o.kind = AttemptKind::kTransportError;
        o.error = cap_error(std::move(detail));
      }
    }
    if (feeds_breaker(o)) breaker_.record(t->key, !is_endpoint_failure(o), clock_->now());
    // Only ids, the endpoint key and the outcome: no URL path/query, header
    // values, body or auth.
    spdlog::debug(
        "dispatch: job={} execution={} attempt={} endpoint={} outcome={} status={} "
        "elapsed_ms={}",
        t->work.spec.job_id, t->work.spec.execution_id, o.attempt, t->key, to_string(o.kind),
        o.status_code, absl::ToInt64Milliseconds(o.elapsed));
    AttemptCallback done = std::move(t->work.done);
    t.reset();
    done(std::move(o));
  }

  void finish_refused(Work w, AttemptKind kind, std::string error) {
    spdlog::debug("dispatch: job={} execution={} attempt={} refused: {}", w.spec.job_id,
                  w.spec.execution_id, w.spec.attempt, to_string(kind));
    AttemptOutcome o = refused(w.spec, kind, std::move(error));
    w.done(std::move(o));
  }

  // After stop(): aborts transfers and fails everything pending, each
  // callback once. Work added meanwhile is refused by submit (stopping_ is
  // set), so one pass over the queue empties it.
  void shutdown() {
    auto transfers = std::move(transfers_);
    transfers_.clear();
    in_flight_.store(0);
    for (auto& [easy, t] : transfers) {
      curl_multi_remove_handle(multi_, easy);
      AttemptOutcome o = refused(t->work.spec, AttemptKind::kShutdown, "dispatcher stopped");
      o.started_at = t->started_at;
      o.elapsed = clock_->monotonic() - t->started_mono;
      AttemptCallback done = std::move(t->work.done);
      t.reset();
      done(std::move(o));
    }
    std::deque<Work> pending;
    {
      std::lock_guard lock(mu_);
      pending.swap(queue_);
    }
    for (Work& w : pending)
      finish_refused(std::move(w), AttemptKind::kShutdown, "dispatcher stopped");
  }

  const HttpDispatcherOptions options_;
  const Clock* const clock_;
  CircuitBreaker breaker_;
  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::mutex join_mu_;  // serialises stop()'s join

  mutable std::mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);           // submitted, bounded by max_queued
  std::deque<std::string> cancels_ ABSL_GUARDED_BY(mu_);  // execution ids to cancel

  std::atomic<size_t> in_flight_{0};

  // Dispatcher thread only.
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;
};

#undef CHRONOS_CURL_SET

Status validate(const HttpDispatcherOptions& o) {
  if (o.max_in_flight < 1) return Error::validation("max_in_flight", "must be at least 1");
  if (o.max_queued < 1) return Error::validation("max_queued", "must be at least 1");
  if (o.max_connect_timeout <= absl::ZeroDuration()) {
    return Error::validation("max_connect_timeout", "must be positive");
  }
  if (o.breaker.failure_threshold < 1 || o.breaker.success_threshold < 1 ||
      o.breaker.max_keys < 1 || o.breaker.open_duration < absl::ZeroDuration()) {
    return Error::validation("breaker", "thresholds and max_keys must be at least 1");
  }
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<HttpDispatcher>> HttpDispatcher::start(HttpDispatcherOptions options) {
  CHRONOS_RETURN_IF_ERROR(validate(options));
  std::call_once(g_curl_once, [] { g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (g_curl_init_rc != CURLE_OK) {
    return Error::internal(str_cat("curl_global_init: ", curl_easy_strerror(g_curl_init_rc)));
  }
  auto impl = std::make_unique<HttpDispatcherImpl>(std::move(options));
  CHRONOS_RETURN_IF_ERROR(impl->init());
  return std::unique_ptr<HttpDispatcher>(std::move(impl));
}

}  // namespace chronos::dispatch
