#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

// Prometheus metrics: counters, gauges and histograms with labels, and the
// text exposition format (version 0.0.4). Hand-written because no packaged
// client library fits (DESIGN "Libraries"); kept small.
//
// Thread safety: every type here is safe for concurrent use. Updating a
// series is lock-free (atomics); looking a labelled series up takes its
// family's mutex, so hot paths look a series up once and keep the reference
// (references stay valid for the registry's lifetime).
//
// Bounds: a family holds at most kMaxSeriesPerFamily label combinations;
// further combinations all share one series whose labels are replaced by
// `overflow="true"`, so a label with unbounded values cannot exhaust memory.

namespace chronos::metrics {

inline constexpr size_t kMaxSeriesPerFamily = 10'000;

using Labels = std::vector<std::string>;  // values, in the family's label order

class Counter {
 public:
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void observe(double v);
  // Cumulative count per bucket bound (the last is +Inf), sum and count.
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Estimated quantile q in [0,1] by linear interpolation inside the bucket
  // (what Prometheus' histogram_quantile does); NaN when empty.
  double quantile(double q) const;

 private:
  const std::vector<double>* bounds_;                // owned by the family
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, +Inf last
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

enum class Type : uint8_t { kCounter, kGauge, kHistogram };

// One metric name with its label names and every labelled series of it.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The series for `values` (one per label name), created on first use.
  T& with(const Labels& values = {});

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& bounds() const { return bounds_; }

  // Calls fn(labels, series) for every series, in label order.
  template <typename F>
  void for_each(F&& fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [labels, series] : series_) fn(labels, *series);
  }

 private:
  std::unique_ptr<T> make() const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<T>> series_;  // guarded by mu_
};

// Owns metric families and renders them. Families are registered once (at
// start-up) and live as long as the registry.
class Registry {
 public:
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string name, std::string help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<double> bounds,
                               std::vector<std::string> label_names = {});

  // The text exposition format, families in registration order.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;      // guarded by mu_
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;          // guarded by mu_
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;  // guarded by mu_
  std::vector<std::pair<Type, size_t>> order_;                  // guarded by mu_
};

// Bucket bounds in seconds suited to latencies from 1 ms to 1 min.
std::vector<double> latency_buckets_seconds();

}  // namespace chronos::metrics
