#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "model/job.h"
#include "sim/checks.h"
#include "sim/cluster.h"
#include "sim/driver.h"
#include "sim/support.h"
#include "store/store.h"

namespace chronos::sim {

// Everything one seed decides up front. from_seed() is the only source of
// variation between seeds; the rest of the run draws from a PRNG seeded
// with the same number, so a seed replays exactly.
struct SeedConfig {
  uint64_t seed = 0;
  unsigned servers = 3;
  unsigned jobs = 4;
  // Faults are injected in [fault_start, fault_end); then everything heals
  // and the cluster runs on until quiesce_at, when scheduling stops and the
  // stores are compared.
  absl::Duration fault_start = absl::Seconds(3);
  absl::Duration fault_end = absl::Seconds(28);
  absl::Duration quiesce_at = absl::Seconds(40);
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 2048;
  // Not from the seed: fail on runs the missed-run policy dropped while a
  // majority was up (CheckInput::strict).
  bool strict = false;

  static SeedConfig from_seed(uint64_t seed);
  std::string describe() const;
};

// A seed's empty stores, one per server, in a fresh directory under
// TMPDIR. Opened apart from the run (see ClusterOptions::stores); whoever
// opened them removes `dir` once the World that used them is gone.
struct SeedStores {
  std::string dir;
  std::vector<std::unique_ptr<store::Store>> stores;
};
Result<SeedStores> open_seed_stores(const SeedConfig& config);

// What one seed's run found.
struct SeedReport {
  uint64_t seed = 0;
  std::string config;
  std::vector<std::string> failures;                   // empty: every check passed
  std::string stats;                                   // one line of counters
  std::string failure_log;                             // event log excerpt for a failure
  std::string full_log;                                // the whole event log when asked for
  absl::Duration max_lateness = absl::ZeroDuration();  // see CheckResult
  size_t dropped_under_majority = 0;                   // CheckResult::strict_misses
};

// One seed of the simulation: a Cluster, one Process per server, a
// client creating jobs through whichever server leads, the receiver, the
// fault schedule, and the observers the checks need (intervals with a live
// majority, stretches with an effective leader, when each job became
// visible). Single-threaded; run() once.
class World {
 public:
  World(SeedConfig config, SeedStores stores, bool keep_full_log);
  ~World();
  SeedReport run();

 private:
  struct JobRecord {
    model::Job job;
    bool acked = false;
    int attempts = 0;
  };

  absl::Time now() const { return clock_.now(); }
  uint64_t now_ms() const { return cluster_->now_ms(); }
  void at(uint64_t ms, std::function<void()> fn);
  void after(absl::Duration d, std::function<void()> fn);
  void run_until(absl::Duration t);
  // Runs the timed actions, the nodes' status refresh and (until quiesce)
  // every live driver once, then the observers.
  void after_step();
  void observe();
  void close_observations();
  void log(const std::string& line);
  std::string job_name(const std::string& id) const;

  // Faults.
  void plan_faults();
  void inject_fault();
  int leader() const;  // the live server claiming leadership with the highest term, or -1
  int active_leader() const;
  int random_alive(int exclude);
  void crash(unsigned i, bool pause, const std::string& why);
  void revive(unsigned i, uint64_t death);
  void partition(std::vector<unsigned> minority, const std::string& why);
  void heal_partition(uint64_t id);
  void arm_mid_dispatch_crash(int tries);
  void heal_all();

  // The client.
  void plan_jobs();
  void client_create(size_t k);

  void check_orphans(SeedReport& report);
  CheckInput check_input(absl::Time quiesced);
  std::string stats(const CheckResult& result) const;
  std::string failure_log(const CheckResult& result, const Timing& timing) const;
  bool converge();
  absl::Duration uniform(absl::Duration lo, absl::Duration hi);
  bool chance(double p);

  SeedConfig config_;
  SeedStores stores_;
  bool keep_full_log_;
  std::mt19937_64 rng_;
  absl::Time epoch_;
  SimulatedClock clock_;
  uint64_t clock_ms_ = 0;
  EventLog log_;
  IdSource ids_;
  Receiver receiver_;
  std::unique_ptr<Cluster> cluster_;
  metrics::Registry metrics_;  // the processes' (not looked at)
  ProcessEnv env_;
  std::vector<std::unique_ptr<Process>> drivers_;
  std::multimap<uint64_t, std::function<void()>> actions_;  // equal times keep insertion order
  std::vector<JobRecord> jobs_;
  std::map<std::string, absl::Time> visible_at_;  // job id -> first applied anywhere

  std::vector<int> last_state_;             // raft state per server, for the log
  std::vector<uint64_t> last_timeout_;      // per server: when its next timeout fires
  std::vector<uint64_t> deaths_;            // per server: bumped by every kill
  std::vector<bool> paused_;                // killed without losing the process
  uint64_t partition_id_ = 0;               // current partition; 0 = none
  int armed_ = -1;                          // server armed with a crash point
  bool schedulers_on_ = true;               // false from quiesce on

  // Observations for the checks.
  std::vector<Interval> majority_;
  bool majority_open_ = false;
  absl::Time majority_from_;
  std::vector<Stretch> stretches_;
  int stretch_server_ = -1;
  absl::Time stretch_from_;

  uint64_t crashes_ = 0;
  uint64_t pauses_ = 0;
  uint64_t partitions_ = 0;
  uint64_t crash_points_ = 0;
  uint64_t activations_ = 0;
};

}  // namespace chronos::sim
