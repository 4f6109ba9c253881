#include "base/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace chronos::metrics {
namespace {

TEST(Metrics, RendersCountersWithEscapedLabels) {
  Registry r;
  auto& c = r.counter("chronos_executions_total", "Executions by status.", {"status"});
  c.with({"success"}).inc();
  c.with({"success"}).inc(2);
  c.with({"we\"ird\\"}).inc();
  std::string text = r.render();
  EXPECT_NE(text.find("# TYPE chronos_executions_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("chronos_executions_total{status=\"success\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("chronos_executions_total{status=\"we\\\"ird\\\\\"} 1\n"), std::string::npos);
}

TEST(Metrics, RendersHistogramBucketsCumulatively) {
  Registry r;
  auto& h = r.histogram("lag_seconds", "Lag.", {0.1, 1.0});
  h.with().observe(0.05);
  h.with().observe(0.5);
  h.with().observe(5);
  std::string text = r.render();
  EXPECT_NE(text.find("lag_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lag_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lag_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lag_seconds_count 3\n"), std::string::npos) << text;
}

TEST(Metrics, QuantileInterpolatesInsideTheBucket) {
  std::vector<double> bounds = {1, 2};
  Histogram h(&bounds);
  for (int i = 0; i < 10; ++i) h.observe(1.5);
  EXPECT_GT(h.quantile(0.5), 1.0);
  EXPECT_LE(h.quantile(0.5), 2.0);
  EXPECT_TRUE(std::isnan(Histogram(&bounds).quantile(0.5)));
}

TEST(Metrics, LabelCombinationsAreBounded) {
  Registry r;
  auto& c = r.counter("c", "h", {"target"});
  for (size_t i = 0; i < kMaxSeriesPerFamily + 50; ++i) c.with({std::to_string(i)}).inc();
  std::string text = r.render();
  EXPECT_NE(text.find("c{overflow=\"true\"} 50\n"), std::string::npos);
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& c = r.counter("n", "h").with();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
}

}  // namespace
}  // namespace chronos::metrics
