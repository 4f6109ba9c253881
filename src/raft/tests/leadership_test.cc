#include "raft/leadership.h"

#include <gtest/gtest.h>

namespace chronos::raft {
namespace {

constexpr absl::Duration kT = absl::Milliseconds(400);
absl::Duration ms(int64_t n) { return absl::Milliseconds(n); }
const absl::Duration kNone = -absl::InfiniteDuration();  // no lease wanted

TEST(Leadership, ANewLeaderAsksForItsTermsBarrierAndHasNoLeaseUntilItApplies) {
  LeadershipTracker t(kT);
  EXPECT_TRUE(t.want_barrier(true, 5, false, ms(100), kNone));
  EXPECT_FALSE(t.want_barrier(true, 5, false, ms(110), kNone));  // one at a time
  EXPECT_FALSE(t.caught_up(5));
  EXPECT_EQ(t.lease_until(5), -absl::InfiniteDuration());
  t.barrier_done(5, ms(100), true);
  EXPECT_TRUE(t.caught_up(5));
  EXPECT_EQ(t.lease_until(5), ms(100) + kT * LeadershipTracker::kLeaseFraction);
}

TEST(Leadership, TheLeaseCountsFromWhenAnEntryWasProposedNotWhenItCommitted) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 2, false, ms(0), kNone));
  t.barrier_done(2, ms(0), true);
  // Proposed at 50 ms, committed much later (answers read after a pause).
  t.committed(2, ms(50));
  EXPECT_EQ(t.lease_until(2), ms(50) + kT * LeadershipTracker::kLeaseFraction);
  t.committed(2, ms(20));  // an older proof never shortens it
  EXPECT_EQ(t.lease_until(2), ms(50) + kT * LeadershipTracker::kLeaseFraction);
}

TEST(Leadership, AnIdleLeaderWithNothingToSendDoesNotRenew) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 1, false, ms(0), kNone));
  t.barrier_done(1, ms(0), true);
  EXPECT_FALSE(t.want_barrier(true, 1, false, absl::Hours(1), kNone));
  // A send an hour away: nothing to do yet.
  EXPECT_FALSE(t.want_barrier(true, 1, false, ms(1000), ms(1000) + absl::Hours(1)));
}

TEST(Leadership, RenewsSoThatTheLeaseCoversTheNextSend) {
  LeadershipTracker t(kT);
  const absl::Duration lease = kT * LeadershipTracker::kLeaseFraction;
  const absl::Duration third = lease / 3;
  ASSERT_TRUE(t.want_barrier(true, 1, false, ms(0), kNone));
  t.barrier_done(1, ms(0), true);  // covers [0, lease)
  const absl::Duration send = ms(2000);
  // Too early: a barrier now would not reach the send.
  EXPECT_FALSE(t.want_barrier(true, 1, false, send - lease, send));
  // Once it would, it is proposed, and the lease then covers the send.
  const absl::Duration at = send + third - lease;
  ASSERT_TRUE(t.want_barrier(true, 1, false, at, send));
  EXPECT_FALSE(t.want_barrier(true, 1, false, at + ms(1), send));  // one at a time
  t.barrier_done(1, at, true);
  EXPECT_GT(t.lease_until(1), send);
  EXPECT_FALSE(t.want_barrier(true, 1, false, at + third, send));
  // A send held for the lease right now: renewed at once (after a cadence).
  t.barrier_done(1, at, false);
  EXPECT_TRUE(t.want_barrier(true, 1, false, at + lease, at + lease));
}

TEST(Leadership, NoLeaseAfterSteppingDownOrForAnotherTermOrDuringATransfer) {
  LeadershipTracker t(kT);
  ASSERT_TRUE(t.want_barrier(true, 3, false, ms(0), kNone));
  t.barrier_done(3, ms(0), true);
  ASSERT_GT(t.lease_until(3), ms(0));
  EXPECT_EQ(t.lease_until(4), -absl::InfiniteDuration());
  t.want_barrier(true, 3, true, ms(1), kNone);  // transferring
  EXPECT_EQ(t.lease_until(3), -absl::InfiniteDuration());
  t.want_barrier(false, 3, false, ms(2), kNone);  // stepped down in the same term
  EXPECT_EQ(t.lease_until(3), -absl::InfiniteDuration());
  // A proof from an old term does not count in a new one.
  EXPECT_TRUE(t.want_barrier(true, 6, false, ms(3), kNone));
  t.committed(3, ms(3));
  t.barrier_done(3, ms(3), true);
  EXPECT_FALSE(t.caught_up(6));
  EXPECT_EQ(t.lease_until(6), -absl::InfiniteDuration());
}

}  // namespace
}  // namespace chronos::raft
