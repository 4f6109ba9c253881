#include "raft/leadership.h"

#include <gtest/gtest.h>

namespace chronos::raft {
namespace {

constexpr absl::Duration kT = absl::Milliseconds(400);
absl::Duration ms(int64_t n) { return absl::Milliseconds(n); }

TEST(Leadership, ANewLeaderAsksForItsTermsBarrierAndHasNoLeaseUntilItApplies) {
  LeadershipTracker t(kT);
  EXPECT_TRUE(t.want_barrier(true, 5, false, ms(100)));
  EXPECT_FALSE(t.want_barrier(true, 5, false, ms(110)));  // one at a time
  EXPECT_FALSE(t.caught_up(5));
  EXPECT_EQ(t.lease_until(5), -absl::InfiniteDuration());
  t.barrier_done(5, ms(100), true);
  EXPECT_TRUE(t.caught_up(5));
  EXPECT_EQ(t.lease_until(5), ms(100) + kT * LeadershipTracker::kLeaseFraction);
}

TEST(Leadership, TheLeaseCountsFromWhenAnEntryWasProposedNotWhenItCommitted) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 2, false, ms(0)));
  t.barrier_done(2, ms(0), true);
  // Proposed at 50 ms, committed much later (answers read after a pause).
  t.committed(2, ms(50));
  EXPECT_EQ(t.lease_until(2), ms(50) + kT * LeadershipTracker::kLeaseFraction);
  t.committed(2, ms(20));  // an older proof never shortens it
  EXPECT_EQ(t.lease_until(2), ms(50) + kT * LeadershipTracker::kLeaseFraction);
}

TEST(Leadership, AnIdleLeaderRenewsAfterAThirdOfTheLease) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 1, false, ms(0)));
  t.barrier_done(1, ms(0), true);
  const absl::Duration third = kT * LeadershipTracker::kLeaseFraction / 3;
  EXPECT_FALSE(t.want_barrier(true, 1, false, third - ms(1)));
  EXPECT_TRUE(t.want_barrier(true, 1, false, third));
  t.barrier_done(1, third, false);  // failed: asked for again
  EXPECT_TRUE(t.want_barrier(true, 1, false, third + ms(1)));
}

TEST(Leadership, NoLeaseAfterSteppingDownOrForAnotherTermOrDuringATransfer) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 3, false, ms(0)));
  t.barrier_done(3, ms(0), true);
  ASSERT_GT(t.lease_until(3), ms(0));
  EXPECT_EQ(t.lease_until(4), -absl::InfiniteDuration());
  t.want_barrier(true, 3, true, ms(1));  // transferring
  EXPECT_EQ(t.lease_until(3), -absl::InfiniteDuration());
  t.want_barrier(false, 3, false, ms(2));  // stepped down in the same term
  EXPECT_EQ(t.lease_until(3), -absl::InfiniteDuration());
  // A proof from an old term does not count in a new one.
  EXPECT_TRUE(t.want_barrier(true, 6, false, ms(3)));
  t.committed(3, ms(3));
  t.barrier_done(3, ms(3), true);
  EXPECT_FALSE(t.caught_up(6));
  EXPECT_EQ(t.lease_until(6), -absl::InfiniteDuration());
}

}  // namespace
}  // namespace chronos::raft
