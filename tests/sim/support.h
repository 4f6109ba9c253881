#pragma once

// Small pieces shared by the simulation: deterministic ids, the event log a
// failing seed prints, and the receiver that records every request the
// simulated target got. All of it is single-threaded (one seed runs on one
// thread) and owned by the World of that seed.

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "model/execution.h"

namespace chronos::sim {

// Ids made from the seed. The real driver's UUIDv7 ids carry random bits,
// which would make two runs of one seed diverge; these keep the UUIDv7
// layout (48-bit Unix milliseconds first, so ids made later sort later, as
// the store's newest-first scans expect) with seeded low bits.
class IdSource {
 public:
  explicit IdSource(uint64_t seed) : rng_(seed) {}
  // Strictly increasing across calls (a counter breaks ties inside one ms).
  std::string execution_id(absl::Time now);
  std::string job_id();  // UUIDv4 layout

 private:
  std::mt19937_64 rng_;
  int64_t last_ms_ = -1;
  uint32_t counter_ = 0;
};

// What happened in one seed, as lines stamped with simulated seconds since
// the seed's epoch. Kept whole (a seed makes a few thousand lines) so a
// failure can show both the end of the run and the lines about one job.
class EventLog {
 public:
  explicit EventLog(absl::Time epoch) : epoch_(epoch) {}
  void add(absl::Time at, std::string_view line);
  std::string stamp(absl::Time at) const;  // "12.345s"
  // The last `n` lines; the last `n` lines containing `needle`; everything.
  std::string tail(size_t n) const;
  std::string grep(std::string_view needle, size_t n) const;
  std::string all() const;
  // The first `n` lines stamped in [from, to] for which `keep` is true.
  std::string window(absl::Time from, absl::Time to,
                     const std::function<bool(std::string_view)>& keep, size_t n) const;

 private:
  absl::Time epoch_;
  std::vector<std::string> lines_;
  std::vector<absl::Time> times_;  // parallel to lines_
};

// One request the simulated target received (one attempt of an execution).
struct Delivery {
  std::string execution_id;
  std::string job_id;
  absl::Time scheduled_time;
  model::Trigger trigger = model::Trigger::kSchedule;
  int attempt = 0;
  absl::Time at;  // when it arrived
  unsigned server = 0;
  uint64_t term = 0;  // the sender's leadership term
};

// The target every job calls. Requests arrive in simulated-time order.
class Receiver {
 public:
  void record(Delivery d) { deliveries_.push_back(std::move(d)); }
  const std::vector<Delivery>& deliveries() const { return deliveries_; }

 private:
  std::vector<Delivery> deliveries_;
};

// The last 6 characters of an id: enough to tell executions apart in a log.
std::string_view short_id(std::string_view id);

}  // namespace chronos::sim
