#include "model/concurrency.h"

#include <gtest/gtest.h>

namespace chronos::model {
namespace {

constexpr ActiveRuns kIdle{};
constexpr ActiveRuns kOneRunning{1, 0, false};
constexpr ActiveRuns kOneWaiting{1, 1, false};
constexpr ActiveRuns kDelayedRunning{1, 0, true};

TEST(Admission, NothingActiveRunsWhateverThePolicy) {
  for (Concurrency c : {Concurrency::kAllow, Concurrency::kForbid, Concurrency::kBufferOne,
                        Concurrency::kReplace}) {
    EXPECT_EQ(admit(c, kIdle, false, false), Admission::kRun) << to_string(c);
    EXPECT_EQ(admit(c, kIdle, true, false), Admission::kRun) << to_string(c);
  }
}

TEST(Admission, AllowReplaceAndForceAlwaysRun) {
  EXPECT_EQ(admit(Concurrency::kAllow, kOneWaiting, false, false), Admission::kRun);
  EXPECT_EQ(admit(Concurrency::kReplace, kOneRunning, false, false), Admission::kRun);
  EXPECT_EQ(admit(Concurrency::kForbid, kOneRunning, false, true), Admission::kRun);
  EXPECT_EQ(admit(Concurrency::kBufferOne, kOneWaiting, false, true), Admission::kRun);
}

TEST(Admission, ForbidSkipsAnOnTimeOverlap) {
  EXPECT_EQ(admit(Concurrency::kForbid, kOneRunning, false, false), Admission::kSkip);
}

TEST(Admission, BufferOneLetsOneWaitAndSkipsTheNext) {
  EXPECT_EQ(admit(Concurrency::kBufferOne, kOneRunning, false, false), Admission::kWait);
  EXPECT_EQ(admit(Concurrency::kBufferOne, kOneWaiting, false, false), Admission::kSkip);
}

TEST(Admission, ARunMadeLateByAFailoverIsNeverAReasonToSkipTheNext) {
  for (Concurrency c : {Concurrency::kForbid, Concurrency::kBufferOne}) {
    EXPECT_EQ(admit(c, kDelayedRunning, false, false), Admission::kWait) << to_string(c);
    EXPECT_EQ(admit(c, kOneRunning, true, false), Admission::kWait) << to_string(c);
    EXPECT_EQ(admit(c, ActiveRuns{1, kMaxWaitingRuns - 1, true}, false, false), Admission::kWait)
        << to_string(c);
    // The line is bounded.
    EXPECT_EQ(admit(c, ActiveRuns{1, kMaxWaitingRuns, true}, true, false), Admission::kSkip)
        << to_string(c);
  }
}

Execution scheduled_run(absl::Duration started_after_scheduled, Trigger trigger) {
  Execution e;
  e.trigger = trigger;
  e.scheduled_time = absl::FromUnixSeconds(1'700'000'000);
  e.started_at = e.scheduled_time + started_after_scheduled;
  return e;
}

TEST(Admission, DelayedStartsAreCatchUpsAndLateScheduledRuns) {
  EXPECT_FALSE(is_delayed_start(scheduled_run(absl::ZeroDuration(), Trigger::kSchedule),
                                absl::ZeroDuration()));
  EXPECT_FALSE(
      is_delayed_start(scheduled_run(kOnTimeSlack, Trigger::kSchedule), absl::ZeroDuration()));
  EXPECT_TRUE(
      is_delayed_start(scheduled_run(kOnTimeSlack + absl::Milliseconds(1), Trigger::kSchedule),
                       absl::ZeroDuration()));
  // Jitter moves the fire time: a run fired at its offset is on time.
  EXPECT_FALSE(
      is_delayed_start(scheduled_run(absl::Seconds(3), Trigger::kSchedule), absl::Seconds(3)));
  EXPECT_TRUE(is_delayed_start(scheduled_run(absl::ZeroDuration(), Trigger::kCatchup),
                               absl::ZeroDuration()));
  EXPECT_FALSE(
      is_delayed_start(scheduled_run(absl::Hours(1), Trigger::kManual), absl::ZeroDuration()));
}

}  // namespace
}  // namespace chronos::model
