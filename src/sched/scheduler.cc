#include "sched/scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <queue>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "base/ids.h"
#include "base/strings.h"
#include "base/thread_name.h"
#include "sched/due_queue.h"
#include "spdlog/spdlog.h"

namespace chronos::sched {
namespace {

// Bound of the dirty-job set handed from the Raft loop; past it the
// scheduler rebuilds from the store instead of tracking single jobs.
constexpr size_t kMaxDirtyJobs = 100'000;

// A started execution waiting for its StartExecutions entry to commit.
struct PendingStart {
  model::Execution execution;
  model::Job job;
  size_t item = 0;  // its position among the command's items (ItemResults)
};

// A proposal's outcome handed from the Raft loop thread to the scheduler.
struct Committed {
  uint64_t epoch = 0;
  Result<store::ApplyOutcome> outcome = Error::internal("unset");
  std::vector<PendingStart> starts;  // executions to dispatch once committed
  std::vector<std::string> job_ids;  // jobs whose scheduled start was in flight
  std::vector<std::string> cancels;  // executions the entry cancels (replace)
  // A manual start: its execution (running or skipped) and who waits for it.
  std::optional<model::Execution> manual;
  Scheduler::StartedCallback on_started;
};

// A caller of wait_for_result.
struct Waiter {
  std::string job_id;
  absl::Time deadline;
  Scheduler::StartedCallback done;
  uint64_t seq = 0;  // identifies it for a registration-time check
};

// A trigger or cancel request queued for the scheduler thread.
struct Request {
  enum class Kind : uint8_t { kTrigger, kCancel } kind = Kind::kTrigger;
  Scheduler::TriggerRequest trigger;
  std::string job_id;
  std::string execution_id;
  Scheduler::StartedCallback done;
};

class SchedulerImpl final : public Scheduler {
 public:
  SchedulerImpl(SchedulerOptions options, store::Store* store, raft::RaftNode* raft,
                dispatch::HttpDispatcher* dispatcher, const Clock* clock,
                metrics::Registry* registry)
      : options_(std::move(options)),
        store_(store),
        raft_(raft),
        dispatcher_(dispatcher),
        clock_(clock),
        executions_total_(registry->counter("chronos_executions_total",
                                            "Executions finished, by status.", {"status"})),
        duration_(registry->histogram("chronos_execution_duration_seconds",
                                      "Execution duration from start to result.",
                                      metrics::latency_buckets_seconds())),
        lag_(registry->histogram(
            "chronos_schedule_lag_seconds",
            "Delay from an execution's scheduled time to its first request being sent.",
            metrics::latency_buckets_seconds())),
        missed_(registry->counter("chronos_missed_runs_total",
                                  "Scheduled times skipped by the missed-run policy.")),
        retries_(registry->counter("chronos_retries_total", "Attempts after the first.")) {}

  ~SchedulerImpl() override { stop(); }

  void start() {
    thread_ = std::thread([this] {
      name_this_thread("scheduler");
      run();
    });
  }

  void on_applied(const model::CommandBatch& batch) override {
    std::vector<std::pair<std::string, std::string>> finished;
    for (const auto& cmd : batch.commands) {
      if (const auto* fin = std::get_if<model::FinishExecutions>(&cmd)) {
        for (const auto& r : fin->results) finished.emplace_back(r.job_id, r.execution_id);
      }
    }
    mark_dirty(batch);
    // Every committed end wakes its waiters: results, cancels, replaces,
    // whichever node proposed them.
    if (!finished.empty()) notify_waiters(finished);
  }

  void mark_dirty(const model::CommandBatch& batch) {
    std::lock_guard lock(mu_);
    auto mark = [this](const std::string& id) {
      if (dirty_all_) return;
      if (dirty_.size() >= kMaxDirtyJobs) {
        dirty_all_ = true;
        dirty_.clear();
        return;
      }
      dirty_.insert(id);
    };
    for (const auto& cmd : batch.commands) {
      if (const auto* put = std::get_if<model::PutJob>(&cmd)) {
        mark(put->job.id);
      } else if (const auto* del = std::get_if<model::DeleteJob>(&cmd)) {
        mark(del->job_id);
      } else if (const auto* fin = std::get_if<model::FinishExecutions>(&cmd)) {
        // A finished run frees a forbid/replace job's concurrency slot, and
        // may push the job's history over its retention bound.
        for (const auto& r : fin->results) {
          mark(r.job_id);
          if (retention_due_.size() < kMaxDirtyJobs) retention_due_.insert(r.job_id);
        }
      }
    }
    cv_.notify_one();
  }

  void trigger(TriggerRequest request, StartedCallback started) override {
    Request r;
    r.kind = Request::Kind::kTrigger;
    r.trigger = std::move(request);
    r.done = std::move(started);
    enqueue(std::move(r));
  }

  void cancel(std::string job_id, std::string execution_id, StartedCallback done) override {
    Request r;
    r.kind = Request::Kind::kCancel;
    r.job_id = std::move(job_id);
    r.execution_id = std::move(execution_id);
    r.done = std::move(done);
    enqueue(std::move(r));
  }

  void wait_for_result(std::string job_id, std::string execution_id, absl::Duration timeout,
                       StartedCallback done) override {
    uint64_t seq = 0;
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && waiter_count_ < options_.max_waiters) {
        ++waiter_count_;
        seq = ++waiter_seq_;
        waiters_[execution_id].push_back(
            Waiter{job_id, clock_->now() + timeout, std::move(done), seq});
        cv_.notify_one();
      }
    }
    if (seq == 0) {
      done(Error{ErrorCode::kUnavailable, "too many waiters; poll the execution instead", {}});
      return;
    }
    // The result may have committed before the waiter was registered: check
    // once now. Whoever removes the waiter (this check or a commit) calls it.
    auto exec = store_->get_execution(job_id, execution_id);
    if (!exec.ok() || !model::is_terminal(exec->status)) return;
    StartedCallback ready;
    {
      std::lock_guard lock(mu_);
      auto it = waiters_.find(execution_id);
      if (it == waiters_.end()) return;
      auto& ws = it->second;
      for (auto w = ws.begin(); w != ws.end(); ++w) {
        if (w->seq == seq) {
          ready = std::move(w->done);
          ws.erase(w);
          --waiter_count_;
          break;
        }
      }
      if (ws.empty()) waiters_.erase(it);
    }
    if (ready) ready(std::move(exec));
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    fail_waiters_and_requests("scheduler stopped");
  }

 private:
  struct JobEntry {
    cron::Schedule schedule;
    // Latest scheduled time consumed as this leader knows it: ahead of the
    // store while a StartExecutions entry is in flight.
    absl::Time last_scheduled = absl::InfinitePast();
    bool start_pending = false;  // a start entry for it is not committed yet
    // Queued at fire time + lookahead, so popped at its fire time and planned
    // then, not ahead (see schedule_due).
    bool at_fire_time = false;
    int64_t version = 0;  // of the job as last read from the store
  };

  // ---- the thread ----

  void run() {
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
      }
      raft::RaftStatus st = raft_->status();
      bool leading = st.role == raft::Role::kLeader && st.caught_up;
      if (!leading) {
        if (active_) deactivate("lost leadership");
        fail_waiters_and_requests("this node is not the leader");
        // A follower keeps no queue, and activate() rebuilds it from the
        // store. Marks left pending would make wait_for() return at once,
        // turning this loop into a busy spin on every follower.
        discard_dirty();
        fail_committed("this node is not the leader");
        wait_for(absl::Milliseconds(20));
        continue;
      }
      if (!active_ || st.term != term_) activate(st.term);
      drain_dirty();
      drain_committed();
      absl::Time now = clock_->now();
      drain_requests(now);
      fire_held(now);
      schedule_due(now);
      flush_results(now, /*force=*/false);
      expire_waiters(now);
      enforce_retention(now);
      wait_for(next_wake(clock_->now()));
    }
    if (active_) deactivate("stopping");
  }

  // Outcomes of proposals that come back after leadership is lost (or to a
  // follower): nothing to dispatch; a manual trigger's caller is told. Left
  // queued they would also make wait_for() return at once, forever.
  void fail_committed(const char* why) {
    std::deque<Committed> orphans;
    {
      std::lock_guard lock(mu_);
      orphans.swap(committed_);
    }
    for (auto& c : orphans) {
      if (c.on_started) c.on_started(Error{ErrorCode::kNoLeader, why, {}});
    }
  }

  void discard_dirty() {
    std::lock_guard lock(mu_);
    dirty_.clear();
    dirty_all_ = false;
  }

  void wait_for(absl::Duration d) {
    std::unique_lock lock(mu_);
    if (stopping_ || !dirty_.empty() || dirty_all_ || !committed_.empty() || !requests_.empty()) {
      return;
    }
    cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(d, absl::ZeroDuration())));
  }

  absl::Duration next_wake(absl::Time now) {
    // Leadership is polled at least every 20 ms so a lost term stops
    // scheduling promptly even with nothing due.
    absl::Duration wake = absl::Milliseconds(20);
    // Jobs are popped `lookahead` before their queue time (schedule_due).
    if (auto earliest = queue_.earliest()) {
      wake = std::min(wake, *earliest - options_.plan.lookahead - now);
    }
    if (!held_.empty()) wake = std::min(wake, held_.top().fire_time - now);
    std::lock_guard lock(mu_);
    if (!results_.empty()) {
      absl::Time flush_at =
          std::max(oldest_result_ + options_.finish_batch_window, retry_results_after_);
      wake = std::min(wake, flush_at - now);
    }
    return wake;
  }

  // ---- trigger, cancel, waiters ----

  void enqueue(Request r) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && requests_.size() < options_.max_requests) {
        requests_.push_back(std::move(r));
        cv_.notify_one();
        return;
      }
    }
    r.done(Error{ErrorCode::kUnavailable, "scheduler is busy or stopping; retry later", {}});
  }

  // Fails every queued request and waiter (not leader, or stopping).
  void fail_waiters_and_requests(const char* why) {
    std::deque<Request> requests;
    std::unordered_map<std::string, std::vector<Waiter>> waiters;
    {
      std::lock_guard lock(mu_);
      requests.swap(requests_);
      waiters.swap(waiters_);
      waiter_count_ = 0;
    }
    for (auto& r : requests) r.done(Error{ErrorCode::kNoLeader, why, {}});
    for (auto& [id, ws] : waiters) {
      for (auto& w : ws) w.done(Error{ErrorCode::kUnavailable, why, {}});
    }
  }

  void expire_waiters(absl::Time now) {
    std::vector<Waiter> expired;
    {
      std::lock_guard lock(mu_);
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        auto& ws = it->second;
        for (auto w = ws.begin(); w != ws.end();) {
          if (w->deadline <= now) {
            expired.push_back(std::move(*w));
            w = ws.erase(w);
            --waiter_count_;
          } else {
            ++w;
          }
        }
        it = ws.empty() ? waiters_.erase(it) : std::next(it);
      }
    }
    for (auto& w : expired) {
      w.done(Error{ErrorCode::kUnavailable, "the execution has not finished yet", {}});
    }
  }

  // Calls the waiters of executions whose results just committed (Raft loop
  // thread, from a FinishExecutions completion).
  void notify_waiters(const std::vector<std::pair<std::string, std::string>>& finished) {
    std::vector<std::pair<std::string, Waiter>> ready;
    {
      std::lock_guard lock(mu_);
      for (const auto& [job_id, exec_id] : finished) {
        auto it = waiters_.find(exec_id);
        if (it == waiters_.end()) continue;
        for (auto& w : it->second) ready.emplace_back(exec_id, std::move(w));
        waiter_count_ -= it->second.size();
        waiters_.erase(it);
      }
    }
    for (auto& [exec_id, w] : ready) w.done(store_->get_execution(w.job_id, exec_id));
  }

  void drain_requests(absl::Time now) {
    std::deque<Request> requests;
    {
      std::lock_guard lock(mu_);
      requests.swap(requests_);
    }
    for (auto& r : requests) {
      if (r.kind == Request::Kind::kCancel) {
        start_cancel(std::move(r), now);
      } else {
        start_manual(std::move(r), now);
      }
    }
  }

  void start_manual(Request r, absl::Time now) {
    auto job = store_->get_job(r.trigger.job_id);
    if (!job.ok()) return r.done(std::move(job).error());
    auto state = store_->get_schedule_state(job->id);
    if (!state.ok()) return r.done(std::move(state).error());
    ManualDecision decision = decide_manual(*job, *state, r.trigger.force);
    StartContext ctx;
    ctx.started_at = now;
    ctx.node_id = options_.node_id;
    ctx.next_id = [now] { return new_uuid_v7(now); };
    model::Execution exec = manual_execution(decision, *job, ctx);
    exec.trigger = r.trigger.trigger;
    exec.replay_of = r.trigger.replay_of;
    std::vector<model::Command> commands;
    Committed c;
    if (!decision.cancel.empty()) {
      commands.emplace_back(cancel_command(job->id, decision.cancel, now));
      c.cancels = decision.cancel;
    }
    size_t start_index = commands.size();
    model::StartExecutions start{{exec}, {}};
    start.force = r.trigger.force;
    commands.emplace_back(std::move(start));
    if (exec.status == model::ExecutionStatus::kRunning) c.starts.push_back({exec, *job, 0});
    c.manual = exec;
    c.on_started = std::move(r.done);
    propose(model::CommandBatch{std::move(commands)}, start_index, std::move(c));
  }

  void start_cancel(Request r, absl::Time now) {
    auto exec = store_->get_execution(r.job_id, r.execution_id);
    if (!exec.ok()) return r.done(std::move(exec).error());
    if (model::is_terminal(exec->status)) {
      return r.done(Error{ErrorCode::kConflict,
                          str_cat("execution ", r.execution_id, " already ended (",
                                  model::to_string(exec->status), ")"),
                          {}});
    }
    model::FinishExecutions cmd = cancel_command(r.job_id, {r.execution_id}, now);
    cmd.results[0].error = "cancelled through the API";
    auto done = std::move(r.done);
    std::string job_id = r.job_id;
    std::string exec_id = r.execution_id;
    raft_->propose(
        model::CommandBatch{{std::move(cmd)}},
        [this, done = std::move(done), job_id, exec_id](Result<store::ApplyOutcome> out) {
          if (!out.ok()) return done(std::move(out).error());
          if (out->results.empty()) return done(Error::internal("cancel entry has no result"));
          const auto& res = out->results[0];
          if (!res.ok()) return done(res.error());
          if (const auto* items = std::get_if<store::ItemResults>(&*res);
              items != nullptr && !items->items.empty() && !items->items[0].ok()) {
            return done(items->items[0].error());
          }
          dispatcher_->cancel(exec_id);
          done(store_->get_execution(job_id, exec_id));
        });
  }

  model::FinishExecutions cancel_command(const std::string& job_id,
                                         const std::vector<std::string>& ids, absl::Time now) {
    model::FinishExecutions cancel;
    for (const auto& id : ids) {
      model::ExecutionResult r;
      r.job_id = job_id;
      r.execution_id = id;
      r.status = model::ExecutionStatus::kCancelled;
      r.error = "replaced by a newer run (concurrency: replace)";
      r.node_id = options_.node_id;
      r.completed_at = now;
      cancel.results.push_back(std::move(r));
    }
    return cancel;
  }

  // ---- leadership ----

  void activate(uint64_t term) {
    if (active_) deactivate("new term");
    active_ = true;
    term_ = term;
    {
      std::lock_guard lock(mu_);
      ++epoch_;
    }
    discard_dirty();
    rebuild();
    redispatch_in_flight();
    spdlog::info("scheduler: active as leader of term {} with {} scheduled job(s)", term,
                 queue_.size());
  }

  void deactivate(const char* why) {
    active_ = false;
    queue_.clear();
    jobs_.clear();
    schedules_.clear();
    // Runs committed but not yet at their fire time are not sent from here:
    // the next leader re-dispatches them (at their fire time).
    held_ = {};
    fail_committed("leadership changed");
    std::lock_guard lock(mu_);
    ++epoch_;
    if (!results_.empty()) {
      spdlog::warn(
          "scheduler: dropping {} uncommitted result(s) ({}); the next leader "
          "re-dispatches them",
          results_.size(), why);
    }
    results_.clear();
    spdlog::info("scheduler: inactive ({})", why);
  }

  void rebuild() {
    queue_.clear();
    jobs_.clear();
    auto st = store_->for_each_job([this](const model::Job& job, const store::ScheduleState& s) {
      refresh_job(job, s);
      return true;
    });
    if (!st.ok()) spdlog::error("scheduler: rebuild failed: {}", st.error().message);
  }

  // Puts one job (re)into the due queue from its stored definition/state.
  void refresh_job(const model::Job& job, const store::ScheduleState& state) {
    auto it = jobs_.find(job.id);
    absl::Time local = it == jobs_.end() ? absl::InfinitePast() : it->second.last_scheduled;
    bool pending = it != jobs_.end() && it->second.start_pending;
    if (!job.enabled) {
      jobs_.erase(job.id);
      queue_.remove(job.id);
      return;
    }
    auto schedule = schedules_.parse(job.schedule, job.timezone, job.created_at);
    if (!schedule.ok()) {
      spdlog::error("scheduler: job {} has an unparsable schedule: {}", job.id,
                    schedule.error().message);
      jobs_.erase(job.id);
      queue_.remove(job.id);
      return;
    }
    JobEntry& e = jobs_.insert_or_assign(job.id, JobEntry{*schedule}).first->second;
    e.last_scheduled = std::max(local, state.last_scheduled);
    e.start_pending = pending;
    e.version = job.version;
    if (pending) return;  // requeued when its start commits
    auto next = next_fire_time(job, e.schedule, e.last_scheduled);
    if (next) {
      queue_.upsert(job.id, *next);
    } else {
      queue_.remove(job.id);
    }
  }

  void drain_dirty() {
    std::unordered_set<std::string> dirty;
    bool all = false;
    {
      std::lock_guard lock(mu_);
      dirty.swap(dirty_);
      all = dirty_all_;
      dirty_all_ = false;
    }
    if (all) {
      rebuild();
      return;
    }
    for (const auto& id : dirty) {
      auto job = store_->get_job(id);
      if (!job.ok()) {
        jobs_.erase(id);
        queue_.remove(id);
        continue;
      }
      auto state = store_->get_schedule_state(id);
      if (!state.ok()) continue;
      refresh_job(*job, *state);
    }
  }

  // ---- starting runs ----

  void schedule_due(absl::Time now) {
    {
      // Backpressure: results that cannot be committed stop new starts.
      std::lock_guard lock(mu_);
      if (results_.size() >= options_.max_pending_results / 2) return;
    }
    auto due = queue_.pop_due(now + options_.plan.lookahead, options_.max_batch);
    if (due.empty()) return;
    model::StartExecutions start;
    model::CommandBatch extra;  // @at disables, replace cancels
    std::vector<PendingStart> starts;
    std::vector<std::string> job_ids;
    std::vector<std::string> cancels;
    StartContext ctx;
    ctx.started_at = now;
    ctx.node_id = options_.node_id;
    ctx.next_id = [now] { return new_uuid_v7(now); };
    for (const auto& entry : due) {
      auto it = jobs_.find(entry.job_id);
      if (it == jobs_.end() || it->second.start_pending) continue;
      auto job = store_->get_job(entry.job_id);
      if (!job.ok()) {
        jobs_.erase(it);
        continue;
      }
      auto state = store_->get_schedule_state(entry.job_id);
      if (!state.ok()) continue;
      store::ScheduleState s = *state;
      s.last_scheduled = std::max(s.last_scheduled, it->second.last_scheduled);
      // Lookahead (DESIGN "precision"): the start is committed up to
      // `lookahead` before the fire time and the run waits in held_ until
      // then, so the commit is off the run's critical path. A
      // forbid/replace job whose earlier run is still going would be
      // decided against that run, which may well end before the fire
      // time: such a job is queued again to be decided at its fire time,
      // exactly as without a lookahead.
      PlanOptions opts = options_.plan;
      if (it->second.at_fire_time) {
        opts.lookahead = absl::ZeroDuration();
      } else if (job->concurrency != model::Concurrency::kAllow) {
        if (entry.fire_time > now && !s.running.empty()) {
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
        if (e.status == model::ExecutionStatus::kRunning) {
          starts.push_back({e, *job, start.executions.size()});
        }
        start.executions.push_back(std::move(e));
      }
      for (auto& a : cmd.schedule) start.schedule.push_back(std::move(a));
      if (!plan.cancel.empty()) {
        extra.commands.emplace_back(cancel_command(job->id, plan.cancel, now));
        cancels.insert(cancels.end(), plan.cancel.begin(), plan.cancel.end());
      }
      if (plan.disable_job) {
        model::Job disabled = *job;
        disabled.enabled = false;
        disabled.version = job->version + 1;
        disabled.updated_at = now;
        extra.commands.emplace_back(model::PutJob{std::move(disabled), job->version});
      }
      if (plan.last_scheduled) it->second.last_scheduled = *plan.last_scheduled;
      it->second.start_pending = true;
      job_ids.push_back(entry.job_id);
    }
    if (job_ids.empty()) return;
    // Cancels first: a replace run must not count the run it replaces.
    model::CommandBatch batch = std::move(extra);
    std::vector<model::Command> commands;
    for (auto& c : batch.commands) {
      if (std::holds_alternative<model::FinishExecutions>(c)) commands.push_back(std::move(c));
    }
    size_t start_index = commands.size();
    commands.emplace_back(std::move(start));
    for (auto& c : batch.commands) {
      if (std::holds_alternative<model::PutJob>(c)) commands.push_back(std::move(c));
    }
    Committed c;
    c.starts = std::move(starts);
    c.job_ids = std::move(job_ids);
    c.cancels = std::move(cancels);
    propose(model::CommandBatch{std::move(commands)}, start_index, std::move(c));
  }

  // Proposes a batch whose command `start_index` starts executions; its
  // outcome comes back to the scheduler thread as `c` (drain_committed).
  void propose(model::CommandBatch batch, size_t start_index, Committed c) {
    {
      std::lock_guard lock(mu_);
      c.epoch = epoch_;
    }
    auto shared = std::make_shared<Committed>(std::move(c));
    raft_->propose(std::move(batch), [this, shared, start_index](Result<store::ApplyOutcome> r) {
      // Raft loop thread: hand over, nothing else.
      if (r.ok() && start_index < r->results.size()) {
        // Keep only the start command's result at the front for the driver.
        auto item = std::move(r->results[start_index]);
        r->results.clear();
        r->results.push_back(std::move(item));
      }
      shared->outcome = std::move(r);
      Scheduler::StartedCallback orphan;
      {
        std::lock_guard lock(mu_);
        if (!stopping_) {
          committed_.push_back(std::move(*shared));
          cv_.notify_one();
          return;
        }
        orphan = std::move(shared->on_started);
      }
      // The scheduler thread is gone: answer a waiting trigger here.
      if (orphan) orphan(Error{ErrorCode::kUnavailable, "node is shutting down", {}});
    });
  }

  void drain_committed() {
    std::deque<Committed> committed;
    uint64_t epoch;
    {
      std::lock_guard lock(mu_);
      committed.swap(committed_);
      epoch = epoch_;
    }
    for (auto& c : committed) {
      if (c.epoch != epoch) {
        if (c.on_started) c.on_started(Error{ErrorCode::kNoLeader, "leadership changed", {}});
        continue;
      }
      for (const auto& id : c.job_ids) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) continue;
        it->second.start_pending = false;
        if (!c.outcome.ok()) {
          // Not committed (or unknown): forget the local advance; the store
          // is the truth and the job's due times are planned again.
          it->second.last_scheduled = absl::InfinitePast();
        }
        std::lock_guard lock(mu_);
        if (!dirty_all_) dirty_.insert(id);
      }
      if (!c.outcome.ok()) {
        spdlog::warn("scheduler: start entry not committed: {}", c.outcome.error().message);
        if (c.on_started) c.on_started(c.outcome.error());
        continue;
      }
      // The cancels committed: stop their attempts (a request already sent
      // is aborted; its result would be ignored anyway).
      for (const auto& id : c.cancels) dispatcher_->cancel(id);
      if (c.outcome->results.empty()) continue;
      const auto& result = c.outcome->results[0];
      if (!result.ok()) {
        spdlog::warn("scheduler: start command refused: {}", result.error().message);
        if (c.on_started) c.on_started(result.error());
        continue;
      }
      const auto* items = std::get_if<store::ItemResults>(&*result);
      if (items == nullptr) continue;
      if (c.on_started) {
        if (!items->items.empty() && !items->items[0].ok()) {
          Error e = items->items[0].error();
          if (e.code == ErrorCode::kConflict) {
            // Lost a race for the concurrency slot at apply: recorded skipped.
            e.message = str_cat(e.message, "; the run was recorded as skipped (execution ",
                                c.manual->id, "); add ?force=true to run anyway");
          }
          c.on_started(std::move(e));
          continue;
        }
        c.on_started(*c.manual);
      }
      for (auto& ps : c.starts) {
        if (ps.item >= items->items.size()) continue;
        if (!items->items[ps.item].ok()) {
          spdlog::warn("scheduler: execution {} not started: {}", ps.execution.id,
                       items->items[ps.item].error().message);
          continue;
        }
        hold_or_dispatch(std::move(ps.execution), std::move(ps.job));
      }
    }
  }

  // ---- runs committed ahead of their fire time (lookahead) ----

  // A scheduled or catch-up run waits here until its fire time (scheduled
  // time + jitter); anything else is sent now. Waiting here rather than in
  // the dispatcher lets fire_held() look at the job once more at the fire
  // time, and lets deactivate() drop runs this leader will never send.
  void hold_or_dispatch(model::Execution exec, model::Job job) {
    absl::Time fire = earliest_send(exec, job);
    if (fire <= clock_->now()) return dispatch(std::move(exec), job);
    held_.push(Held{fire, std::move(exec), std::move(job)});
  }

  // The earliest a run may be sent: a scheduled or catch-up run at its fire
  // time (scheduled time + the job's jitter), never before; anything else
  // (manual, replay) at once.
  static absl::Time earliest_send(const model::Execution& exec, const model::Job& job) {
    if (exec.trigger == model::Trigger::kSchedule || exec.trigger == model::Trigger::kCatchup) {
      return exec.scheduled_time + jitter_offset(job);
    }
    return absl::InfinitePast();
  }

  // A one-off (`@at`) job is disabled by the same entry that starts its one
  // run: that run is still sent.
  static bool disabled_by_its_run(const model::Job& job) {
    auto schedule = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
    return schedule.ok() && schedule->is_one_off();
  }

  // Sends the held runs whose fire time has come, with the job as it is
  // now: a job deleted or disabled since the start was committed sends
  // nothing (the run ends cancelled), an updated one sends its new target.
  void fire_held(absl::Time now) {
    while (!held_.empty() && held_.top().fire_time <= now) {
      Held& top = const_cast<Held&>(held_.top());
      model::Execution exec = std::move(top.exec);
      model::Job planned = std::move(top.job);
      held_.pop();
      // The usual case: the job is still scheduled here at the version the
      // run was planned with (drain_dirty ran first this turn), so no read.
      if (auto it = jobs_.find(exec.job_id);
          it != jobs_.end() && it->second.version == planned.version) {
        dispatch(std::move(exec), planned);
        continue;
      }
      auto job = store_->get_job(exec.job_id);
      if (!job.ok()) continue;  // deleted: its executions went with it
      if (!job->enabled && !disabled_by_its_run(*job)) {
        push_result(exec, model::ExecutionStatus::kCancelled, exec.attempts, 0, "",
                    "the job was disabled before the run's fire time");
        continue;
      }
      dispatch(std::move(exec), *job);
    }
  }

  // ---- dispatch and results ----

  void dispatch(model::Execution exec, const model::Job& job) {
    {
      std::lock_guard lock(mu_);
      if (!live_.insert(exec.id).second) return;  // already being dispatched here
    }
    // A cancel that committed before this dispatch: nothing to send.
    if (auto stored = store_->get_execution(exec.job_id, exec.id);
        stored.ok() && model::is_terminal(stored->status)) {
      std::lock_guard lock(mu_);
      live_.erase(exec.id);
      return;
    }
    if (!job.webhook) {
      {
        std::lock_guard lock(mu_);
        live_.erase(exec.id);
      }
      push_result(exec, model::ExecutionStatus::kFailed, exec.attempts, 0, "",
                  str_cat("target type \"", job.dispatch ? job.dispatch->type : "none",
                          "\" is not supported by this version"));
      return;
    }
    dispatch::HttpRequestSpec spec;
    spec.webhook = *job.webhook;
    spec.job_id = job.id;
    spec.job_name = job.name;
    spec.execution_id = exec.id;
    spec.scheduled_time = exec.scheduled_time;
    spec.attempt = exec.attempts + 1;
    spec.timeout = job.timeout;
    int first_attempt = spec.attempt;
    // A re-dispatched execution (attempts > 0) lost the outcome of its last
    // attempt with the old leader; it waits the backoff that attempt would
    // have earned, so a target that was failing is not hit again at once.
    absl::Duration first_delay = exec.attempts > 0
                                     ? dispatch::retry_delay(job.retry_policy, exec.attempts, 0.5)
                                     : absl::ZeroDuration();
    // Never before the fire time (scheduled time + jitter), whatever the
    // lookahead that started it or the crash that re-dispatches it.
    first_delay = std::max(first_delay, earliest_send(exec, job) - clock_->now());
    auto shared_exec = std::make_shared<model::Execution>(std::move(exec));
    dispatcher_->call_with_retries(
        std::move(spec), job.retry_policy,
        [this, shared_exec, first_attempt](dispatch::AttemptOutcome o) {
          if (!dispatch::feeds_breaker(o)) return;  // no request was sent
          if (o.attempt == first_attempt && shared_exec->trigger != model::Trigger::kManual) {
            lag_.with().observe(absl::ToDoubleSeconds(o.started_at - shared_exec->scheduled_time));
          }
          if (o.attempt > 1) retries_.with().inc();
        },
        [this, shared_exec, first_attempt](dispatch::CallResult r) {
          const auto& o = r.last;
          {
            std::lock_guard lock(mu_);
            live_.erase(shared_exec->id);
          }
          // Shutdown: the next leader re-dispatches. Cancelled: the cancel
          // already committed the execution's end.
          if (o.kind == dispatch::AttemptKind::kShutdown ||
              o.kind == dispatch::AttemptKind::kCancelled) {
            return;
          }
          push_result(
              *shared_exec,
              o.success() ? model::ExecutionStatus::kSuccess : model::ExecutionStatus::kFailed,
              first_attempt - 1 + r.attempts_made, o.status_code, o.response, o.error);
        },
        first_delay);
  }

  // Any thread (dispatcher callbacks).
  void push_result(const model::Execution& exec, model::ExecutionStatus status, int attempts,
                   int status_code, std::string response, std::string error) {
    absl::Time now = clock_->now();
    executions_total_.with({std::string(model::to_string(status))}).inc();
    if (exec.started_at != absl::InfinitePast()) {
      duration_.with().observe(absl::ToDoubleSeconds(now - exec.started_at));
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
    r.completed_at = now;
    std::lock_guard lock(mu_);
    if (results_.size() >= options_.max_pending_results) {
      spdlog::warn(
          "scheduler: result queue full; dropping the result of {} (re-dispatched "
          "by the next leader)",
          results_.front().execution_id);
      results_.pop_front();
    }
    if (results_.empty()) oldest_result_ = now;
    results_.push_back(std::move(r));
    cv_.notify_one();
  }

  void flush_results(absl::Time now, bool force) {
    std::deque<model::ExecutionResult> results;
    {
      std::lock_guard lock(mu_);
      if (results_.empty()) return;
      if (now < retry_results_after_) return;
      if (!force && results_.size() < options_.max_batch &&
          now - oldest_result_ < options_.finish_batch_window) {
        return;
      }
      results.swap(results_);
    }
    while (!results.empty()) {
      model::FinishExecutions fin;
      while (!results.empty() && fin.results.size() < options_.max_batch) {
        fin.results.push_back(std::move(results.front()));
        results.pop_front();
      }
      uint64_t epoch;
      {
        std::lock_guard lock(mu_);
        epoch = epoch_;
      }
      auto copy = std::make_shared<std::vector<model::ExecutionResult>>(fin.results);
      raft_->propose(model::CommandBatch{{std::move(fin)}},
                     [this, copy, epoch](Result<store::ApplyOutcome> r) {
                       if (r.ok()) return;
                       // Not committed (e.g. too many proposals pending): try
                       // again while this leadership lasts; a new leader
                       // re-dispatches instead.
                       spdlog::warn("scheduler: {} result(s) not committed ({}); retrying",
                                    copy->size(), r.error().message);
                       std::lock_guard lock(mu_);
                       if (epoch != epoch_ || stopping_) return;
                       if (results_.empty()) oldest_result_ = clock_->now();
                       retry_results_after_ = clock_->now() + absl::Milliseconds(100);
                       for (auto& res : *copy) results_.push_back(std::move(res));
                     });
    }
  }

  // ---- history retention (SPEC §3) ----

  // Jobs whose history grew are pruned at most once a second; every
  // retention_interval all known jobs are checked for max_age, a bounded
  // slice per pass.
  void enforce_retention(absl::Time now) {
    std::vector<std::string> ids;
    if (now - last_retention_ >= absl::Seconds(1)) {
      last_retention_ = now;
      std::lock_guard lock(mu_);
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
      auto prune = store_->executions_to_prune(id, options_.history_max_per_job,
                                               now - options_.history_max_age, options_.max_batch);
      if (!prune.ok() || prune->empty()) continue;
      batch.commands.emplace_back(model::PruneExecutions{id, std::move(prune).value()});
      if (batch.commands.size() >= kRetentionCommandsPerEntry) {
        raft_->propose(std::move(batch), [](Result<store::ApplyOutcome>) {});
        batch = {};
      }
    }
    if (!batch.commands.empty())
      raft_->propose(std::move(batch), [](Result<store::ApplyOutcome>) {});
  }

  static constexpr size_t kRetentionSweepPerPass = 200;
  static constexpr size_t kRetentionCommandsPerEntry = 64;

  // ---- re-dispatch after a leader change or restart ----

  void redispatch_in_flight() {
    std::string after;
    while (true) {
      auto page = store_->list_in_flight(after, options_.max_batch);
      if (!page.ok()) {
        spdlog::error("scheduler: cannot list in-flight executions: {}", page.error().message);
        return;
      }
      if (page->empty()) return;
      model::RedispatchExecutions cmd;
      cmd.node_id = options_.node_id;
      std::vector<PendingStart> starts;
      for (auto& e : *page) {
        after = e.id;
        {
          // Still being dispatched by this process from an earlier term:
          // its result is proposed in this term anyway.
          std::lock_guard lock(mu_);
          if (live_.count(e.id) != 0) continue;
        }
        auto job = store_->get_job(e.job_id);
        if (!job.ok()) continue;
        // The earlier leader may have made an attempt whose result was never
        // committed: count it, so the receiver sees a higher attempt number
        // with the same execution id. Not for a run committed ahead whose
        // fire time has not come: it was never sent (never early).
        if (earliest_send(e, *job) <= clock_->now()) e.attempts += 1;
        cmd.job_ids.push_back(e.job_id);
        cmd.execution_ids.push_back(e.id);
        cmd.attempts.push_back(e.attempts);
        e.node_id = options_.node_id;
        starts.push_back({e, *job, cmd.execution_ids.size() - 1});
      }
      size_t n = page->size();
      if (!cmd.execution_ids.empty()) {
        spdlog::info("scheduler: re-dispatching {} execution(s) left in flight",
                     cmd.execution_ids.size());
        Committed c;
        c.starts = std::move(starts);
        propose(model::CommandBatch{{std::move(cmd)}}, 0, std::move(c));
      }
      if (n < options_.max_batch) return;
    }
  }

  SchedulerOptions options_;
  store::Store* store_;
  raft::RaftNode* raft_;
  dispatch::HttpDispatcher* dispatcher_;
  const Clock* clock_;
  metrics::Family<metrics::Counter>& executions_total_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Family<metrics::Histogram>& lag_;
  metrics::Family<metrics::Counter>& missed_;
  metrics::Family<metrics::Counter>& retries_;

  // Scheduler-thread state.
  bool active_ = false;
  uint64_t term_ = 0;
  DueQueue queue_;
  std::unordered_map<std::string, JobEntry> jobs_;
  cron::ScheduleParser schedules_;  // shares parsed schedules between jobs_
  // Committed runs waiting for their fire time, earliest first. At most a
  // lookahead's worth of runs (lookahead <= 1 s <= the finest schedule's
  // period, so about one per job, two for a late pop of an `allow` job).
  struct Held {
    absl::Time fire_time;
    model::Execution exec;
    model::Job job;  // as planned; fire_held() checks it is still current
    bool operator>(const Held& o) const { return fire_time > o.fire_time; }
  };
  std::priority_queue<Held, std::vector<Held>, std::greater<>> held_;
  absl::Time last_retention_ = absl::InfinitePast();
  absl::Time last_full_retention_ = absl::InfinitePast();
  std::vector<std::string> sweep_order_;  // jobs of the current max_age sweep
  size_t sweep_pos_ = 0;
  std::thread thread_;

  // Shared state.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                          // guarded by mu_
  uint64_t epoch_ = 0;                             // guarded by mu_; bumps on every (de)activation
  std::unordered_set<std::string> dirty_;          // guarded by mu_
  bool dirty_all_ = false;                         // guarded by mu_
  std::unordered_set<std::string> retention_due_;  // guarded by mu_
  std::deque<Committed> committed_;                // guarded by mu_
  std::deque<model::ExecutionResult> results_;     // guarded by mu_
  std::deque<Request> requests_;                   // guarded by mu_
  // execution id → callers of wait_for_result; guarded by mu_
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;
  size_t waiter_count_ = 0;
  uint64_t waiter_seq_ = 0;                                // guarded by mu_   // guarded by mu_
  absl::Time oldest_result_;                               // guarded by mu_
  absl::Time retry_results_after_ = absl::InfinitePast();  // guarded by mu_
  // Executions this process's dispatcher is working on (any term): a new
  // term's re-dispatch skips them. guarded by mu_
  std::unordered_set<std::string> live_;
};

}  // namespace

std::unique_ptr<Scheduler> Scheduler::start(SchedulerOptions options, store::Store* store,
                                            raft::RaftNode* raft,
                                            dispatch::HttpDispatcher* dispatcher,
                                            const Clock* clock, metrics::Registry* metrics) {
  auto s =
      std::make_unique<SchedulerImpl>(std::move(options), store, raft, dispatcher, clock, metrics);
  s->start();
  return s;
}

}  // namespace chronos::sched
