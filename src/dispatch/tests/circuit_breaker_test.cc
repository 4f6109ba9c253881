#include "dispatch/circuit_breaker.h"

#include <gtest/gtest.h>

namespace chronos::dispatch {
namespace {

constexpr std::string_view kKey = "http://a.example:80";
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

void fail_n(CircuitBreaker& b, int n, absl::Time now, std::string_view key = kKey) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(b.allow(key, now));
    b.record(key, false, now);
  }
}

TEST(CircuitBreaker, StaysClosedBelowFiveConsecutiveFailures) {
  CircuitBreaker b;
  fail_n(b, 4, kT0);
  EXPECT_TRUE(b.allow(kKey, kT0));
  EXPECT_EQ(b.info(kKey).state, BreakerState::kClosed);
  EXPECT_EQ(b.info(kKey).consecutive_failures, 4);
}

TEST(CircuitBreaker, OpensAfterFiveConsecutiveFailures) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  EXPECT_EQ(b.info(kKey).state, BreakerState::kOpen);
  EXPECT_EQ(b.info(kKey).opened_at, kT0);
  EXPECT_FALSE(b.allow(kKey, kT0 + absl::Seconds(29)));
}

TEST(CircuitBreaker, SuccessResetsTheFailureCount) {
  CircuitBreaker b;
  fail_n(b, 4, kT0);
  b.record(kKey, true, kT0);
  fail_n(b, 4, kT0);
  EXPECT_EQ(b.info(kKey).state, BreakerState::kClosed);
}

TEST(CircuitBreaker, HalfOpensAfterOpenDurationAndLetsOneProbeThrough) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  const absl::Time later = kT0 + absl::Seconds(30);
  EXPECT_TRUE(b.allow(kKey, later));
  EXPECT_EQ(b.info(kKey).state, BreakerState::kHalfOpen);
  EXPECT_FALSE(b.allow(kKey, later));  // the probe is still out
}

TEST(CircuitBreaker, ClosesAfterTwoSuccessfulProbes) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  const absl::Time later = kT0 + absl::Seconds(31);
  ASSERT_TRUE(b.allow(kKey, later));
  b.record(kKey, true, later);
  EXPECT_EQ(b.info(kKey).state, BreakerState::kHalfOpen);
  ASSERT_TRUE(b.allow(kKey, later));  // next probe
  b.record(kKey, true, later);
  EXPECT_EQ(b.info(kKey).state, BreakerState::kClosed);
  EXPECT_EQ(b.info(kKey).consecutive_failures, 0);
  EXPECT_TRUE(b.allow(kKey, later));
  EXPECT_TRUE(b.allow(kKey, later));
}

TEST(CircuitBreaker, FailedProbeReopensFromNow) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  const absl::Time later = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.allow(kKey, later));
  b.record(kKey, true, later);
  ASSERT_TRUE(b.allow(kKey, later));
  b.record(kKey, false, later);  // the success before does not count any more
  EXPECT_EQ(b.info(kKey).state, BreakerState::kOpen);
  EXPECT_EQ(b.info(kKey).opened_at, later);
  EXPECT_FALSE(b.allow(kKey, later + absl::Seconds(29)));
  EXPECT_TRUE(b.allow(kKey, later + absl::Seconds(30)));
}

TEST(CircuitBreaker, LostProbeStopsBlockingAfterOpenDuration) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  ASSERT_TRUE(b.allow(kKey, kT0 + absl::Seconds(30)));  // never recorded
  EXPECT_FALSE(b.allow(kKey, kT0 + absl::Seconds(59)));
  EXPECT_TRUE(b.allow(kKey, kT0 + absl::Seconds(60)));
}

TEST(CircuitBreaker, ResultsRecordedWhileOpenAreIgnored) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  b.record(kKey, true, kT0 + absl::Seconds(1));
  b.record(kKey, true, kT0 + absl::Seconds(1));
  EXPECT_EQ(b.info(kKey).state, BreakerState::kOpen);
  EXPECT_EQ(b.info(kKey).opened_at, kT0);
}

TEST(CircuitBreaker, EndpointsAreIndependent) {
  CircuitBreaker b;
  fail_n(b, 5, kT0);
  EXPECT_TRUE(b.allow("http://b.example:80", kT0));
}

TEST(CircuitBreaker, HonoursCustomParameters) {
  BreakerOptions o;
  o.failure_threshold = 2;
  o.open_duration = absl::Milliseconds(100);
  o.success_threshold = 1;
  CircuitBreaker b(o);
  fail_n(b, 2, kT0);
  EXPECT_FALSE(b.allow(kKey, kT0 + absl::Milliseconds(99)));
  ASSERT_TRUE(b.allow(kKey, kT0 + absl::Milliseconds(100)));
  b.record(kKey, true, kT0 + absl::Milliseconds(100));
  EXPECT_EQ(b.info(kKey).state, BreakerState::kClosed);
}

TEST(CircuitBreaker, EvictsTheLeastRecentlyUsedClosedEndpointWhenFull) {
  BreakerOptions o;
  o.max_keys = 3;
  o.failure_threshold = 1;
  CircuitBreaker b(o);
  fail_n(b, 1, kT0, "http://open:80");  // oldest, but open: kept
  b.record("http://c1:80", true, kT0);
  b.record("http://c2:80", true, kT0);
  b.record("http://c3:80", true, kT0);  // evicts c1
  auto snap = b.snapshot();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[0].key, "http://c2:80");
  EXPECT_EQ(snap[1].key, "http://c3:80");
  EXPECT_EQ(snap[2].key, "http://open:80");
  EXPECT_EQ(snap[2].state, BreakerState::kOpen);
}

TEST(CircuitBreaker, UseRefreshesRecency) {
  BreakerOptions o;
  o.max_keys = 2;
  CircuitBreaker b(o);
  b.record("http://c1:80", true, kT0);
  b.record("http://c2:80", true, kT0);
  EXPECT_TRUE(b.allow("http://c1:80", kT0));  // c1 now most recent
  b.record("http://c3:80", true, kT0);        // evicts c2
  auto snap = b.snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].key, "http://c1:80");
  EXPECT_EQ(snap[1].key, "http://c3:80");
}

TEST(CircuitBreaker, SnapshotReportsStateFailuresAndOpenedAt) {
  CircuitBreaker b;
  fail_n(b, 2, kT0, "http://b:80");
  fail_n(b, 5, kT0, "http://a:80");
  auto snap = b.snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0], (BreakerInfo{"http://a:80", BreakerState::kOpen, 5, kT0}));
  EXPECT_EQ(snap[1], (BreakerInfo{"http://b:80", BreakerState::kClosed, 2, absl::InfinitePast()}));
  EXPECT_EQ(to_string(BreakerState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace chronos::dispatch
