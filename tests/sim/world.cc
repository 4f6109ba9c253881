#include "sim/world.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "base/strings.h"
#include "sched/decide.h"

namespace chronos::sim {

namespace {

// The node's Raft timing (node/config.h defaults).
constexpr unsigned kHeartbeatMs = 50;
constexpr unsigned kElectionMs = 400;
// Default network latency restored when the faults end (the fixture's own).
constexpr unsigned kDefaultLatencyMs = 15;

const char* state_name(int state) {
  switch (state) {
    case CR_FOLLOWER:
      return "follower";
    case CR_CANDIDATE:
      return "candidate";
    case CR_LEADER:
      return "leader";
    default:
      return "unavailable";
  }
}

std::string ms_text(absl::Duration d) { return str_cat(absl::ToInt64Milliseconds(d), "ms"); }

}  // namespace

SeedConfig SeedConfig::from_seed(uint64_t seed) {
  // A stream of its own, so the shape of a seed does not shift the world's
  // draws.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 0x5EED);
  SeedConfig c;
  c.seed = seed;
  c.servers = rng() % 5 == 0 ? 5 : 3;
  c.jobs = 3 + static_cast<unsigned>(rng() % 4);
  if (rng() % 10 < 4) {
    // Small enough that a follower down for a few seconds falls behind the
    // leader's log and is caught up with InstallSnapshot.
    c.snapshot_threshold = 8 + static_cast<unsigned>(rng() % 40);
    c.snapshot_trailing = 2 + static_cast<unsigned>(rng() % (c.snapshot_threshold / 2));
  }
  return c;
}

std::string SeedConfig::describe() const {
  return str_cat("seed ", seed, ": ", servers, " servers, ", jobs, " jobs, snapshot threshold ",
                 snapshot_threshold, "/trailing ", snapshot_trailing, ", faults ",
                 ms_text(fault_start), "..", ms_text(fault_end), ", quiesce at ",
                 ms_text(quiesce_at));
}

Result<SeedStores> open_seed_stores(const SeedConfig& config) {
  SeedStores out;
  std::string templ =
      (std::filesystem::temp_directory_path() / str_cat("chronos-sim-", config.seed, "-XXXXXX"))
          .string();
  if (mkdtemp(templ.data()) == nullptr) {
    return Error{ErrorCode::kUnavailable, str_cat("mkdtemp ", templ, " failed"), {}};
  }
  out.dir = templ;
  for (unsigned i = 0; i < config.servers; ++i) {
    auto s = store::Store::open(str_cat(out.dir, "/n", i));
    if (!s.ok()) return std::move(s).error();
    out.stores.push_back(std::move(s).value());
  }
  return out;
}

World::World(SeedConfig config, SeedStores stores, bool keep_full_log)
    : config_(config),
      stores_(std::move(stores)),
      keep_full_log_(keep_full_log),
      rng_(config.seed),
      // A seeded offset inside the second, so cron second boundaries fall
      // at different points of the fixture's 100 ms tick grid.
      epoch_(absl::FromUnixSeconds(1'700'000'000) +
             absl::Milliseconds(static_cast<int64_t>(rng_() % 1000))),
      clock_(epoch_),
      log_(epoch_),
      ids_(config.seed ^ 0x1D5EEDULL) {}

World::~World() {
  drivers_.clear();
  cluster_.reset();
}

void World::log(const std::string& line) { log_.add(now(), line); }

std::string World::job_name(const std::string& id) const {
  for (const auto& j : jobs_) {
    if (j.job.id == id) return j.job.name;
  }
  return std::string(short_id(id));
}

absl::Duration World::uniform(absl::Duration lo, absl::Duration hi) {
  return absl::Milliseconds(std::uniform_int_distribution<int64_t>(
      absl::ToInt64Milliseconds(lo), absl::ToInt64Milliseconds(hi))(rng_));
}

bool World::chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

void World::at(uint64_t ms, std::function<void()> fn) { actions_.emplace(ms, std::move(fn)); }

void World::after(absl::Duration d, std::function<void()> fn) {
  at(now_ms() + static_cast<uint64_t>(absl::ToInt64Milliseconds(d)), std::move(fn));
}

SeedReport World::run() {
  SeedReport report;
  report.seed = config_.seed;
  report.config = config_.describe();

  ClusterOptions opts;
  opts.stores = std::move(stores_.stores);
  // Distinct values in 100 ms ± 5% (see ClusterOptions::heartbeat_timeout_ms).
  std::vector<unsigned> heartbeats;
  for (unsigned ms = kHeartbeatMs * 95 / 100; ms <= kHeartbeatMs * 105 / 100; ++ms) {
    heartbeats.push_back(ms);
  }
  for (unsigned i = 0; i < config_.servers; ++i) {
    std::swap(heartbeats[i], heartbeats[i + rng_() % (heartbeats.size() - i)]);
    opts.heartbeat_timeout_ms.push_back(heartbeats[i]);
  }
  opts.election_timeout_ms = kElectionMs;
  for (unsigned i = 0; i < config_.servers; ++i) {
    opts.first_election_timeout_ms.push_back(static_cast<unsigned>(absl::ToInt64Milliseconds(
        uniform(absl::Milliseconds(kElectionMs), absl::Milliseconds(2 * kElectionMs)))));
  }
  opts.snapshot_threshold = config_.snapshot_threshold;
  opts.snapshot_trailing = config_.snapshot_trailing;
  opts.clock = &clock_;
  opts.trace = [this](unsigned i, std::string_view message) {
    log(str_cat("raft ", i + 1, ": ", message));
  };
  auto cluster = Cluster::create(
      std::move(opts),
      [this](unsigned i, const model::CommandBatch& batch, const store::ApplyOutcome& outcome) {
        for (const auto& cmd : batch.commands) {
          if (const auto* put = std::get_if<model::PutJob>(&cmd)) {
            visible_at_.emplace(put->job.id, now());
          }
        }
        if (i < drivers_.size()) drivers_[i]->on_applied(batch, outcome);
      });
  if (!cluster.ok()) {
    report.failures.push_back(str_cat("cannot build the cluster: ", cluster.error().message));
    return report;
  }
  cluster_ = std::move(cluster).value();

  env_.plan.late_grace = sched::default_late_grace(absl::Milliseconds(kElectionMs));
  env_.cluster = cluster_.get();
  env_.clock = &clock_;
  env_.ids = &ids_;
  env_.rng = &rng_;
  env_.receiver = &receiver_;
  env_.log = &log_;
  env_.metrics = &metrics_;
  env_.job_name = [this](const std::string& id) { return job_name(id); };
  const unsigned n = cluster_->size();
  for (unsigned i = 0; i < n; ++i) {
    drivers_.push_back(std::make_unique<Process>(&env_, i));
    last_state_.push_back(cluster_->state(i));
    last_timeout_.push_back(cluster_->next_timeout(i));
    deaths_.push_back(0);
    paused_.push_back(false);
    cluster_->set_network_latency(i, static_cast<unsigned>(absl::ToInt64Milliseconds(
                                         uniform(absl::Milliseconds(5), absl::Milliseconds(40)))));
  }
  log(report.config);

  plan_jobs();
  plan_faults();
  run_until(config_.fault_end);
  heal_all();
  run_until(config_.quiesce_at);

  // Liveness, while the schedulers still run: twelve seconds after the
  // last heal some driver leads, and it owns every execution its store has
  // in flight (a run nobody dispatches would stay running forever).
  check_orphans(report);

  // Quiesce: no more scheduling; the log settles and every store must
  // converge to the same state.
  close_observations();
  schedulers_on_ = false;
  const absl::Time quiesced = now();
  log("QUIESCE: schedulers stopped");
  const bool converged = converge();
  if (!converged) {
    report.failures.push_back("the cluster did not converge within 30 s after healing");
  }

  CheckResult result;
  const CheckInput in = check_input(quiesced);
  if (converged) result = check_all(in);
  for (auto& f : result.failures) report.failures.push_back(std::move(f));
  report.max_lateness = result.max_lateness;
  report.dropped_under_majority = result.strict_misses;
  report.stats = stats(result);
  if (!report.failures.empty()) report.failure_log = failure_log(result, in.timing);
  if (keep_full_log_) report.full_log = log_.all();
  return report;
}

CheckInput World::check_input(absl::Time quiesced) {
  CheckInput in;
  in.cluster = cluster_.get();
  in.receiver = &receiver_;
  for (const auto& j : jobs_) {
    if (j.acked) in.acked_jobs.push_back(j.job);
    in.names[j.job.id] = j.job.name;
  }
  in.visible_at = visible_at_;
  in.majority = majority_;
  in.leaders = stretches_;
  in.timing.late_grace = env_.plan.late_grace;
  in.timing.commit_margin = absl::Milliseconds(500);
  // README.md "Deadline": late_grace + 2 × election timeout (the slowest
  // randomized timer notices a dead leader) + 1 × election timeout (votes,
  // the new leader's barrier and its re-dispatch commit, with the slowest
  // links) + the re-dispatch backoff of a first attempt
  // (RetryPolicy::initial_interval).
  in.timing.deadline = env_.plan.late_grace + 3 * absl::Milliseconds(kElectionMs) +
                       model::RetryPolicy{}.initial_interval;
  in.epoch = epoch_;
  in.horizon = quiesced - in.timing.deadline;
  in.strict = config_.strict;
  return in;
}

std::string World::stats(const CheckResult& result) const {
  size_t acked = 0;
  for (const auto& j : jobs_) acked += j.acked;
  return str_cat(
      "jobs ", acked, "/", jobs_.size(), " acked, ", result.executions, " executions, ",
      result.required, " required, ", receiver_.deliveries().size(), " requests, ", activations_,
      " leader stretches, ", crashes_, " crashes, ", pauses_, " pauses, ", crash_points_,
      " mid-dispatch crashes, ", partitions_, " partitions, ", cluster_->snapshots_taken(),
      " snapshots, ", cluster_->snapshots_restored(), " installed, max lateness ",
      ms_text(result.max_lateness), ", ", result.strict_misses, " dropped under a live majority",
      result.strict_example.empty() ? "" : str_cat(" (first: ", result.strict_example, ")"));
}

std::string World::failure_log(const CheckResult& result, const Timing& timing) const {
  if (!result.first_time) {
    std::string out = str_cat("--- last events ---\n", log_.tail(60));
    if (!result.first_job.empty()) {
      out += str_cat("--- events of ", result.first_job, " ---\n",
                     log_.grep(result.first_job + "#", 60));
    }
    return out;
  }
  // What happened to the job around the run the failure is about, with the
  // faults and leadership changes of the same stretch.
  const absl::Time from = *result.first_time - absl::Seconds(3);
  const absl::Time to = *result.first_time + timing.deadline + absl::Seconds(4);
  const std::string needle = result.first_job + "#";
  auto keep = [&needle](std::string_view l) {
    for (const char* m : {"FAULT", "REVIVE", "HEAL", "ACTIVE", "inactive", " raft ", "CRASH"}) {
      if (l.find(m) != std::string_view::npos) return true;
    }
    return l.find(needle) != std::string_view::npos;
  };
  return str_cat("--- events of ", result.first_job, " and of the cluster, ", log_.stamp(from),
                 "..", log_.stamp(to), " ---\n", log_.window(from, to, keep, 100));
}

void World::run_until(absl::Duration t) {
  const uint64_t end = static_cast<uint64_t>(absl::ToInt64Milliseconds(t));
  while (now_ms() < end) {
    cluster_->step();
    after_step();
  }
}

void World::after_step() {
  const uint64_t ms = cluster_->now_ms();
  if (ms > clock_ms_) {
    clock_.advance(absl::Milliseconds(static_cast<int64_t>(ms - clock_ms_)));
    clock_ms_ = ms;
  }
  while (!actions_.empty() && actions_.begin()->first <= ms) {
    auto fn = std::move(actions_.begin()->second);
    actions_.erase(actions_.begin());
    fn();
  }
  const unsigned n = cluster_->size();
  for (unsigned i = 0; i < n; ++i) {
    // raft_uv draws a new randomized election timeout every time the timer
    // is reset; the fixture makes every draw return one configured value
    // per server, with which two candidates that timed out together split
    // the vote round after round (0.22: seed 1421 from 601). A new value is
    // configured after every reset, for the next.
    if (const uint64_t next = cluster_->next_timeout(i); next != last_timeout_[i]) {
      last_timeout_[i] = next;
      cluster_->set_randomized_election_timeout(
          i, static_cast<unsigned>(absl::ToInt64Milliseconds(
                 uniform(absl::Milliseconds(kElectionMs), absl::Milliseconds(2 * kElectionMs)))));
    }
    const int state = cluster_->state(i);
    if (state == last_state_[i]) continue;
    last_state_[i] = state;
    log(str_cat("n", i, " raft ", state_name(state), " term ", cluster_->term(i)));
  }
  for (unsigned i = 0; i < n; ++i) {
    if (!cluster_->alive(i)) continue;
    cluster_->refresh(i);
    if (!schedulers_on_) continue;
    drivers_[i]->poll();
    if (drivers_[i]->halted()) {
      ++crash_points_;
      armed_ = -1;
      crash(i, /*pause=*/false, "mid-dispatch crash point");
      const uint64_t death = deaths_[i];
      after(uniform(absl::Seconds(1), absl::Seconds(7)), [this, i, death] { revive(i, death); });
    }
  }
  if (schedulers_on_) observe();
}

void World::observe() {
  const absl::Time t = now();
  const bool live = cluster_->majority_live();
  if (live && !majority_open_) {
    majority_open_ = true;
    majority_from_ = t;
  } else if (!live && majority_open_) {
    majority_open_ = false;
    majority_.push_back({majority_from_, t});
  }
  // The effective leader: an active driver on a live majority side whose
  // term is the highest there (a stale leader that was paused may still be
  // active for a moment after it comes back).
  const unsigned n = cluster_->size();
  int eff = -1;
  for (unsigned i = 0; i < n; ++i) {
    if (!drivers_[i]->active() || !cluster_->in_majority(i)) continue;
    bool highest = true;
    for (unsigned j = 0; j < n; ++j) {
      if (cluster_->alive(j) && cluster_->side(j) == cluster_->side(i) &&
          cluster_->term(j) > cluster_->term(i)) {
        highest = false;
      }
    }
    if (highest) eff = static_cast<int>(i);
  }
  if (eff != stretch_server_) {
    if (stretch_server_ >= 0) {
      stretches_.push_back({static_cast<unsigned>(stretch_server_), stretch_from_, t});
    }
    if (eff >= 0) ++activations_;
    stretch_server_ = eff;
    stretch_from_ = t;
  }
}

void World::close_observations() {
  const absl::Time t = now();
  if (majority_open_) majority_.push_back({majority_from_, t});
  majority_open_ = false;
  if (stretch_server_ >= 0) {
    stretches_.push_back({static_cast<unsigned>(stretch_server_), stretch_from_, t});
  }
  stretch_server_ = -1;
}

void World::check_orphans(SeedReport& report) {
  const int l = active_leader();
  if (l < 0) {
    report.failures.push_back(str_cat("check 2 (no leader): no scheduler is active ",
                                      ms_text(config_.quiesce_at - config_.fault_end),
                                      " after the last heal"));
    return;
  }
  const auto i = static_cast<unsigned>(l);
  std::string after;
  while (true) {
    auto page = cluster_->store(i).list_in_flight(after, 1000);
    if (!page.ok()) {
      report.failures.push_back(
          str_cat("cannot list in-flight executions: ", page.error().message));
      return;
    }
    for (const auto& e : *page) {
      after = e.id;
      if (drivers_[i]->owns(e.id)) continue;
      report.failures.push_back(
          str_cat("check 2 (orphaned run): ", job_name(e.job_id), "#", short_id(e.id), " (",
                  log_.stamp(e.scheduled_time), ", attempts ", e.attempts,
                  ") is in flight but the leader n", i, " is not dispatching it"));
    }
    if (page->size() < 1000) return;
  }
}

// ---- faults ----

int World::leader() const {
  int best = -1;
  for (unsigned i = 0; i < cluster_->size(); ++i) {
    if (!cluster_->alive(i) || !cluster_->is_leader(i)) continue;
    if (best < 0 || cluster_->term(i) > cluster_->term(static_cast<unsigned>(best))) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

int World::active_leader() const {
  int l = leader();
  return l >= 0 && drivers_[static_cast<unsigned>(l)]->active() ? l : -1;
}

int World::random_alive(int exclude) {
  std::vector<unsigned> pick;
  for (unsigned i = 0; i < cluster_->size(); ++i) {
    if (cluster_->alive(i) && static_cast<int>(i) != exclude) pick.push_back(i);
  }
  if (pick.empty()) return -1;
  return static_cast<int>(pick[rng_() % pick.size()]);
}

void World::plan_faults() {
  absl::Duration t = config_.fault_start + uniform(absl::ZeroDuration(), absl::Seconds(2));
  while (t < config_.fault_end - absl::Seconds(1)) {
    at(static_cast<uint64_t>(absl::ToInt64Milliseconds(t)), [this] { inject_fault(); });
    t += uniform(absl::Seconds(3), absl::Seconds(8));
  }
}

void World::inject_fault() {
  enum Kind {
    kCrashLeader,
    kPauseLeader,
    kMidDispatch,
    kCrashFollower,
    kIsolateLeader,
    kIsolateFollower,
    kSplit,
    kLatency,
    kElectionTimeout
  };
  std::discrete_distribution<int> pick(
      {20, 10, 20, 10, 15, 7, cluster_->size() >= 5 ? 8.0 : 0.0, 8, 5});
  const int kind = pick(rng_);
  const int l = leader();
  switch (kind) {
    case kCrashLeader:
    case kPauseLeader: {
      const bool pause = kind == kPauseLeader;
      const int victim = l >= 0 ? l : random_alive(-1);
      if (victim < 0) return;
      const auto i = static_cast<unsigned>(victim);
      crash(i, pause, l >= 0 ? "the leader" : "no leader: a random server");
      const uint64_t death = deaths_[i];
      after(pause ? uniform(absl::Milliseconds(500), absl::Seconds(5))
                  : uniform(absl::Seconds(1), absl::Seconds(7)),
            [this, i, death] { revive(i, death); });
      return;
    }
    case kMidDispatch:
      arm_mid_dispatch_crash(0);
      return;
    case kCrashFollower: {
      const int victim = random_alive(l);
      if (victim < 0) return;
      const auto i = static_cast<unsigned>(victim);
      crash(i, false, "a follower");
      const uint64_t death = deaths_[i];
      after(uniform(absl::Seconds(1), absl::Seconds(8)), [this, i, death] { revive(i, death); });
      return;
    }
    case kIsolateLeader:
      if (l >= 0) partition({static_cast<unsigned>(l)}, "isolate the leader");
      return;
    case kIsolateFollower: {
      const int f = random_alive(l);
      if (f >= 0) partition({static_cast<unsigned>(f)}, "isolate a follower");
      return;
    }
    case kSplit: {
      // Five servers: two on the minority side, with or without the leader.
      std::vector<unsigned> minority;
      if (l >= 0 && chance(0.5)) minority.push_back(static_cast<unsigned>(l));
      while (minority.size() < 2) {
        const auto i = static_cast<unsigned>(rng_() % cluster_->size());
        if (static_cast<int>(i) == l && minority.empty()) continue;
        if (std::find(minority.begin(), minority.end(), i) == minority.end()) {
          minority.push_back(i);
        }
      }
      partition(minority, "split 2|3");
      return;
    }
    case kLatency: {
      const auto i = static_cast<unsigned>(rng_() % cluster_->size());
      const auto ms = static_cast<unsigned>(
          absl::ToInt64Milliseconds(uniform(absl::Milliseconds(2), absl::Milliseconds(80))));
      cluster_->set_network_latency(i, ms);
      log(str_cat("FAULT latency of n", i, " = ", ms, "ms"));
      return;
    }
    case kElectionTimeout: {
      const auto i = static_cast<unsigned>(rng_() % cluster_->size());
      const auto ms = static_cast<unsigned>(absl::ToInt64Milliseconds(
          uniform(absl::Milliseconds(kElectionMs), absl::Milliseconds(2 * kElectionMs))));
      cluster_->set_randomized_election_timeout(i, ms);
      log(str_cat("FAULT randomized election timeout of n", i, " = ", ms, "ms"));
      return;
    }
    default:
      return;
  }
}

void World::crash(unsigned i, bool pause, const std::string& why) {
  cluster_->kill(i);
  ++deaths_[i];
  paused_[i] = pause;
  if (pause) {
    ++pauses_;
  } else {
    // The process dies: its scheduler, dispatches in progress and pending
    // results are gone; the Raft state survives as if reloaded from disk.
    ++crashes_;
    cluster_->restart_process(i);
    drivers_[i] = std::make_unique<Process>(&env_, i);
  }
  log(str_cat("FAULT ", pause ? "pause" : "crash", " n", i, " (", why, ")"));
}

void World::revive(unsigned i, uint64_t death) {
  if (cluster_->alive(i) || deaths_[i] != death) return;
  cluster_->revive(i);
  log(str_cat("REVIVE n", i, paused_[i] ? " (resumes where it was paused)" : " (new process)"));
}

void World::partition(std::vector<unsigned> minority, const std::string& why) {
  if (partition_id_ != 0) return;  // one partition at a time
  partition_id_ = ++partitions_;
  std::string who;
  for (unsigned i : minority) {
    cluster_->set_side(i, 1);
    who += str_cat(" n", i);
  }
  log(str_cat("FAULT partition (", why, "): minority side", who));
  const uint64_t id = partition_id_;
  after(uniform(absl::Seconds(1), absl::Seconds(7)), [this, id] { heal_partition(id); });
}

void World::heal_partition(uint64_t id) {
  if (partition_id_ != id) return;
  for (unsigned i = 0; i < cluster_->size(); ++i) cluster_->set_side(i, 0);
  partition_id_ = 0;
  log("HEAL partition");
}

void World::arm_mid_dispatch_crash(int tries) {
  if (now() - epoch_ >= config_.fault_end || armed_ >= 0) return;
  const int l = active_leader();
  if (l < 0) {
    if (tries < 20) {
      after(absl::Milliseconds(200), [this, tries] { arm_mid_dispatch_crash(tries + 1); });
    }
    return;
  }
  const auto i = static_cast<unsigned>(l);
  const CrashPoint point = chance(0.5) ? CrashPoint::kStartCommitted : CrashPoint::kFirstSend;
  drivers_[i]->arm_crash(point);
  armed_ = l;
  log(str_cat("FAULT armed n", i, " to crash ",
              point == CrashPoint::kStartCommitted ? "after its next start commits"
                                                   : "after its next request is sent"));
  after(absl::Seconds(6), [this, i] {
    if (armed_ != static_cast<int>(i)) return;
    drivers_[i]->arm_crash(CrashPoint::kNone);
    armed_ = -1;
    log(str_cat("disarmed n", i));
  });
}

void World::heal_all() {
  if (armed_ >= 0) {
    drivers_[static_cast<unsigned>(armed_)]->arm_crash(CrashPoint::kNone);
    armed_ = -1;
  }
  for (unsigned i = 0; i < cluster_->size(); ++i) {
    if (!cluster_->alive(i)) revive(i, deaths_[i]);
  }
  for (unsigned i = 0; i < cluster_->size(); ++i) {
    cluster_->set_side(i, 0);
    cluster_->set_network_latency(i, kDefaultLatencyMs);
  }
  partition_id_ = 0;
  log("HEAL everything: all servers up and connected");
}

// ---- the client ----

void World::plan_jobs() {
  static const char* const kSchedules[] = {"@every 1s", "* * * * * *", "*/2 * * * * *",
                                           "@every 2s", "@every 3s",   "*/5 * * * * *",
                                           "@every 1s"};
  std::vector<absl::Duration> times;
  for (unsigned k = 0; k < config_.jobs; ++k) {
    times.push_back(k == 0 ? uniform(absl::Milliseconds(1500), absl::Seconds(3))
                           : uniform(absl::Seconds(2), config_.fault_end - absl::Seconds(4)));
  }
  std::sort(times.begin(), times.end());
  for (unsigned k = 0; k < config_.jobs; ++k) {
    JobRecord r;
    model::Job& job = r.job;
    job.id = ids_.job_id();
    job.name = str_cat("j", k);
    job.namespace_ = "sim";
    job.schedule = kSchedules[rng_() % std::size(kSchedules)];
    job.webhook = model::Webhook{};
    job.webhook->url = str_cat("http://receiver.sim/hook/", job.name);
    // allow, forbid, replace, buffer_one (the enum's order).
    std::discrete_distribution<int> conc({25, 25, 15, 35});
    job.concurrency = static_cast<model::Concurrency>(conc(rng_));
    std::discrete_distribution<int> missed({40, 45, 15});
    job.missed_run_policy = static_cast<model::MissedRunPolicy>(missed(rng_));
    if (chance(0.25)) job.jitter = uniform(absl::Milliseconds(1), absl::Milliseconds(900));
    // fast: answers in 20-200 ms and never fails, so under forbid and
    // buffer_one only the scheduler itself can make its runs overlap.
    std::discrete_distribution<int> profile({35, 25, 10, 30});
    static const char* const kProfiles[] = {"short", "mixed", "long", "fast"};
    job.tags["sim"] = kProfiles[profile(rng_)];
    jobs_.push_back(std::move(r));
    const size_t idx = jobs_.size() - 1;
    at(static_cast<uint64_t>(absl::ToInt64Milliseconds(times[k])),
       [this, idx] { client_create(idx); });
  }
}

void World::client_create(size_t k) {
  JobRecord& r = jobs_[k];
  if (r.acked || r.attempts >= 60) return;
  if (r.attempts == 0) {
    r.job.created_at = now();
    r.job.updated_at = now();
    log(str_cat("CLIENT creates ", r.job.name, "# ", r.job.schedule, " concurrency ",
                model::to_string(r.job.concurrency), " missed ",
                model::to_string(r.job.missed_run_policy), " jitter ", ms_text(r.job.jitter),
                " target ", r.job.tags["sim"]));
  }
  const int l = leader();
  if (l < 0) {
    after(absl::Milliseconds(300), [this, k] { client_create(k); });
    return;
  }
  const int attempt = ++r.attempts;
  cluster_->propose(
      static_cast<unsigned>(l), model::CommandBatch{{model::PutJob{r.job, 0}}},
      [this, k, attempt](Result<store::ApplyOutcome> out) {
        JobRecord& r = jobs_[k];
        if (out.ok() && !out->results.empty()) {
          const auto& res = out->results[0];
          // kAlreadyExists: an earlier attempt committed after all.
          if (res.ok() || res.error().code == ErrorCode::kAlreadyExists) {
            if (!r.acked) log(str_cat("CLIENT ", r.job.name, "# acknowledged"));
            r.acked = true;
            return;
          }
          log(str_cat("CLIENT ", r.job.name, "# refused: ", res.error().message));
          return;
        }
        if (!out.ok()) log(str_cat("CLIENT ", r.job.name, "# failed: ", out.error().message));
        if (!r.acked && attempt == r.attempts) {
          after(absl::Milliseconds(500), [this, k] { client_create(k); });
        }
      },
      /*bound_to_process=*/false);
  // No answer (the server died with the request): ask again.
  after(absl::Seconds(4), [this, k, attempt] {
    if (!jobs_[k].acked && jobs_[k].attempts == attempt) client_create(k);
  });
}

bool World::converge() {
  const uint64_t limit = now_ms() + 30'000;
  while (now_ms() < limit) {
    const int l = leader();
    if (l >= 0 && cluster_->caught_up(static_cast<unsigned>(l))) {
      const auto leader = static_cast<unsigned>(l);
      const uint64_t last = cluster_->last_index(leader);
      bool done = cluster_->commit_index(leader) == last;
      for (unsigned i = 0; i < cluster_->size() && done; ++i) {
        done = cluster_->alive(i) && cluster_->last_applied(i) == last;
      }
      if (done) return true;
    }
    cluster_->step();
    after_step();
  }
  return false;
}

}  // namespace chronos::sim
