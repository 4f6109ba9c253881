#include "base/duration.h"

#include <gtest/gtest.h>

namespace chronos {
namespace {

TEST(Duration, ParsesCompoundAndFractional) {
  EXPECT_EQ(*parse_duration("1d2h3m4.5s"),
            absl::Hours(26) + absl::Minutes(3) + absl::Milliseconds(4500));
  EXPECT_EQ(*parse_duration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*parse_duration("90s"), absl::Seconds(90));
  EXPECT_EQ(*parse_duration("1.5h"), absl::Minutes(90));
  EXPECT_EQ(*parse_duration("0"), absl::ZeroDuration());
  EXPECT_EQ(*parse_duration("0s"), absl::ZeroDuration());
  EXPECT_EQ(*parse_duration("250us"), absl::Microseconds(250));
}

TEST(Duration, RejectsMalformed) {
  for (const char* bad : {"", "5", "s", "1x", "1m1h", "1s1s", "-1s", "1.s", " 1s", "1 s", "1e3s",
                          "99999999999999999999d"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

TEST(Duration, FormatsCanonically) {
  EXPECT_EQ(format_duration(absl::Seconds(90)), "1m30s");
  EXPECT_EQ(format_duration(absl::Hours(26)), "1d2h");
  EXPECT_EQ(format_duration(absl::Milliseconds(500)), "500ms");
  EXPECT_EQ(format_duration(absl::Milliseconds(4500)), "4.5s");
  EXPECT_EQ(format_duration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(format_duration(absl::Minutes(5)), "5m");
  EXPECT_EQ(format_duration(absl::Hours(24)), "1d");
  EXPECT_EQ(format_duration(absl::Minutes(1) + absl::Milliseconds(1)), "1m0.001s");
  EXPECT_EQ(format_duration(absl::Nanoseconds(2169829)), "2.169829ms");
  EXPECT_EQ(format_duration(absl::Nanoseconds(1500)), "1.5us");
  EXPECT_EQ(format_duration(absl::Nanoseconds(3)), "3ns");
}

TEST(Duration, RoundTrips) {
  for (const char* s : {"1d2h3m4.5s", "500ms", "1m30s", "24h", "1ms", "7us", "3ns", "59.999s",
                        "2.169829ms", "1.5us"}) {
    auto d = parse_duration(s);
    ASSERT_TRUE(d.ok()) << s;
    EXPECT_EQ(*parse_duration(format_duration(*d)), *d) << s;
  }
}

}  // namespace
}  // namespace chronos
