#include "base/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace chronos {
namespace {

TEST(Ids, V4IsCanonicalAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_uuid_v4();
    ASSERT_TRUE(is_uuid(id)) << id;
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(seen.insert(id).second);
  }
}

TEST(Ids, V7SortsByCreationEvenWithinOneMillisecond) {
  absl::Time t = absl::FromUnixMillis(1'700'000'000'000);
  std::string prev = new_uuid_v7(t);
  for (int i = 0; i < 5000; ++i) {
    std::string id = new_uuid_v7(t);
    ASSERT_TRUE(is_uuid(id));
    EXPECT_LT(prev, id);
    prev = id;
  }
  EXPECT_LT(prev, new_uuid_v7(t + absl::Seconds(10)));
}

TEST(Ids, RejectsNonUuids) {
  EXPECT_FALSE(is_uuid("nightly-backup"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400G"));
  EXPECT_FALSE(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
}

}  // namespace
}  // namespace chronos
