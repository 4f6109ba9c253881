#include "base/clock.h"

#include <gtest/gtest.h>

namespace chronos {
namespace {

TEST(SimulatedClock, MovesOnlyWhenTold) {
  SimulatedClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.now(), absl::FromUnixSeconds(100));
  auto m0 = clock.monotonic();
  clock.advance(absl::Seconds(5));
  EXPECT_EQ(clock.now(), absl::FromUnixSeconds(105));
  EXPECT_EQ(clock.monotonic() - m0, absl::Seconds(5));
}

TEST(SimulatedClock, WallJumpLeavesMonotonicAlone) {
  SimulatedClock clock(absl::FromUnixSeconds(100));
  auto m0 = clock.monotonic();
  clock.set_now(absl::FromUnixSeconds(50));
  EXPECT_EQ(clock.now(), absl::FromUnixSeconds(50));
  EXPECT_EQ(clock.monotonic(), m0);
}

}  // namespace
}  // namespace chronos
