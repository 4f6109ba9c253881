#include "cron/cron_spec.h"

#include <string>

#include "gtest/gtest.h"

namespace chronos::cron::internal {
namespace {

// Which expressions run on elapsed time rather than wall time (README.md,
// "Fixed-interval schedules").
struct FixedCase {
  std::string name;
  std::string expr;
  bool fixed;
};

std::ostream& operator<<(std::ostream& os, const FixedCase& c) { return os << c.name; }

class FixedInterval : public ::testing::TestWithParam<FixedCase> {};

TEST_P(FixedInterval, Classifies) {
  const FixedCase& c = GetParam();
  Result<CronSpec> spec = parse_cron_spec(c.expr);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->fixed_interval, c.fixed) << c.expr;
}

const FixedCase kFixedCases[] = {
    {"EveryMinute", "* * * * *", true},
    {"MinuteStep", "*/15 * * * *", true},
    {"EverySecond", "* * * * * *", true},
    {"SecondStep", "*/5 * * * * *", true},
    {"SecondValueWithMinuteStep", "30 */5 * * * *", true},
    {"MinuteStepOnWeekdays", "*/10 * * * 1-5", true},
    {"HourStepOneIsStar", "*/15 */1 * * *", true},
    {"HourlyAtMinuteZero", "0 * * * *", false},
    {"MinuteList", "0,30 * * * *", false},
    {"MinuteRangeStep", "0-30/10 * * * *", false},
    {"MinuteValueStep", "5/15 * * * *", false},
    {"HourRestricted", "*/15 9-17 * * *", false},
    {"HourStep", "*/15 */2 * * *", false},
    {"SecondStepWithMinuteValue", "*/5 0 * * * *", false},
    {"SecondListWithMinuteStar", "0,30 * * * * *", false},
    {"Daily", "0 0 * * *", false},
};

INSTANTIATE_TEST_SUITE_P(Cron, FixedInterval, ::testing::ValuesIn(kFixedCases),
                         [](const auto& info) { return info.param.name; });

TEST(CronSpec, NextMatchIsInclusive) {
  CronSpec spec = *parse_cron_spec("30 14 * * *");
  absl::CivilSecond at(2024, 1, 1, 14, 30, 0);
  EXPECT_EQ(spec.next_match(at), at);
}

TEST(CronSpec, NextMatchCarriesIntoNextYear) {
  CronSpec spec = *parse_cron_spec("0 0 1 1 *");
  EXPECT_EQ(spec.next_match(absl::CivilSecond(2024, 1, 1, 0, 0, 1)),
            absl::CivilSecond(2025, 1, 1, 0, 0, 0));
}

TEST(CronSpec, NextMatchStopsAtHorizon) {
  CronSpec spec = *parse_cron_spec("0 0 29 2 *");
  EXPECT_FALSE(spec.next_match(absl::CivilSecond(2197, 1, 1, 0, 0, 0)).has_value());
}

TEST(CronSpec, DayMaskOfLastDayInCommonFebruary) {
  CronSpec spec = *parse_cron_spec("0 0 L * *");
  EXPECT_EQ(spec.day_mask(2023, 2), uint32_t{1} << 28);
  EXPECT_EQ(spec.day_mask(2024, 2), uint32_t{1} << 29);
}

TEST(CronSpec, DayMatchesRespectsMonthField) {
  CronSpec spec = *parse_cron_spec("0 0 1 JUN *");
  EXPECT_TRUE(spec.day_matches(2024, 6, 1));
  EXPECT_FALSE(spec.day_matches(2024, 7, 1));
}

}  // namespace
}  // namespace chronos::cron::internal
