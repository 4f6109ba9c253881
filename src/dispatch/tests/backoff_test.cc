#include "dispatch/backoff.h"

#include <gtest/gtest.h>

namespace chronos::dispatch {
namespace {

model::RetryPolicy policy(double jitter = 0.0) {
  model::RetryPolicy p;
  p.max_attempts = 5;
  p.initial_interval = absl::Seconds(1);
  p.multiplier = 2.0;
  p.max_interval = absl::Seconds(60);
  p.jitter = jitter;
  return p;
}

AttemptOutcome outcome(AttemptKind kind, int status = 0) {
  AttemptOutcome o;
  o.kind = kind;
  o.status_code = status;
  return o;
}

TEST(RetryDelay, GrowsByMultiplierFromInitialInterval) {
  EXPECT_EQ(retry_delay(policy(), 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(retry_delay(policy(), 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(retry_delay(policy(), 3, 0.5), absl::Seconds(4));
  EXPECT_EQ(retry_delay(policy(), 6, 0.5), absl::Seconds(32));
}

TEST(RetryDelay, IsCappedAtMaxIntervalEvenForHugeAttemptNumbers) {
  EXPECT_EQ(retry_delay(policy(), 7, 0.5), absl::Seconds(60));
  EXPECT_EQ(retry_delay(policy(), 100000, 0.5), absl::Seconds(60));
}

TEST(RetryDelay, JitterSpreadsPlusMinusFractionAroundTheDelay) {
  EXPECT_EQ(retry_delay(policy(0.1), 1, 0.0), absl::Milliseconds(900));
  EXPECT_EQ(retry_delay(policy(0.1), 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(retry_delay(policy(0.1), 1, 0.75), absl::Milliseconds(1050));
  EXPECT_LT(retry_delay(policy(0.1), 1, 0.999999), absl::Milliseconds(1100));
}

TEST(RetryDelay, JitterIsAppliedAfterTheCap) {
  EXPECT_EQ(retry_delay(policy(0.5), 50, 0.0), absl::Seconds(30));
  EXPECT_EQ(retry_delay(policy(0.5), 50, 0.75), absl::Seconds(75));
}

TEST(RetryDelay, OutOfRangeRandomIsClamped) {
  EXPECT_EQ(retry_delay(policy(0.1), 1, -3.0), absl::Milliseconds(900));
  EXPECT_EQ(retry_delay(policy(0.1), 1, 7.0), absl::Milliseconds(1100));
}

TEST(IsRetryable, RetriesServerErrorsAndTooManyRequests) {
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kHttpStatus, 500)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kHttpStatus, 503)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kHttpStatus, 599)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kHttpStatus, 429)));
}

TEST(IsRetryable, OtherNonSuccessStatusesAreFinal) {
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kHttpStatus, 400)));
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kHttpStatus, 404)));
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kHttpStatus, 200)));  // outside success_codes
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kHttpStatus, 302)));
}

TEST(IsRetryable, NetworkErrorsTimeoutsAndLocalRefusalsAreRetried) {
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kTransportError)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kTimeout)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kBreakerOpen)));
  EXPECT_TRUE(is_retryable(outcome(AttemptKind::kOverloaded)));
}

TEST(IsRetryable, SuccessShutdownAndInvalidRequestsAreNotRetried) {
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kSuccess, 200)));
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kShutdown)));
  EXPECT_FALSE(is_retryable(outcome(AttemptKind::kInvalidRequest)));
}

TEST(BreakerFeed, EndpointFailuresAreTransportTimeoutServerErrorsAnd429) {
  EXPECT_TRUE(is_endpoint_failure(outcome(AttemptKind::kTransportError)));
  EXPECT_TRUE(is_endpoint_failure(outcome(AttemptKind::kTimeout)));
  EXPECT_TRUE(is_endpoint_failure(outcome(AttemptKind::kHttpStatus, 502)));
  EXPECT_TRUE(is_endpoint_failure(outcome(AttemptKind::kHttpStatus, 429)));
  EXPECT_FALSE(is_endpoint_failure(outcome(AttemptKind::kHttpStatus, 404)));
  EXPECT_FALSE(is_endpoint_failure(outcome(AttemptKind::kSuccess, 200)));
}

TEST(BreakerFeed, LocalRefusalsDoNotFeedTheBreaker) {
  EXPECT_FALSE(feeds_breaker(outcome(AttemptKind::kBreakerOpen)));
  EXPECT_FALSE(feeds_breaker(outcome(AttemptKind::kOverloaded)));
  EXPECT_FALSE(feeds_breaker(outcome(AttemptKind::kShutdown)));
  EXPECT_FALSE(feeds_breaker(outcome(AttemptKind::kInvalidRequest)));
  EXPECT_TRUE(feeds_breaker(outcome(AttemptKind::kHttpStatus, 404)));
}

const absl::Time kNow = absl::FromUnixSeconds(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(ParseRetryAfter, ReadsDeltaSeconds) {
  EXPECT_EQ(parse_retry_after("2", kNow), absl::Seconds(2));
  EXPECT_EQ(parse_retry_after(" 120 ", kNow), absl::Seconds(120));
  EXPECT_EQ(parse_retry_after("0", kNow), absl::ZeroDuration());
}

TEST(ParseRetryAfter, ReadsImfFixdateRelativeToNow) {
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", kNow), absl::Seconds(30));
}

TEST(ParseRetryAfter, ReadsObsoleteDateForms) {
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", kNow), absl::Seconds(60));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:47 1994", kNow), absl::Seconds(10));
}

TEST(ParseRetryAfter, DateInThePastIsZero) {
  EXPECT_EQ(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", kNow), absl::ZeroDuration());
}

TEST(ParseRetryAfter, RejectsGarbage) {
  EXPECT_EQ(parse_retry_after("", kNow), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", kNow), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", kNow), std::nullopt);
  EXPECT_EQ(parse_retry_after("1.5", kNow), std::nullopt);
}

TEST(ParseRetryAfter, HugeDeltaIsKeptLongForTheCapToHandle) {
  auto d = parse_retry_after("99999999999999999999999", kNow);
  ASSERT_TRUE(d.has_value());
  EXPECT_GT(*d, kMaxRetryAfter);
}

TEST(DecideRetry, RetriesUntilMaxAttemptsCountingTheFirstTry) {
  auto p = policy();
  p.max_attempts = 3;
  auto o = outcome(AttemptKind::kHttpStatus, 503);
  EXPECT_TRUE(decide_retry(p, o, 1, 0.5).retry);
  EXPECT_TRUE(decide_retry(p, o, 2, 0.5).retry);
  EXPECT_FALSE(decide_retry(p, o, 3, 0.5).retry);
  EXPECT_FALSE(decide_retry(p, o, 7, 0.5).retry);
  EXPECT_EQ(decide_retry(p, o, 2, 0.5).delay, absl::Seconds(2));
}

TEST(DecideRetry, DoesNotRetryFinalOutcomes) {
  EXPECT_FALSE(decide_retry(policy(), outcome(AttemptKind::kHttpStatus, 404), 1, 0.5).retry);
  EXPECT_FALSE(decide_retry(policy(), outcome(AttemptKind::kSuccess, 200), 1, 0.5).retry);
}

TEST(DecideRetry, RetryAfterIsALowerBoundOnTheDelay) {
  auto o = outcome(AttemptKind::kHttpStatus, 429);
  o.retry_after = absl::Seconds(90);  // above max_interval too
  EXPECT_EQ(decide_retry(policy(), o, 1, 0.5).delay, absl::Seconds(90));
  o.retry_after = absl::Milliseconds(10);  // shorter than the backoff: backoff wins
  EXPECT_EQ(decide_retry(policy(), o, 3, 0.5).delay, absl::Seconds(4));
}

TEST(DecideRetry, RetryAfterIsCappedAtOneHour) {
  auto o = outcome(AttemptKind::kHttpStatus, 503);
  o.retry_after = absl::Hours(30);
  EXPECT_EQ(decide_retry(policy(), o, 1, 0.5).delay, kMaxRetryAfter);
}

}  // namespace
}  // namespace chronos::dispatch
