#include "dispatch/http_dispatcher.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/strings.h"
#include "dispatch/tests/test_receiver.h"

namespace chronos::dispatch {
namespace {

using testing::ReceivedRequest;
using testing::ScriptedResponse;
using testing::TestReceiver;
using Steady = std::chrono::steady_clock;

// Generous: two shared cores.
constexpr absl::Duration kWait = absl::Seconds(20);

constexpr char kJobId[] = "3f1c2a4e-0000-4000-8000-000000000001";
constexpr char kExecutionId[] = "0190a000-0000-7000-8000-000000000002";

HttpRequestSpec make_spec(const std::string& url) {
  HttpRequestSpec s;
  s.webhook.url = url;
  s.job_id = kJobId;
  s.job_name = "nightly-report";
  s.execution_id = kExecutionId;
  s.scheduled_time = absl::FromCivil(absl::CivilSecond(2024, 3, 10, 7, 30, 0), absl::UTCTimeZone());
  s.attempt = 1;
  s.timeout = absl::Seconds(10);
  return s;
}

std::unique_ptr<HttpDispatcher> make_dispatcher(HttpDispatcherOptions o = {}) {
  o.version = "1.2.3";
  auto d = HttpDispatcher::start(std::move(o));
  EXPECT_TRUE(d.ok());
  return std::move(d).value();
}

// Collects callbacks from the dispatcher thread.
class Collector {
 public:
  AttemptCallback attempt_cb() {
    return [this](AttemptOutcome o) {
      std::lock_guard lock(mu_);
      attempts_.push_back(std::move(o));
      cv_.notify_all();
    };
  }
  bool wait_attempts(size_t n, absl::Duration timeout = kWait) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                        [&] { return attempts_.size() >= n; });
  }
  std::vector<AttemptOutcome> attempts() {
    std::lock_guard lock(mu_);
    return attempts_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<AttemptOutcome> attempts_;
};

// One attempt, waited for.
AttemptOutcome attempt_once(HttpDispatcher& d, HttpRequestSpec spec) {
  Collector c;
  d.submit(std::move(spec), c.attempt_cb());
  EXPECT_TRUE(c.wait_attempts(1));
  auto a = c.attempts();
  return a.empty() ? AttemptOutcome{} : a[0];
}

ReceivedRequest only_request(const TestReceiver& r) {
  auto reqs = r.requests();
  EXPECT_EQ(reqs.size(), 1u);
  return reqs.empty() ? ReceivedRequest{} : reqs[0];
}

// Polls `pred` until it holds (true) or kWait passes (false).
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = Steady::now() + absl::ToChronoMilliseconds(kWait);
  while (!pred()) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(HttpDispatcher, SendsTheSpecHeaders) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url("/hook?x=1"));
  spec.webhook.headers = {{"X-Team", "core"}};
  spec.webhook.body = "{}";
  auto o = attempt_once(*d, spec);
  EXPECT_EQ(o.kind, AttemptKind::kSuccess) << o.error;
  EXPECT_EQ(o.status_code, 200);
  EXPECT_EQ(o.attempt, 1);
  auto req = only_request(r);
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hook?x=1");
  EXPECT_EQ(req.header("User-Agent"), "chronos/1.2.3");
  EXPECT_EQ(req.header("X-Chronos-Job-ID"), kJobId);
  EXPECT_EQ(req.header("X-Chronos-Execution-ID"), kExecutionId);
  EXPECT_EQ(req.header("X-Chronos-Scheduled-Time"), "2024-03-10T07:30:00Z");
  EXPECT_EQ(req.header("X-Chronos-Attempt"), "1");
  EXPECT_EQ(req.header("Idempotency-Key"), kExecutionId);
  EXPECT_EQ(req.header("Content-Type"), "application/json");
  EXPECT_EQ(req.header("X-Team"), "core");
  EXPECT_FALSE(req.has_header("Expect"));
}

TEST(HttpDispatcher, SubstitutesBodyPlaceholders) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.attempt = 4;
  spec.webhook.body = R"({"id":"{{.JobID}}","name":"{{.JobName}}","exec":"{{.ExecutionID}}",)"
                      R"("at":"{{.ScheduledTime}}","attempt":{{.Attempt}}})";
  ASSERT_EQ(attempt_once(*d, spec).kind, AttemptKind::kSuccess);
  auto req = only_request(r);
  EXPECT_EQ(req.body, str_cat(R"({"id":")", kJobId, R"(","name":"nightly-report","exec":")",
                              kExecutionId, R"(","at":"2024-03-10T07:30:00Z","attempt":4})"));
  EXPECT_EQ(req.header("X-Chronos-Attempt"), "4");
}

TEST(HttpDispatcher, UsesTheConfiguredMethod) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto put = make_spec(r.url());
  put.webhook.method = "PUT";
  put.webhook.body = std::string(4096, 'p');  // large enough for libcurl's Expect: 100-continue
  put.webhook.headers = {{"Content-Type", "text/plain"}};
  ASSERT_EQ(attempt_once(*d, put).kind, AttemptKind::kSuccess);
  auto get = make_spec(r.url());
  get.webhook.method = "GET";
  ASSERT_EQ(attempt_once(*d, get).kind, AttemptKind::kSuccess);
  auto reqs = r.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].body, std::string(4096, 'p'));
  EXPECT_FALSE(reqs[0].has_header("Expect"));
  EXPECT_EQ(reqs[0].header("Content-Type"), "text/plain");
  EXPECT_EQ(reqs[1].method, "GET");
  EXPECT_EQ(reqs[1].body, "");
  EXPECT_FALSE(reqs[1].has_header("Content-Type"));
}

TEST(HttpDispatcher, SendsBasicAuth) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.webhook.auth =
      model::WebhookAuth{.type = "basic", .username = "alice", .password = "s3cret"};
  ASSERT_EQ(attempt_once(*d, spec).kind, AttemptKind::kSuccess);
  EXPECT_EQ(only_request(r).header("Authorization"), "Basic YWxpY2U6czNjcmV0");
}

TEST(HttpDispatcher, SendsBearerAuth) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.webhook.auth = model::WebhookAuth{.type = "bearer", .token = "tok-123"};
  ASSERT_EQ(attempt_once(*d, spec).kind, AttemptKind::kSuccess);
  EXPECT_EQ(only_request(r).header("Authorization"), "Bearer tok-123");
}

TEST(HttpDispatcher, SendsApiKeyAuthInItsHeader) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.webhook.auth = model::WebhookAuth{.type = "api_key", .header = "X-Key", .key = "k-9"};
  ASSERT_EQ(attempt_once(*d, spec).kind, AttemptKind::kSuccess);
  auto req = only_request(r);
  EXPECT_EQ(req.header("X-Key"), "k-9");
  EXPECT_FALSE(req.has_header("Authorization"));
}

TEST(HttpDispatcher, RespectsConfiguredSuccessCodes) {
  TestReceiver r;
  r.script({{.status = 200}, {.status = 204}});
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.webhook.success_codes = {{204, 204}};
  auto first = attempt_once(*d, spec);
  EXPECT_EQ(first.kind, AttemptKind::kHttpStatus);
  EXPECT_EQ(first.status_code, 200);
  EXPECT_FALSE(is_retryable(first));
  auto second = attempt_once(*d, spec);
  EXPECT_EQ(second.kind, AttemptKind::kSuccess);
  EXPECT_EQ(second.status_code, 204);
}

TEST(HttpDispatcher, EveryAttemptCarriesTheSameIdempotencyKeyAndItsNumber) {
  TestReceiver r;
  r.script({{.status = 503, .body = "busy"}, {.status = 200, .body = "ok"}});
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  auto first = attempt_once(*d, spec);
  EXPECT_EQ(first.kind, AttemptKind::kHttpStatus);
  EXPECT_EQ(first.status_code, 503);
  EXPECT_EQ(first.response, "busy");
  EXPECT_EQ(first.attempt, 1);
  spec.attempt = 2;
  auto second = attempt_once(*d, spec);
  EXPECT_TRUE(second.success());
  EXPECT_EQ(second.response, "ok");
  auto reqs = r.requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].header("Idempotency-Key"), kExecutionId);
    EXPECT_EQ(reqs[i].header("X-Chronos-Execution-ID"), kExecutionId);
    EXPECT_EQ(reqs[i].header("X-Chronos-Attempt"), str_cat(i + 1));
  }
}

TEST(HttpDispatcher, CancelAbortsTheTransferInFlight) {
  TestReceiver r;
  r.script({{.hang = true}});
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.timeout = absl::Seconds(30);
  Collector c;
  d->submit(spec, c.attempt_cb());
  ASSERT_TRUE(eventually([&] { return r.request_count() == 1; }));
  d->cancel(kExecutionId);
  ASSERT_TRUE(c.wait_attempts(1));
  EXPECT_EQ(c.attempts()[0].kind, AttemptKind::kCancelled);
  EXPECT_EQ(d->stats().in_flight, 0u);
}

TEST(HttpDispatcher, SendsNothingOnceSendByHasPassed) {
  TestReceiver r;
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.send_by = RealClock::instance()->monotonic() - absl::Milliseconds(1);
  auto o = attempt_once(*d, spec);
  EXPECT_EQ(o.kind, AttemptKind::kNotSent);
  EXPECT_FALSE(is_retryable(o));
  EXPECT_FALSE(feeds_breaker(o));
  // A later deadline sends as usual.
  spec.send_by = RealClock::instance()->monotonic() + absl::Seconds(60);
  EXPECT_TRUE(attempt_once(*d, spec).success());
  EXPECT_EQ(r.request_count(), 1u);
}

TEST(HttpDispatcher, ReportsANonRetryableStatus) {
  TestReceiver r;
  r.set_default({.status = 404});
  auto d = make_dispatcher();
  auto o = attempt_once(*d, make_spec(r.url()));
  EXPECT_EQ(o.kind, AttemptKind::kHttpStatus);
  EXPECT_EQ(o.status_code, 404);
  EXPECT_FALSE(is_retryable(o));
}

TEST(HttpDispatcher, ReportsATimeout) {
  TestReceiver r;
  r.script({{.hang = true}});
  auto d = make_dispatcher();
  auto spec = make_spec(r.url());
  spec.timeout = absl::Milliseconds(300);
  auto o = attempt_once(*d, spec);
  EXPECT_EQ(o.kind, AttemptKind::kTimeout) << o.error;
  EXPECT_GE(o.elapsed, absl::Milliseconds(290));
  EXPECT_TRUE(is_retryable(o));
}

TEST(HttpDispatcher, ReportsRetryAfterOn429) {
  TestReceiver r;
  r.script({{.status = 429, .headers = {{"Retry-After", "2"}}}});
  auto d = make_dispatcher();
  auto o = attempt_once(*d, make_spec(r.url()));
  EXPECT_EQ(o.status_code, 429);
  EXPECT_EQ(o.retry_after, absl::Seconds(2));
  EXPECT_TRUE(is_retryable(o));
}

TEST(HttpDispatcher, ReportsTransportErrors) {
  // A port nobody listens on: bind, read the port, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  auto d = make_dispatcher();
  auto o = attempt_once(*d, make_spec(str_cat("http://127.0.0.1:", ntohs(addr.sin_port), "/")));
  EXPECT_EQ(o.kind, AttemptKind::kTransportError);
  EXPECT_FALSE(o.error.empty());
  EXPECT_TRUE(is_retryable(o));
}

TEST(HttpDispatcher, RefusesAnInvalidUrl) {
  auto d = make_dispatcher();
  auto o = attempt_once(*d, make_spec("ftp://127.0.0.1/x"));
  EXPECT_EQ(o.kind, AttemptKind::kInvalidRequest);
  EXPECT_FALSE(is_retryable(o));
}

TEST(HttpDispatcher, CapsResponseCaptureAt64KiB) {
  TestReceiver r;
  std::string big(200 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('a' + (i / 1000) % 26);
  r.set_default({.status = 200, .body = big});
  auto d = make_dispatcher();
  auto o = attempt_once(*d, make_spec(r.url()));
  EXPECT_EQ(o.kind, AttemptKind::kSuccess) << o.error;
  ASSERT_EQ(o.response.size(), 64u * 1024);
  EXPECT_EQ(o.response, big.substr(0, 64 * 1024));
}

TEST(HttpDispatcher, BreakerOpensAfterFiveFailuresThenHalfOpensAndCloses) {
  TestReceiver r;
  r.set_default({.status = 503});
  HttpDispatcherOptions opts;
  opts.breaker.open_duration = absl::Milliseconds(400);
  auto d = make_dispatcher(opts);
  auto spec = make_spec(r.url());
  const std::string key = endpoint_key(spec.webhook.url).value();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(attempt_once(*d, spec).status_code, 503);
  EXPECT_EQ(d->breaker().info(key).state, BreakerState::kOpen);
  const auto opened = Steady::now();

  // Open: refused locally, nothing reaches the receiver.
  auto refused = attempt_once(*d, spec);
  EXPECT_EQ(refused.kind, AttemptKind::kBreakerOpen);
  EXPECT_TRUE(is_retryable(refused));
  EXPECT_EQ(r.request_count(), 5u);

  // After the open period one probe goes through.
  r.set_default({.status = 200});
  AttemptOutcome probe;
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (true) {
    probe = attempt_once(*d, spec);
    if (probe.kind != AttemptKind::kBreakerOpen || Steady::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling pace, not sync
  }
  EXPECT_GE(absl::FromChrono(Steady::now() - opened), absl::Milliseconds(400));
  ASSERT_TRUE(probe.success()) << to_string(probe.kind);
  EXPECT_EQ(r.request_count(), 6u);
  EXPECT_EQ(d->breaker().info(key).state, BreakerState::kHalfOpen);

  // The second success closes it.
  ASSERT_TRUE(attempt_once(*d, spec).success());
  EXPECT_EQ(d->breaker().info(key).state, BreakerState::kClosed);
  auto snap = d->breaker().snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].key, key);
  EXPECT_EQ(snap[0].state, BreakerState::kClosed);
}

TEST(HttpDispatcher, RefusesWithOverloadWhenTheQueueIsFull) {
  TestReceiver r;
  r.set_default({.hang = true});
  HttpDispatcherOptions opts;
  opts.max_in_flight = 1;
  opts.max_queued = 2;
  auto d = make_dispatcher(opts);
  std::mutex mu;
  std::map<int, int> calls;  // request number → callbacks
  std::map<int, AttemptKind> kinds;
  auto cb = [&](int n) {
    return [&, n](AttemptOutcome o) {
      std::lock_guard lock(mu);
      ++calls[n];
      kinds[n] = o.kind;
    };
  };
  d->submit(make_spec(r.url()), cb(1));
  ASSERT_TRUE(r.wait_for_requests(1, kWait));  // 1 is in flight
  d->submit(make_spec(r.url()), cb(2));
  d->submit(make_spec(r.url()), cb(3));
  EXPECT_EQ(d->stats().queued, 2u);
  EXPECT_EQ(d->stats().in_flight, 1u);
  d->submit(make_spec(r.url()), cb(4));
  {
    std::lock_guard lock(mu);  // refused before submit returned
    EXPECT_EQ(calls[4], 1);
    EXPECT_EQ(kinds[4], AttemptKind::kOverloaded);
    EXPECT_EQ(calls.count(1) + calls.count(2) + calls.count(3), 0u);
  }
  d->stop();
  std::lock_guard lock(mu);
  for (int n = 1; n <= 4; ++n) EXPECT_EQ(calls[n], 1) << n;
  EXPECT_EQ(kinds[1], AttemptKind::kShutdown);
  EXPECT_EQ(kinds[2], AttemptKind::kShutdown);
  EXPECT_EQ(r.request_count(), 1u);
}

TEST(HttpDispatcher, StopIsPromptAndCallsEveryCallbackExactlyOnce) {
  TestReceiver hanging;
  hanging.set_default({.hang = true});
  auto d = make_dispatcher();

  constexpr int kInFlight = 5;
  std::mutex mu;
  std::vector<int> calls(kInFlight, 0);
  for (int i = 0; i < kInFlight; ++i) {
    auto spec = make_spec(hanging.url());
    spec.timeout = absl::Seconds(60);
    d->submit(spec, [&, i](AttemptOutcome o) {
      std::lock_guard lock(mu);
      ++calls[i];
      EXPECT_EQ(o.kind, AttemptKind::kShutdown);
    });
  }
  ASSERT_TRUE(hanging.wait_for_requests(kInFlight, kWait));

  const auto before = Steady::now();
  d->stop();
  EXPECT_LT(absl::FromChrono(Steady::now() - before), absl::Seconds(2));
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < kInFlight; ++i) EXPECT_EQ(calls[i], 1) << i;
  }

  // After stop, work is refused at once, still exactly one callback.
  auto late = attempt_once(*d, make_spec(hanging.url()));
  EXPECT_EQ(late.kind, AttemptKind::kShutdown);
  d->stop();  // idempotent
}

TEST(HttpDispatcher, StartRejectsBadOptions) {
  HttpDispatcherOptions o;
  o.max_in_flight = 0;
  auto d = HttpDispatcher::start(o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().field, "max_in_flight");
}

}  // namespace
}  // namespace chronos::dispatch
