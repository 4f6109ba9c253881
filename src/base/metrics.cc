#include "base/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/check.h"
#include "fmt/format.h"

namespace chronos::metrics {
namespace {

void atomic_add(std::atomic<double>& target, double v) {
  double cur = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

// Label values are escaped per the exposition format: \, " and newline.
std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// `{a="x",b="y"}` (with `extra` appended, e.g. le="0.5"), or "" when empty.
// A family with labels keeps its overflow series under the empty label
// list, which renders as overflow="true".
std::string label_block(const std::vector<std::string>& names, const Labels& values,
                        std::string_view extra = {}) {
  std::string out;
  bool overflow = values.size() != names.size();
  for (size_t i = 0; i < names.size() && !overflow; ++i) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape_label(values[i]));
  }
  if (overflow) out = "overflow=\"true\"";
  if (!extra.empty()) out += fmt::format("{}{}", out.empty() ? "" : ",", extra);
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

void Counter::inc(double v) {
  CHRONOS_CHECK(v >= 0) << "counters only go up";
  atomic_add(value_, v);
}

void Gauge::add(double v) { atomic_add(value_, v); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
  size_t i =
      static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

double Histogram::quantile(double q) const {
  auto cum = cumulative_counts();
  uint64_t total = cum.back();
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  double rank = q * static_cast<double>(total);
  for (size_t i = 0; i < cum.size(); ++i) {
    if (static_cast<double>(cum[i]) >= rank) {
      if (i == bounds_->size()) return bounds_->empty() ? 0 : bounds_->back();
      double lo = i == 0 ? 0.0 : (*bounds_)[i - 1];
      double hi = (*bounds_)[i];
      uint64_t below = i == 0 ? 0 : cum[i - 1];
      uint64_t in_bucket = cum[i] - below;
      if (in_bucket == 0) return hi;
      return lo + (hi - lo) * (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
    }
  }
  return bounds_->empty() ? 0 : bounds_->back();
}

template <typename T>
std::unique_ptr<T> Family<T>::make() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<T>(&bounds_);
  } else {
    return std::make_unique<T>();
  }
}

template <typename T>
T& Family<T>::with(const Labels& values) {
  CHRONOS_CHECK(values.size() == label_names_.size())
      << name_ << ": expected " << label_names_.size() << " label values";
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  if (it != series_.end()) return *it->second;
  static const Labels kOverflow;  // see label_block
  const Labels& key = series_.size() >= kMaxSeriesPerFamily ? kOverflow : values;
  auto& slot = series_[key];
  if (!slot) slot = make();
  return *slot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  counters_.push_back(
      std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(label_names)));
  order_.emplace_back(Type::kCounter, counters_.size() - 1);
  return *counters_.back();
}

Family<Gauge>& Registry::gauge(std::string name, std::string help,
                               std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  gauges_.push_back(
      std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(label_names)));
  order_.emplace_back(Type::kGauge, gauges_.size() - 1);
  return *gauges_.back();
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<double> bounds,
                                       std::vector<std::string> label_names) {
  CHRONOS_CHECK(std::is_sorted(bounds.begin(), bounds.end())) << "bucket bounds must ascend";
  std::lock_guard lock(mu_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(label_names), std::move(bounds)));
  order_.emplace_back(Type::kHistogram, histograms_.size() - 1);
  return *histograms_.back();
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  auto header = [&out](const std::string& name, const std::string& help, std::string_view type) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  for (const auto& [type, i] : order_) {
    switch (type) {
      case Type::kCounter: {
        const auto& f = *counters_[i];
        header(f.name(), f.help(), "counter");
        f.for_each([&](const Labels& labels, const Counter& c) {
          out += fmt::format("{}{} {}\n", f.name(), label_block(f.label_names(), labels),
                             format_value(c.value()));
        });
        break;
      }
      case Type::kGauge: {
        const auto& f = *gauges_[i];
        header(f.name(), f.help(), "gauge");
        f.for_each([&](const Labels& labels, const Gauge& g) {
          out += fmt::format("{}{} {}\n", f.name(), label_block(f.label_names(), labels),
                             format_value(g.value()));
        });
        break;
      }
      case Type::kHistogram: {
        const auto& f = *histograms_[i];
        header(f.name(), f.help(), "histogram");
        f.for_each([&](const Labels& labels, const Histogram& h) {
          auto cum = h.cumulative_counts();
          for (size_t b = 0; b < cum.size(); ++b) {
            std::string le = b < f.bounds().size() ? format_value(f.bounds()[b]) : "+Inf";
            out += fmt::format("{}_bucket{} {}\n", f.name(),
                               label_block(f.label_names(), labels, "le=\"" + le + "\""), cum[b]);
          }
          out += fmt::format("{}_sum{} {}\n", f.name(), label_block(f.label_names(), labels),
                             format_value(h.sum()));
          out += fmt::format("{}_count{} {}\n", f.name(), label_block(f.label_names(), labels),
                             h.count());
        });
        break;
      }
    }
  }
  return out;
}

std::vector<double> latency_buckets_seconds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace chronos::metrics
