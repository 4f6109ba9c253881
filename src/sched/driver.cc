#include "sched/driver.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "base/elapsed.h"
#include "base/strings.h"
#include "dispatch/backoff.h"
#include "model/job_codec.h"
#include "spdlog/spdlog.h"

namespace chronos::sched {
namespace {

// Bound of the dirty-job set; past it the driver loads every job again
// instead of tracking single jobs.
constexpr size_t kMaxDirtyJobs = 100'000;
// A proposal that was not committed (e.g. too many pending), or a load
// slice whose store read failed, is tried again after this long, while the
// leadership lasts.
constexpr absl::Duration kProposalRetry = absl::Milliseconds(100);
// While a due send waits for the lease to be renewed, the driver looks
// again this often.
constexpr absl::Duration kLeasePoll = absl::Milliseconds(5);
constexpr size_t kRetentionSweepPerPass = 200;
constexpr size_t kRetentionCommandsPerEntry = 64;

// The earliest a run may be sent: a scheduled or catch-up run at its fire
// time (scheduled time + the job's jitter), never before; anything else
// (manual, replay) at once.
absl::Time earliest_send(const model::Execution& exec, const model::Job& job) {
  if (exec.trigger == model::Trigger::kSchedule || exec.trigger == model::Trigger::kCatchup) {
    return exec.scheduled_time + jitter_offset(job);
  }
  return absl::InfinitePast();
}

// A one-off (`@at`) job is disabled by the same entry that starts its one
// run: that run is still sent.
bool disabled_by_its_run(const model::Job& job) {
  auto schedule = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
  return schedule.ok() && schedule->is_one_off();
}

// The per-item results of command `index` of an applied entry, or null.
const store::ItemResults* items_of(const store::ApplyOutcome& outcome, size_t index) {
  if (index >= outcome.results.size()) return nullptr;
  const auto& effect = outcome.results[index];
  if (!effect.ok()) return nullptr;
  return std::get_if<store::ItemResults>(&*effect);
}
const store::ItemResults* items_of(const Result<store::ApplyOutcome>& outcome, size_t index) {
  return outcome.ok() ? items_of(*outcome, index) : nullptr;
}

std::string when(absl::Time t) { return model::format_time(t); }

}  // namespace

// A proposed start (scheduled runs, a manual trigger or replay) waiting for
// its commit.
struct Driver::Pending {
  uint64_t epoch = 0;
  size_t start_index = 0;                            // the StartExecutions command in the batch
  std::vector<std::string> job_ids;                  // scheduled starts: their jobs' start_pending
  std::vector<std::string> execution_ids;            // proposed (owns() while uncommitted)
  std::unordered_map<std::string, model::Job> jobs;  // as planned, by id
  // A manual start: its execution as proposed, and who waits for it.
  StartedCallback on_started;
  model::Execution manual;
};

Driver::Driver(DriverOptions options, DriverPorts ports)
    : options_(std::move(options)),
      ports_(std::move(ports)),
      executions_total_(ports_.metrics->counter("chronos_executions_total",
                                                "Executions finished, by status.", {"status"})),
      duration_(ports_.metrics->histogram("chronos_execution_duration_seconds",
                                          "Execution duration from start to result.",
                                          metrics::latency_buckets_seconds())),
      lag_(ports_.metrics->histogram(
          "chronos_schedule_lag_seconds",
          "Delay from an execution's scheduled time to its first request being sent.",
          metrics::latency_buckets_seconds())),
      missed_(ports_.metrics->counter("chronos_missed_runs_total",
                                      "Scheduled times skipped by the missed-run policy.")),
      retries_(ports_.metrics->counter("chronos_retries_total", "Attempts after the first.")),
      rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {
  CHRONOS_CHECK(ports_.store && ports_.log && ports_.targets && ports_.clock && ports_.post &&
                ports_.new_execution_id && ports_.metrics)
      << "every driver port is required";
}

Driver::~Driver() = default;

// ---- the turn ----

void Driver::shutdown(std::vector<Input> inputs) {
  stopped_ = true;
  if (active_) deactivate("stopping");
  for (Input& in : inputs) in(*this);
}

void Driver::turn(absl::Time now, std::vector<Input> inputs) {
  now_ = now;
  if (stopped_) return shutdown(std::move(inputs));
  const LogPort::Leadership lead = ports_.log->leadership();
  // A new leader may not have applied what earlier leaders committed (runs
  // started, results): it waits for its term's barrier.
  if (!lead.leader || !lead.caught_up) {
    if (active_) deactivate("lost leadership");
    for (Input& in : inputs) in(*this);
    want_lease();
    return;
  }
  if (!active_ || lead.term != term_) activate(lead.term);
  lease_until_ = lead.lease_until;
  for (Input& in : inputs) in(*this);
  drain_dirty();
  load_slice();
  send_due(now);
  schedule_due(now);
  flush_results(now);
  enforce_retention(now);
  want_lease();
}

// Asks the log to hold the lease at the next send: the earliest flight
// timer (possibly a stale one: a renewal too many, never one too few) or
// the earliest fire time in the queue.
void Driver::want_lease() {
  absl::Time next = absl::InfiniteFuture();
  if (active_) {
    if (!timers_.empty()) next = timers_.top().at;
    if (auto earliest = queue_.earliest()) next = std::min(next, *earliest);
  }
  ports_.log->want_lease_until(next == absl::InfiniteFuture()
                                   ? -absl::InfiniteDuration()
                                   : ports_.clock->monotonic() +
                                         std::max(next - now_, absl::ZeroDuration()));
}

absl::Time Driver::next_wake(absl::Time now) const {
  if (!active_) return absl::InfiniteFuture();
  if (loading()) return std::max(now, load_.retry_at);  // the next slice
  absl::Time wake = absl::InfiniteFuture();
  // Jobs are popped `lookahead` before their queue time (schedule_due).
  if (auto earliest = queue_.earliest()) wake = std::min(wake, *earliest - options_.plan.lookahead);
  if (!timers_.empty()) {
    // Due sends held for the lease are looked at again every kLeasePoll.
    wake = std::min(
        wake, waiting_for_lease_ ? std::max(timers_.top().at, now + kLeasePoll) : timers_.top().at);
  }
  if (!results_.empty()) {
    wake = std::min(wake,
                    std::max(oldest_result_ + options_.finish_batch_window, retry_results_after_));
  }
  if (!retention_due_.empty() || sweep_pos_ < sweep_order_.size()) {
    wake = std::min(wake, last_retention_ + absl::Seconds(1));
  }
  return std::min(wake, last_full_retention_ + options_.retention_interval);
}

bool Driver::lease_valid() const { return ports_.clock->monotonic() < lease_until_; }

void Driver::trace(const std::string& line) const {
  if (ports_.trace) ports_.trace(line);
}

double Driver::unit_random() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

bool Driver::owns(const std::string& execution_id) const {
  return flights_.count(execution_id) != 0 || proposed_.count(execution_id) != 0;
}

// ---- inputs ----

Input Driver::applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome) {
  AppliedNote note;
  for (size_t i = 0; i < batch.commands.size(); ++i) {
    const model::Command& cmd = batch.commands[i];
    if (const auto* put = std::get_if<model::PutJob>(&cmd)) {
      note.jobs.push_back(put->job.id);
    } else if (const auto* del = std::get_if<model::DeleteJob>(&cmd)) {
      note.jobs.push_back(del->job_id);
    } else if (const auto* fin = std::get_if<model::FinishExecutions>(&cmd)) {
      const store::ItemResults* items = items_of(outcome, i);
      for (size_t k = 0; k < fin->results.size(); ++k) {
        const model::ExecutionResult& r = fin->results[k];
        note.jobs.push_back(r.job_id);
        note.finished_jobs.push_back(r.job_id);
        if (items != nullptr && k < items->items.size() && items->items[k].ok()) {
          note.ended.push_back(r.execution_id);
        }
      }
      if (items != nullptr) {
        note.started.insert(note.started.end(), items->started.begin(), items->started.end());
      }
    }
  }
  if (note.jobs.empty()) return nullptr;  // nothing the driver looks at
  return [note = std::move(note)](Driver& d) { d.note_applied(note); };
}

Input Driver::trigger(TriggerRequest request, StartedCallback started) {
  return [request = std::move(request), started = std::move(started)](Driver& d) mutable {
    if (!d.active_) {
      return started(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    d.start_manual(std::move(request), std::move(started), d.now_);
  };
}

Input Driver::cancel(std::string job_id, std::string execution_id, StartedCallback done) {
  return [job_id = std::move(job_id), execution_id = std::move(execution_id),
          done = std::move(done)](Driver& d) mutable {
    if (!d.active_) return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    d.start_cancel(std::move(job_id), std::move(execution_id), std::move(done), d.now_);
  };
}

void Driver::mark_dirty(const std::string& job_id) {
  if (dirty_all_) return;
  if (dirty_.size() >= kMaxDirtyJobs) {
    dirty_all_ = true;
    dirty_.clear();
    return;
  }
  dirty_.insert(job_id);
}

void Driver::note_applied(const AppliedNote& note) {
  if (!active_) return;  // activate() reads the store anyway
  for (const auto& id : note.jobs) mark_dirty(id);
  // A finished run frees its job's concurrency slot and may push its
  // history over the retention bound.
  for (const auto& id : note.finished_jobs) {
    if (retention_due_.size() < kMaxDirtyJobs) retention_due_.insert(id);
  }
  for (const auto& id : note.ended) {
    auto f = flights_.find(id);
    // Ended before its own start entry was reported committed (see below):
    // on_start_committed must not send it.
    if (f == flights_.end() && proposed_.count(id) != 0) ended_early_.insert(id);
    if (f == flights_.end() || f->second.phase == Flight::Phase::kFinishing) continue;
    // Ended by someone else (a cancel, a replace): stop its attempt.
    if (f->second.phase == Flight::Phase::kSending) ports_.targets->cancel(id);
    flights_.erase(f);
  }
  // Waiting runs whose turn came: sent now (never before their fire time).
  // The promotion is committed, so it is sent even when the run's own start
  // entry has not been reported committed yet: libraft may report a batch
  // of applied entries before the callbacks of their proposals (0.22 does),
  // and that report (on_start_committed) lists only the runs that started
  // at once, not one that waited and has been promoted since.
  for (const model::Execution& e : note.started) {
    if (flights_.count(e.id) != 0) continue;
    // Not listed yet: a promotion committed in an earlier term (its notes
    // reach the new leader's first turns) may have been sent by the
    // leader then, and the listing re-dispatches it under the next
    // attempt number. Promotions applied later are this leader's own.
    if (load_.in_flight && e.id > load_.in_flight_after) continue;
    auto job = ports_.store->get_job(e.job_id);
    if (!job.ok()) continue;
    trace(str_cat("promoted ", e.job_id, "#", e.id, " t=", when(e.scheduled_time)));
    fly(e, *job, std::max(now_, earliest_send(e, *job)));
  }
}

// ---- leadership ----

void Driver::activate(uint64_t term) {
  if (active_) deactivate("new term");
  active_ = true;
  term_ = term;
  ++epoch_;
  dirty_.clear();
  dirty_all_ = false;
  queue_.clear();
  jobs_.clear();
  const size_t jobs = ports_.store->job_count();
  jobs_.reserve(jobs);
  queue_.reserve(jobs);
  load_ = Load{};
  load_.in_flight = true;
  load_.jobs = true;
  load_.started = std::chrono::steady_clock::now();
  spdlog::info("scheduler: active as leader of term {}, loading {} job(s)", term, jobs);
  trace(str_cat("ACTIVE as leader of term ", term));
}

void Driver::deactivate(const char* why) {
  active_ = false;
  ++epoch_;
  load_ = Load{};
  queue_.clear();
  jobs_.clear();
  schedules_.clear();
  dirty_.clear();
  dirty_all_ = false;
  proposed_.clear();
  ended_early_.clear();
  timers_ = {};
  waiting_for_lease_ = false;
  // Runs not yet sent and results not yet committed are left to the next
  // leader, which re-dispatches them (at their fire time when it has not
  // come). An attempt at a target goes on: if this node leads again before
  // its outcome arrives, it adopts it rather than sending another.
  for (auto it = flights_.begin(); it != flights_.end();) {
    it = it->second.phase == Flight::Phase::kSending ? std::next(it) : flights_.erase(it);
  }
  if (!results_.empty()) {
    spdlog::warn(
        "scheduler: dropping {} uncommitted result(s) ({}); the next leader "
        "re-dispatches them",
        results_.size(), why);
  }
  results_.clear();
  spdlog::info("scheduler: inactive ({})", why);
  trace(str_cat("inactive (", why, ")"));
}

void Driver::load_slice() {
  if (now_ < load_.retry_at) return;
  if (load_.in_flight) {
    load_in_flight();
  } else if (load_.jobs) {
    load_jobs();
  } else {
    return;
  }
  if (load_.in_flight || load_.jobs) return;
  spdlog::info(
      "scheduler: loaded {} scheduled job(s) for term {} in {} ms (in-flight runs listed in {} ms)",
      queue_.size(), term_, ms_since(load_.started), load_.in_flight_ms);
  trace(str_cat("LOADED ", queue_.size(), " scheduled job(s)"));
}

// Executions an earlier leader (or this node before a restart) left in
// flight. One whose next attempt is not due yet (its fire time, or the end
// of a retry's back-off recorded with the retry) has not sent it: it is
// sent then, under that number. Any other may have been sent: that attempt
// is committed as made before the next one is sent (at once), so the
// target sees attempt numbers go up, never back. The listing also meets
// runs this leader started since it became active (ids grow with time):
// those it already owns.
void Driver::load_in_flight() {
  size_t listed = 0;
  while (listed < options_.load_slice) {
    auto page = ports_.store->list_in_flight(load_.in_flight_after, options_.max_batch);
    if (!page.ok()) {
      spdlog::error("scheduler: cannot list in-flight executions: {}", page.error().message);
      load_.retry_at = now_ + kProposalRetry;
      return;
    }
    listed += page->size();
    for (model::Execution& e : *page) {
      load_.in_flight_after = e.id;
      if (proposed_.count(e.id) != 0) continue;
      if (auto f = flights_.find(e.id); f != flights_.end()) {
        // This process's attempt from an earlier term is still out there
        // (its outcome is handled in this term), or a run of this term.
        f->second.exec.attempts = std::max(f->second.exec.attempts, e.attempts);
        continue;
      }
      auto job = ports_.store->get_job(e.job_id);
      if (!job.ok()) continue;
      const absl::Time due = std::max(earliest_send(e, *job), e.next_attempt_at);
      if (due > now_) {
        fly(std::move(e), std::move(*job), due);
        continue;
      }
      const std::string id = e.id;
      const int attempts = e.attempts + 1;
      fly(std::move(e), std::move(*job), now_);
      Flight& f = flights_.at(id);
      f.to_record = attempts;
      f.redispatch = true;
    }
    if (page->size() < options_.max_batch) {
      load_.in_flight = false;
      load_.in_flight_ms = ms_since(load_.started);
      return;
    }
  }
}

void Driver::load_jobs() {
  size_t read = 0;
  bool more = false;
  auto st = ports_.store->for_each_timing(
      load_.jobs_after, [&](const model::JobTiming& job, const store::ScheduleState& s) {
        if (read == options_.load_slice) {
          more = true;
          return false;
        }
        ++read;
        load_.jobs_after = job.id;
        refresh_job(job, s);
        return true;
      });
  if (!st.ok()) {
    // Tried again from where it stopped, a little later.
    spdlog::error("scheduler: loading the jobs failed: {}", st.error().message);
    load_.retry_at = now_ + kProposalRetry;
    return;
  }
  load_.jobs = more;
}

// ---- jobs ----

void Driver::refresh_job(const model::JobTiming& job, const store::ScheduleState& state) {
  auto drop = [&] {
    jobs_.erase(job.id);
    queue_.remove(job.id);
  };
  if (!job.enabled) return drop();
  auto schedule = schedules_.parse(job.schedule, job.timezone, job.created_at);
  if (!schedule.ok()) {
    spdlog::error("scheduler: job {} has an unparsable schedule: {}", job.id,
                  schedule.error().message);
    return drop();
  }
  // One lookup for both the entry's local state and its new value: a
  // load does this for every job.
  auto [it, inserted] = jobs_.try_emplace(job.id, JobEntry{*schedule});
  JobEntry& e = it->second;
  const absl::Time local = inserted ? absl::InfinitePast() : e.last_scheduled;
  const bool pending = !inserted && e.start_pending;
  if (!inserted) e = JobEntry{*schedule};
  e.last_scheduled = std::max(local, state.last_scheduled);
  e.start_pending = pending;
  e.version = job.version;
  if (pending) return;  // requeued when its start commits
  if (auto next = next_fire_time(job, e.schedule, e.last_scheduled)) {
    queue_.upsert(job.id, *next);
  } else {
    queue_.remove(job.id);
  }
}

void Driver::drain_dirty() {
  if (dirty_all_) {
    // Too many to track one by one: every job is loaded again (what is
    // loaded stays: refresh_job keeps a job's own in-flight start).
    dirty_all_ = false;
    dirty_.clear();
    load_.jobs = true;
    load_.jobs_after.clear();
    load_.started = std::chrono::steady_clock::now();
    return;
  }
  std::unordered_set<std::string> dirty;
  dirty.swap(dirty_);
  for (const auto& id : dirty) {
    auto job = ports_.store->get_job(id);
    if (!job.ok()) {
      jobs_.erase(id);
      queue_.remove(id);
      continue;
    }
    auto state = ports_.store->get_schedule_state(id);
    if (!state.ok()) continue;
    refresh_job(model::timing_of(*job), *state);
  }
}

// ---- starting runs ----

void Driver::schedule_due(absl::Time now) {
  // Backpressure: results that cannot be committed, or too many runs on
  // their way, stop new starts.
  if (results_.size() >= options_.max_pending_results / 2 ||
      flights_.size() >= options_.max_flights) {
    return;
  }
  auto due = queue_.pop_due(now + options_.plan.lookahead, options_.max_batch);
  if (due.empty()) return;
  model::StartExecutions start;
  std::vector<model::Command> cancels;   // replace
  std::vector<model::Command> disables;  // @at
  auto pending = std::make_shared<Pending>();
  StartContext ctx;
  ctx.started_at = now;
  ctx.node_id = options_.node_id;
  ctx.next_id = [this, now] { return ports_.new_execution_id(now); };
  std::string planned;
  for (const auto& entry : due) {
    auto it = jobs_.find(entry.job_id);
    if (it == jobs_.end() || it->second.start_pending) continue;
    auto job = ports_.store->get_job(entry.job_id);
    if (!job.ok()) {
      jobs_.erase(it);
      continue;
    }
    auto state = ports_.store->get_schedule_state(entry.job_id);
    if (!state.ok()) continue;
    store::ScheduleState s = *state;
    s.last_scheduled = std::max(s.last_scheduled, it->second.last_scheduled);
    // Lookahead (DESIGN "precision"): the start is committed up to
    // `lookahead` before the fire time and the run waits here until then,
    // so the commit is off the run's critical path. The overlap rule of a
    // job whose earlier run is still active would be applied against that
    // run, which may well end before the fire time: such a job is queued
    // again to be decided at its fire time, exactly as without a lookahead.
    PlanOptions opts = options_.plan;
    if (it->second.at_fire_time) {
      opts.lookahead = absl::ZeroDuration();
    } else if (job->concurrency != model::Concurrency::kAllow) {
      if (entry.fire_time > now && (!s.running.empty() || !s.waiting.empty())) {
        it->second.at_fire_time = true;
        queue_.upsert(entry.job_id, entry.fire_time + opts.lookahead);
        continue;
      }
      // This run only (also when popped late), never the one after it:
      // that one is decided against this one's outcome.
      opts.lookahead = std::clamp(entry.fire_time - now, absl::ZeroDuration(), opts.lookahead);
    }
    it->second.at_fire_time = false;
    Plan plan = plan_job(*job, it->second.schedule, s, now, opts);
    if (plan.missed > 0) missed_.with().inc(static_cast<double>(plan.missed));
    if (plan.empty()) {
      if (auto next = next_fire_time(*job, it->second.schedule, s.last_scheduled)) {
        queue_.upsert(entry.job_id, *next);
      }
      continue;
    }
    model::StartExecutions cmd = to_command(plan, *job, ctx);
    for (auto& e : cmd.executions) {
      planned += str_cat(" ", e.job_id, "#", e.id, "@", when(e.scheduled_time),
                         e.trigger == model::Trigger::kCatchup ? "(catchup)" : "");
      pending->execution_ids.push_back(e.id);
      start.executions.push_back(std::move(e));
    }
    if (plan.missed > 0) planned += str_cat(" ", job->id, ":missed", plan.missed);
    for (auto& a : cmd.schedule) start.schedule.push_back(std::move(a));
    if (!plan.cancel.empty()) {
      cancels.emplace_back(cancel_command(job->id, plan.cancel, now,
                                          "replaced by a newer run (concurrency: replace)"));
    }
    if (plan.disable_job) {
      model::Job disabled = *job;
      disabled.enabled = false;
      disabled.version = job->version + 1;
      disabled.updated_at = now;
      disables.emplace_back(model::PutJob{std::move(disabled), job->version});
    }
    if (plan.last_scheduled) it->second.last_scheduled = *plan.last_scheduled;
    it->second.start_pending = true;
    pending->job_ids.push_back(entry.job_id);
    pending->jobs.emplace(job->id, std::move(*job));
  }
  if (pending->job_ids.empty()) return;
  trace(str_cat("propose start:", planned));
  // Cancels first: a replace run must not count the run it replaces.
  std::vector<model::Command> commands = std::move(cancels);
  pending->start_index = commands.size();
  commands.emplace_back(std::move(start));
  for (auto& c : disables) commands.push_back(std::move(c));
  const size_t start_index = pending->start_index;
  propose_start(model::CommandBatch{std::move(commands)}, start_index, std::move(pending));
}

void Driver::start_manual(TriggerRequest request, StartedCallback started, absl::Time now) {
  auto job = ports_.store->get_job(request.job_id);
  if (!job.ok()) return started(std::move(job).error());
  auto state = ports_.store->get_schedule_state(job->id);
  if (!state.ok()) return started(std::move(state).error());
  ManualDecision decision = decide_manual(*job, *state, request.force);
  StartContext ctx;
  ctx.started_at = now;
  ctx.node_id = options_.node_id;
  ctx.next_id = [this, now] { return ports_.new_execution_id(now); };
  model::Execution exec = manual_execution(*job, ctx);
  exec.trigger = request.trigger;
  exec.replay_of = request.replay_of;
  std::vector<model::Command> commands;
  if (!decision.cancel.empty()) {
    commands.emplace_back(cancel_command(job->id, decision.cancel, now,
                                         "replaced by a newer run (concurrency: replace)"));
  }
  auto pending = std::make_shared<Pending>();
  pending->start_index = commands.size();
  model::StartExecutions start{{exec}, {}};
  start.force = request.force;
  commands.emplace_back(std::move(start));
  pending->execution_ids.push_back(exec.id);
  pending->manual = exec;
  pending->on_started = std::move(started);
  pending->jobs.emplace(job->id, std::move(*job));
  trace(str_cat("propose ", model::to_string(exec.trigger), " start ", exec.job_id, "#", exec.id));
  const size_t start_index = pending->start_index;
  propose_start(model::CommandBatch{std::move(commands)}, start_index, std::move(pending));
}

void Driver::start_cancel(std::string job_id, std::string execution_id, StartedCallback done,
                          absl::Time now) {
  auto exec = ports_.store->get_execution(job_id, execution_id);
  if (!exec.ok()) return done(std::move(exec).error());
  if (model::is_terminal(exec->status)) {
    return done(Error{ErrorCode::kConflict,
                      str_cat("execution ", execution_id, " already ended (",
                              model::to_string(exec->status), ")"),
                      {}});
  }
  model::FinishExecutions cmd =
      cancel_command(job_id, {execution_id}, now, "cancelled through the API");
  const store::Store* store = ports_.store;
  Post post = ports_.post;
  ports_.log->propose(
      model::CommandBatch{{std::move(cmd)}},
      [post, store, done = std::move(done), job_id = std::move(job_id),
       execution_id = std::move(execution_id)](Result<store::ApplyOutcome> out) mutable {
        // The driver stops the attempt when it sees the entry applied
        // (note_applied); the caller is answered from the driver's thread.
        post([out = std::move(out), store, done = std::move(done), job_id,
              execution_id](Driver&) mutable {
          if (!out.ok()) return done(std::move(out).error());
          if (out->results.empty()) return done(Error::internal("cancel entry has no result"));
          const auto& res = out->results[0];
          if (!res.ok()) return done(res.error());
          if (const auto* items = std::get_if<store::ItemResults>(&*res);
              items != nullptr && !items->items.empty() && !items->items[0].ok()) {
            return done(items->items[0].error());
          }
          done(store->get_execution(job_id, execution_id));
        });
      });
}

model::FinishExecutions Driver::cancel_command(const std::string& job_id,
                                               const std::vector<std::string>& ids, absl::Time now,
                                               const std::string& why) const {
  model::FinishExecutions cancel;
  for (const auto& id : ids) {
    model::ExecutionResult r;
    r.job_id = job_id;
    r.execution_id = id;
    r.status = model::ExecutionStatus::kCancelled;
    r.error = why;
    r.node_id = options_.node_id;
    r.completed_at = now;
    cancel.results.push_back(std::move(r));
  }
  return cancel;
}

void Driver::propose_start(model::CommandBatch batch, size_t start_index,
                           std::shared_ptr<Pending> pending) {
  pending->epoch = epoch_;
  pending->start_index = start_index;
  for (const auto& id : pending->execution_ids) proposed_.insert(id);
  Post post = ports_.post;
  ports_.log->propose(std::move(batch),
                      [post, pending](Result<store::ApplyOutcome> outcome) mutable {
                        post([pending, outcome = std::move(outcome)](Driver& d) mutable {
                          d.on_start_committed(*pending, std::move(outcome));
                        });
                      });
}

void Driver::on_start_committed(const Pending& pending, Result<store::ApplyOutcome> outcome) {
  if (pending.epoch != epoch_) {
    if (pending.on_started) {
      pending.on_started(Error{ErrorCode::kNoLeader, "leadership changed", {}});
    }
    return;
  }
  for (const auto& id : pending.execution_ids) proposed_.erase(id);
  // What ended early and was not started by this entry is no concern now.
  auto clear_ended_early = absl::MakeCleanup([&] {
    for (const auto& id : pending.execution_ids) ended_early_.erase(id);
  });
  for (const auto& id : pending.job_ids) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    it->second.start_pending = false;
    // Not committed (or unknown): forget the local advance; the store is
    // the truth and the job's due times are planned again.
    if (!outcome.ok()) it->second.last_scheduled = absl::InfinitePast();
    mark_dirty(id);
  }
  if (!outcome.ok()) {
    spdlog::warn("scheduler: start entry not committed: {}", outcome.error().message);
    trace(str_cat("start entry not committed: ", outcome.error().message));
    if (pending.on_started) pending.on_started(outcome.error());
    return;
  }
  if (pending.start_index >= outcome->results.size()) return;
  const auto& effect = outcome->results[pending.start_index];
  if (!effect.ok()) {
    spdlog::warn("scheduler: start command refused: {}", effect.error().message);
    if (pending.on_started) pending.on_started(effect.error());
    return;
  }
  const auto* items = std::get_if<store::ItemResults>(&*effect);
  if (items == nullptr) return;
  if (pending.on_started) {
    if (!items->items.empty() && !items->items[0].ok()) {
      Error e = items->items[0].error();
      if (e.code == ErrorCode::kConflict) {
        // The overlap rule refused it at apply: recorded skipped.
        e.message = str_cat(e.message, "; the run was recorded as skipped (execution ",
                            pending.manual.id, "); add ?force=true to run anyway");
      }
      pending.on_started(std::move(e));
    } else {
      model::Execution e = pending.manual;
      e.status = model::ExecutionStatus::kPending;  // waits for an earlier run
      for (const auto& s : items->started) {
        if (s.id == e.id) e = s;
      }
      pending.on_started(std::move(e));
    }
  }
  std::string started;
  for (const model::Execution& e : items->started) {
    auto job = pending.jobs.find(e.job_id);
    if (job == pending.jobs.end() || ended_early_.count(e.id) != 0) continue;
    started += str_cat(" ", e.job_id, "#", e.id);
    fly(e, job->second, std::max(now_, earliest_send(e, job->second)));
  }
  if (!started.empty()) trace(str_cat("committed, running:", started));
}

// ---- flights ----

void Driver::fly(model::Execution exec, model::Job job, absl::Time send_at) {
  const std::string id = exec.id;
  auto [it, inserted] = flights_.try_emplace(id);
  if (!inserted) return;  // already ours
  Flight& f = it->second;
  f.exec = std::move(exec);
  f.job = std::move(job);
  f.phase = Flight::Phase::kWaiting;
  f.send_at = send_at;
  arm(id, send_at);
}

void Driver::arm(const std::string& execution_id, absl::Time at) {
  flights_.at(execution_id).armed_at = at;
  timers_.push(Timer{at, timer_seq_++, execution_id});
}

void Driver::end_flight(const std::string& execution_id) { flights_.erase(execution_id); }

// Sends the runs whose time has come, when this node holds the lease; first
// commits the attempt number of those that need it (re-dispatches, retries).
void Driver::send_due(absl::Time now) {
  waiting_for_lease_ = false;
  std::vector<std::string> to_record;
  std::vector<Timer> held;  // due, waiting for the lease
  while (!timers_.empty() && timers_.top().at <= now) {
    Timer t = timers_.top();
    timers_.pop();
    auto it = flights_.find(t.execution_id);
    // Stale: the flight moved on (or ended) since this timer was armed.
    if (it == flights_.end() || it->second.phase != Flight::Phase::kWaiting ||
        it->second.armed_at != t.at) {
      continue;
    }
    Flight& f = it->second;
    if (f.to_record > 0) {
      f.phase = Flight::Phase::kRecording;
      to_record.push_back(t.execution_id);
      continue;
    }
    // A paused or cut-off leader sends nothing (SPEC §3): without a lease
    // another node may lead already.
    if (!lease_valid()) {
      waiting_for_lease_ = true;
      held.push_back(std::move(t));
      continue;
    }
    send(t.execution_id, f);
  }
  for (Timer& t : held) timers_.push(std::move(t));
  if (!to_record.empty()) record(to_record);
}

// One attempt, with the job as it is now: a job deleted since the start was
// committed sends nothing; a scheduled run of one disabled before its first
// attempt ends cancelled; an updated one sends its new target.
void Driver::send(const std::string& execution_id, Flight& f) {
  auto je = jobs_.find(f.exec.job_id);
  if (je == jobs_.end() || je->second.version != f.job.version) {
    auto job = ports_.store->get_job(f.exec.job_id);
    if (!job.ok()) {  // deleted: its executions went with it
      end_flight(execution_id);
      return;
    }
    // A scheduled run of a job paused before the run's first attempt is not
    // sent; manual runs and replays work on paused jobs.
    const bool scheduled =
        f.exec.trigger == model::Trigger::kSchedule || f.exec.trigger == model::Trigger::kCatchup;
    if (scheduled && !job->enabled && !f.sent && f.exec.attempts == 0 &&
        !disabled_by_its_run(*job)) {
      push_result(f.exec, model::ExecutionStatus::kCancelled, f.exec.attempts, 0, "",
                  "the job was disabled before the run's fire time");
      return;
    }
    f.job = std::move(*job);
  }
  f.phase = Flight::Phase::kSending;
  const int attempt = f.exec.attempts + 1;
  trace(str_cat("send ", f.exec.job_id, "#", execution_id, " t=", when(f.exec.scheduled_time),
                " attempt ", attempt));
  Post post = ports_.post;
  ports_.targets->send(TargetPort::Attempt{f.exec, f.job, attempt, lease_until_},
                       [post, execution_id](dispatch::AttemptOutcome o) {
                         post([execution_id, o = std::move(o)](Driver& d) mutable {
                           d.on_attempt(execution_id, std::move(o));
                         });
                       });
}

void Driver::on_attempt(const std::string& execution_id, dispatch::AttemptOutcome o) {
  auto it = flights_.find(execution_id);
  if (it == flights_.end() || it->second.phase != Flight::Phase::kSending) return;
  Flight& f = it->second;
  if (!active_ || o.kind == dispatch::AttemptKind::kShutdown) {
    flights_.erase(it);  // the next leader re-dispatches it
    return;
  }
  switch (o.kind) {
    case dispatch::AttemptKind::kNotSent:
      // The lease ran out before it went out: nothing reached the target;
      // sent again under the same number once the lease is back.
      f.phase = Flight::Phase::kWaiting;
      f.send_at = now_;
      arm(execution_id, now_);
      return;
    case dispatch::AttemptKind::kCancelled:
      flights_.erase(it);  // the cancel committed the end
      return;
    default:
      break;
  }
  if (dispatch::feeds_breaker(o)) {
    if (!f.sent && (f.exec.trigger == model::Trigger::kSchedule ||
                    f.exec.trigger == model::Trigger::kCatchup)) {
      lag_.with().observe(absl::ToDoubleSeconds(o.started_at - f.exec.scheduled_time));
    }
    if (o.attempt > 1) retries_.with().inc();
  }
  f.sent = true;
  dispatch::RetryDecision d =
      dispatch::decide_retry(f.job.retry_policy, o, o.attempt, unit_random());
  trace(str_cat("outcome ", f.exec.job_id, "#", execution_id, " attempt ", o.attempt, ": ",
                dispatch::to_string(o.kind), o.status_code != 0 ? str_cat(" ", o.status_code) : "",
                d.retry ? str_cat(", retry in ", absl::FormatDuration(d.delay)) : ""));
  if (d.retry) {
    // The attempt just made is committed before the next one is sent.
    f.phase = Flight::Phase::kWaiting;
    // Above what this attempt was and what any leader may have sent (an
    // adopted attempt can be older than a re-dispatch another made).
    f.to_record = std::max(f.exec.attempts + 1, o.attempt);
    f.redispatch = false;
    f.send_at = now_ + d.delay;
    arm(execution_id, now_);
    return;
  }
  push_result(f.exec,
              o.success() ? model::ExecutionStatus::kSuccess : model::ExecutionStatus::kFailed,
              o.attempt, o.status_code, std::move(o.response), std::move(o.error));
}

// Commits the attempt numbers of these flights (all kRecording) in one
// entry: re-dispatches and retries as two commands.
void Driver::record(const std::vector<std::string>& execution_ids) {
  for (size_t from = 0; from < execution_ids.size(); from += options_.max_batch) {
    const size_t to = std::min(execution_ids.size(), from + options_.max_batch);
    model::RedispatchExecutions redispatch;
    model::RedispatchExecutions retry;
    redispatch.node_id = retry.node_id = options_.node_id;
    retry.retry = true;
    std::vector<std::string> ids;
    std::string listed;
    for (size_t i = from; i < to; ++i) {
      const Flight& f = flights_.at(execution_ids[i]);
      model::RedispatchExecutions& cmd = f.redispatch ? redispatch : retry;
      cmd.job_ids.push_back(f.exec.job_id);
      cmd.execution_ids.push_back(execution_ids[i]);
      cmd.attempts.push_back(f.to_record);
      // A retry's due time survives this leader: the next one waits it out.
      if (!f.redispatch) cmd.next_attempt_at.push_back(f.send_at);
      listed += str_cat(" ", f.exec.job_id, "#", execution_ids[i], "(attempt ", f.to_record + 1,
                        f.redispatch ? ", re-dispatch" : "", ")");
    }
    // The entry's commands in order: re-dispatches, then retries.
    for (const auto& id : redispatch.execution_ids) ids.push_back(id);
    for (const auto& id : retry.execution_ids) ids.push_back(id);
    model::CommandBatch batch;
    if (!redispatch.execution_ids.empty()) batch.commands.emplace_back(std::move(redispatch));
    if (!retry.execution_ids.empty()) batch.commands.emplace_back(std::move(retry));
    trace(str_cat("record attempts:", listed));
    for (const auto& id : ids) proposed_.insert(id);
    Post post = ports_.post;
    const uint64_t epoch = epoch_;
    ports_.log->propose(std::move(batch), [post, epoch, ids = std::move(ids)](
                                              Result<store::ApplyOutcome> outcome) mutable {
      post([epoch, ids = std::move(ids), outcome = std::move(outcome)](Driver& d) {
        d.on_recorded(epoch, ids, outcome);
      });
    });
  }
}

void Driver::on_recorded(uint64_t epoch, const std::vector<std::string>& execution_ids,
                         const Result<store::ApplyOutcome>& outcome) {
  if (epoch != epoch_) return;  // deactivate() dropped these flights
  // The item of each id: the commands are re-dispatches then retries, ids
  // in that order.
  std::vector<Status> items;
  if (outcome.ok()) {
    for (size_t c = 0; c < outcome->results.size(); ++c) {
      const store::ItemResults* r = items_of(outcome, c);
      if (r == nullptr) {
        items.clear();
        break;
      }
      items.insert(items.end(), r->items.begin(), r->items.end());
    }
  }
  for (size_t i = 0; i < execution_ids.size(); ++i) {
    const std::string& id = execution_ids[i];
    proposed_.erase(id);
    auto it = flights_.find(id);
    if (it == flights_.end() || it->second.phase != Flight::Phase::kRecording) continue;
    Flight& f = it->second;
    if (!outcome.ok()) {
      // Not committed: tried again shortly while this leadership lasts.
      f.phase = Flight::Phase::kWaiting;
      f.send_at = now_ + kProposalRetry;
      arm(id, f.send_at);
      continue;
    }
    if (items.size() != execution_ids.size()) {
      spdlog::error("scheduler: the attempt record of {} was refused as a whole", id);
      flights_.erase(it);
      continue;
    }
    if (!items[i].ok()) {
      // Ended meanwhile (cancelled, replaced) or gone with its job.
      flights_.erase(it);
      continue;
    }
    f.exec.attempts = f.to_record;
    f.to_record = 0;
    f.phase = Flight::Phase::kWaiting;
    f.send_at = std::max(f.send_at, now_);
    arm(id, f.send_at);
  }
}

// ---- results ----

void Driver::push_result(const model::Execution& exec, model::ExecutionStatus status, int attempts,
                         int status_code, std::string response, std::string error) {
  executions_total_.with({std::string(model::to_string(status))}).inc();
  if (exec.started_at != absl::InfinitePast()) {
    duration_.with().observe(absl::ToDoubleSeconds(now_ - exec.started_at));
  }
  if (auto f = flights_.find(exec.id); f != flights_.end()) {
    f->second.phase = Flight::Phase::kFinishing;
  }
  model::ExecutionResult r;
  r.job_id = exec.job_id;
  r.execution_id = exec.id;
  r.status = status;
  r.attempts = attempts;
  r.status_code = status_code;
  r.response = std::move(response);
  r.error = std::move(error);
  r.node_id = options_.node_id;
  r.completed_at = now_;
  if (results_.size() >= options_.max_pending_results) {
    spdlog::warn(
        "scheduler: result queue full; dropping the result of {} (re-dispatched by "
        "the next leader)",
        results_.front().execution_id);
    end_flight(results_.front().execution_id);
    results_.pop_front();
  }
  if (results_.empty()) oldest_result_ = now_;
  results_.push_back(std::move(r));
}

void Driver::flush_results(absl::Time now) {
  if (results_.empty() || now < retry_results_after_) return;
  if (results_.size() < options_.max_batch && now - oldest_result_ < options_.finish_batch_window) {
    return;
  }
  std::deque<model::ExecutionResult> results;
  results.swap(results_);
  while (!results.empty()) {
    model::FinishExecutions fin;
    while (!results.empty() && fin.results.size() < options_.max_batch) {
      fin.results.push_back(std::move(results.front()));
      results.pop_front();
    }
    std::vector<model::ExecutionResult> copy = fin.results;
    Post post = ports_.post;
    const uint64_t epoch = epoch_;
    ports_.log->propose(
        model::CommandBatch{{std::move(fin)}},
        [post, epoch, copy = std::move(copy)](Result<store::ApplyOutcome> r) mutable {
          Status st = r.ok() ? ok_status() : Status(std::move(r).error());
          post([epoch, copy = std::move(copy), st = std::move(st)](Driver& d) mutable {
            d.on_results_committed(epoch, std::move(copy), st);
          });
        });
  }
}

void Driver::on_results_committed(uint64_t epoch, std::vector<model::ExecutionResult> results,
                                  const Status& st) {
  if (epoch != epoch_) return;  // the next leader re-dispatches them
  if (st.ok()) {
    for (const auto& r : results) end_flight(r.execution_id);
    return;
  }
  // Not committed (e.g. too many proposals pending): again while this
  // leadership lasts.
  spdlog::warn("scheduler: {} result(s) not committed ({}); retrying", results.size(),
               st.error().message);
  if (results_.empty()) oldest_result_ = now_;
  retry_results_after_ = now_ + kProposalRetry;
  for (auto& r : results) results_.push_back(std::move(r));
}

// ---- history retention (SPEC §3) ----

// Jobs whose history grew are pruned at most once a second; every
// retention_interval all known jobs are checked for max_age, a bounded
// slice per pass.
void Driver::enforce_retention(absl::Time now) {
  std::vector<std::string> ids;
  if (now - last_retention_ >= absl::Seconds(1)) {
    last_retention_ = now;
    ids.assign(retention_due_.begin(), retention_due_.end());
    retention_due_.clear();
  }
  if (now - last_full_retention_ >= options_.retention_interval) {
    last_full_retention_ = now;
    sweep_order_.clear();
    for (const auto& [id, entry] : jobs_) sweep_order_.push_back(id);
    sweep_pos_ = 0;
  }
  for (size_t n = 0; n < kRetentionSweepPerPass && sweep_pos_ < sweep_order_.size(); ++n) {
    ids.push_back(sweep_order_[sweep_pos_++]);
  }
  if (ids.empty()) return;
  model::CommandBatch batch;
  for (const auto& id : ids) {
    auto prune = ports_.store->executions_to_prune(
        id, options_.history_max_per_job, now - options_.history_max_age, options_.max_batch);
    if (!prune.ok() || prune->empty()) continue;
    batch.commands.emplace_back(model::PruneExecutions{id, std::move(prune).value()});
    if (batch.commands.size() >= kRetentionCommandsPerEntry) {
      ports_.log->propose(std::move(batch), [](Result<store::ApplyOutcome>) {});
      batch = {};
    }
  }
  if (!batch.commands.empty()) {
    ports_.log->propose(std::move(batch), [](Result<store::ApplyOutcome>) {});
  }
}

}  // namespace chronos::sched
