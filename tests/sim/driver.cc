#include "sim/driver.h"

#include <algorithm>
#include <utility>

#include "base/strings.h"
#include "dispatch/backoff.h"
#include "dispatch/outcome.h"

namespace chronos::sim {

namespace {

// The real driver's bound on results waiting to be committed; half of it
// stops new starts (scheduler.cc: schedule_due's backpressure).
constexpr size_t kMaxPendingResults = 100'000;

double unit_random(std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

absl::Duration uniform_ms(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return absl::Milliseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
}

}  // namespace

// ---- SimDispatcher ----

void SimDispatcher::call_with_retries(model::Execution exec, model::Job job, int first_attempt,
                                      absl::Time first_at, Done done) {
  auto c = std::make_unique<Call>();
  c->exec = std::move(exec);
  c->job = std::move(job);
  c->attempt = first_attempt;
  c->next_at = first_at;
  c->done = std::move(done);
  calls_.push_back(std::move(c));
}

void SimDispatcher::cancel(const std::string& execution_id) {
  for (auto& c : calls_) {
    if (c->exec.id == execution_id) c->cancelled = true;
  }
}

// The job's "sim" tag picks how long its target takes to answer.
absl::Duration SimDispatcher::draw_duration(const model::Job& job) {
  std::mt19937_64& rng = *env_->rng;
  auto it = job.tags.find("sim");
  const std::string profile = it == job.tags.end() ? "short" : it->second;
  if (profile == "long") return uniform_ms(rng, 800, 4000);
  if (profile == "mixed" && unit_random(rng) < 0.15) return uniform_ms(rng, 2000, 6000);
  return uniform_ms(rng, 20, 400);
}

bool SimDispatcher::run(absl::Time now, const SentHook& sent) {
  bool keep_going = true;
  for (size_t i = 0; i < calls_.size() && keep_going; ++i) {
    Call& c = *calls_[i];
    if (c.finished) continue;
    if (c.cancelled) {
      c.finished = true;
      c.done(CallEnd{false, true, c.attempts_made, 0});
      continue;
    }
    if (!c.in_flight && c.next_at <= now) {
      env_->receiver->record(Delivery{c.exec.id, c.exec.job_id, c.exec.scheduled_time,
                                      c.exec.trigger, c.attempt, now, server_});
      env_->log->add(now, str_cat("n", server_, " send ", env_->job_name(c.exec.job_id), "#",
                                  short_id(c.exec.id), " t=",
                                  env_->log->stamp(c.exec.scheduled_time), " attempt ", c.attempt));
      c.in_flight = true;
      c.done_at = now + draw_duration(c.job);
      c.success = unit_random(*env_->rng) >= env_->attempt_failure_rate;
      if (sent && sent(c.exec, c.attempt)) {
        keep_going = false;
        continue;
      }
    }
    if (c.in_flight && c.done_at <= now) {
      ++c.attempts_made;
      c.in_flight = false;
      if (c.success) {
        c.finished = true;
        c.done(CallEnd{true, false, c.attempts_made, 200});
        continue;
      }
      dispatch::AttemptOutcome o;
      o.kind = dispatch::AttemptKind::kHttpStatus;
      o.status_code = 503;
      o.attempt = c.attempt;
      dispatch::RetryDecision d =
          dispatch::decide_retry(c.job.retry_policy, o, c.attempt, unit_random(*env_->rng));
      if (!d.retry) {
        c.finished = true;
        c.done(CallEnd{false, false, c.attempts_made, 503});
        continue;
      }
      c.attempt += 1;
      c.next_at = now + d.delay;
    }
  }
  calls_.erase(std::remove_if(calls_.begin(), calls_.end(),
                              [](const std::unique_ptr<Call>& c) { return c->finished; }),
               calls_.end());
  return keep_going;
}

// ---- Driver ----

Driver::Driver(const DriverEnv* env, unsigned server)
    : env_(env),
      server_(server),
      node_id_(str_cat("n", server)),
      store_(&env->cluster->store(server)),
      dispatcher_(env, server) {}

void Driver::log(const std::string& line) {
  env_->log->add(env_->clock->now(), str_cat(node_id_, " ", line));
}

bool Driver::crash_here(CrashPoint point) {
  if (crash_point_ != point || !active_) return false;
  halted_ = true;
  log(point == CrashPoint::kStartCommitted ? "CRASH POINT: start committed, nothing sent"
                                           : "CRASH POINT: first request sent, no result yet");
  return true;
}

void Driver::on_applied(const model::CommandBatch& batch) {
  for (const auto& cmd : batch.commands) {
    if (const auto* put = std::get_if<model::PutJob>(&cmd)) {
      dirty_.insert(put->job.id);
    } else if (const auto* del = std::get_if<model::DeleteJob>(&cmd)) {
      dirty_.insert(del->job_id);
    } else if (const auto* fin = std::get_if<model::FinishExecutions>(&cmd)) {
      for (const auto& r : fin->results) dirty_.insert(r.job_id);
    }
  }
}

void Driver::poll() {
  if (halted_) return;
  const absl::Time now = env_->clock->now();
  auto sent = [this](const model::Execution&, int) { return crash_here(CrashPoint::kFirstSend); };
  if (!dispatcher_.run(now, sent)) return;
  Cluster& c = *env_->cluster;
  const bool leading = c.is_leader(server_) && c.caught_up(server_);
  if (!leading) {
    if (active_) deactivate("lost leadership");
    return;
  }
  if (!active_ || c.term(server_) != term_) activate(c.term(server_));
  drain_dirty();
  drain_committed();
  if (halted_) return;
  schedule_due(now);
  flush_results(now);
  // Runs handed to dispatch this turn go out at once, as on the real
  // dispatcher thread.
  dispatcher_.run(now, sent);
}

bool Driver::owns(const std::string& execution_id) const {
  if (live_.count(execution_id) != 0 || finishing_.count(execution_id) != 0) return true;
  for (const auto& r : results_) {
    if (r.execution_id == execution_id) return true;
  }
  for (const auto& c : committed_) {
    if (c.epoch != epoch_ || !c.outcome.ok()) continue;
    for (const auto& ps : c.starts) {
      if (ps.execution.id == execution_id) return true;
    }
  }
  return false;
}

void Driver::activate(uint64_t term) {
  if (active_) deactivate("new term");
  active_ = true;
  term_ = term;
  ++epoch_;
  dirty_.clear();
  rebuild();
  redispatch_in_flight();
  log(str_cat("ACTIVE as leader of term ", term, " with ", queue_.size(), " scheduled job(s)"));
}

void Driver::deactivate(const char* why) {
  active_ = false;
  queue_.clear();
  jobs_.clear();
  committed_.clear();
  ++epoch_;
  log(str_cat("inactive (", why, "); dropping ", results_.size(), " uncommitted result(s)"));
  results_.clear();
}

void Driver::rebuild() {
  queue_.clear();
  jobs_.clear();
  auto st = store_->for_each_job([this](const model::Job& job, const store::ScheduleState& s) {
    refresh_job(job, s);
    return true;
  });
  CHRONOS_CHECK(st.ok()) << "rebuild: " << st.error().message;
}

void Driver::refresh_job(const model::Job& job, const store::ScheduleState& state) {
  auto it = jobs_.find(job.id);
  absl::Time local = it == jobs_.end() ? absl::InfinitePast() : it->second.last_scheduled;
  bool pending = it != jobs_.end() && it->second.start_pending;
  if (!job.enabled) {
    jobs_.erase(job.id);
    queue_.remove(job.id);
    return;
  }
  auto schedule = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
  CHRONOS_CHECK(schedule.ok()) << "job " << job.id << ": " << schedule.error().message;
  JobEntry& e = jobs_.insert_or_assign(job.id, JobEntry{*schedule}).first->second;
  e.last_scheduled = std::max(local, state.last_scheduled);
  e.start_pending = pending;
  if (pending) return;  // requeued when its start commits
  auto next = sched::next_fire_time(job, e.schedule, e.last_scheduled);
  if (next) {
    queue_.upsert(job.id, *next);
  } else {
    queue_.remove(job.id);
  }
}

void Driver::drain_dirty() {
  std::set<std::string> dirty;
  dirty.swap(dirty_);
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

model::FinishExecutions Driver::cancel_command(const std::string& job_id,
                                               const std::vector<std::string>& ids,
                                               absl::Time now) {
  model::FinishExecutions cancel;
  for (const auto& id : ids) {
    model::ExecutionResult r;
    r.job_id = job_id;
    r.execution_id = id;
    r.status = model::ExecutionStatus::kCancelled;
    r.error = "replaced by a newer run (concurrency: replace)";
    r.node_id = node_id_;
    r.completed_at = now;
    cancel.results.push_back(std::move(r));
  }
  return cancel;
}

void Driver::schedule_due(absl::Time now) {
  if (results_.size() >= kMaxPendingResults / 2) return;
  auto due = queue_.pop_due(now + env_->plan.lookahead, env_->max_batch);
  if (due.empty()) return;
  model::StartExecutions start;
  model::CommandBatch extra;
  std::vector<PendingStart> starts;
  std::vector<std::string> job_ids;
  std::vector<std::string> cancels;
  sched::StartContext ctx;
  ctx.started_at = now;
  ctx.node_id = node_id_;
  ctx.next_id = [this, now] { return env_->ids->execution_id(now); };
  std::string planned;
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
    sched::Plan plan = sched::plan_job(*job, it->second.schedule, s, now, env_->plan);
    if (plan.empty()) {
      if (auto next = sched::next_fire_time(*job, it->second.schedule, s.last_scheduled)) {
        queue_.upsert(entry.job_id, *next);
      }
      continue;
    }
    model::StartExecutions cmd = sched::to_command(plan, *job, ctx);
    for (auto& e : cmd.executions) {
      planned += str_cat(" ", env_->job_name(e.job_id), "#", short_id(e.id), "@",
                         env_->log->stamp(e.scheduled_time),
                         e.trigger == model::Trigger::kCatchup ? "(catchup)" : "",
                         e.status == model::ExecutionStatus::kSkipped ? "(skipped)" : "");
      if (e.status == model::ExecutionStatus::kRunning) {
        starts.push_back({e, *job, start.executions.size()});
      }
      start.executions.push_back(std::move(e));
    }
    if (plan.missed > 0) {
      planned += str_cat(" ", env_->job_name(job->id), ":missed", plan.missed);
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
  log(str_cat("propose start:", planned));
  // Cancels first: a replace run must not count the run it replaces.
  std::vector<model::Command> commands;
  for (auto& c : extra.commands) {
    if (std::holds_alternative<model::FinishExecutions>(c)) commands.push_back(std::move(c));
  }
  size_t start_index = commands.size();
  commands.emplace_back(std::move(start));
  for (auto& c : extra.commands) {
    if (std::holds_alternative<model::PutJob>(c)) commands.push_back(std::move(c));
  }
  Committed c;
  c.starts = std::move(starts);
  c.job_ids = std::move(job_ids);
  c.cancels = std::move(cancels);
  propose(model::CommandBatch{std::move(commands)}, start_index, std::move(c));
}

void Driver::propose(model::CommandBatch batch, size_t start_index, Committed c) {
  c.epoch = epoch_;
  auto shared = std::make_shared<Committed>(std::move(c));
  env_->cluster->propose(server_, batch,
                         [this, shared, start_index](Result<store::ApplyOutcome> r) {
                           if (r.ok() && start_index < r->results.size()) {
                             auto item = std::move(r->results[start_index]);
                             r->results.clear();
                             r->results.push_back(std::move(item));
                           }
                           shared->outcome = std::move(r);
                           committed_.push_back(std::move(*shared));
                         });
}

void Driver::drain_committed() {
  std::deque<Committed> committed;
  committed.swap(committed_);
  for (auto& c : committed) {
    if (c.epoch != epoch_) continue;
    for (const auto& id : c.job_ids) {
      auto it = jobs_.find(id);
      if (it == jobs_.end()) continue;
      it->second.start_pending = false;
      if (!c.outcome.ok()) it->second.last_scheduled = absl::InfinitePast();
      dirty_.insert(id);
    }
    if (!c.outcome.ok()) {
      log(str_cat("start entry not committed: ", c.outcome.error().message));
      continue;
    }
    for (const auto& id : c.cancels) dispatcher_.cancel(id);
    if (c.outcome->results.empty()) continue;
    const auto& result = c.outcome->results[0];
    if (!result.ok()) {
      log(str_cat("start command refused: ", result.error().message));
      continue;
    }
    const auto* items = std::get_if<store::ItemResults>(&*result);
    if (items == nullptr) continue;
    std::string started;
    bool any = false;
    for (auto& ps : c.starts) {
      if (ps.item >= items->items.size()) continue;
      if (!items->items[ps.item].ok()) {
        log(str_cat("execution #", short_id(ps.execution.id),
                    " not started: ", items->items[ps.item].error().message));
        continue;
      }
      started += str_cat(" ", env_->job_name(ps.execution.job_id), "#", short_id(ps.execution.id));
      dispatch(std::move(ps.execution), ps.job);
      any = true;
    }
    if (!started.empty()) log(str_cat("committed, dispatching:", started));
    if (any && crash_here(CrashPoint::kStartCommitted)) return;
  }
}

void Driver::dispatch(model::Execution exec, const model::Job& job) {
  if (!live_.insert(exec.id).second) return;  // already being dispatched here
  // A cancel that committed before this dispatch: nothing to send.
  if (auto stored = store_->get_execution(exec.job_id, exec.id);
      stored.ok() && model::is_terminal(stored->status)) {
    live_.erase(exec.id);
    return;
  }
  const absl::Time now = env_->clock->now();
  const int first_attempt = exec.attempts + 1;
  // A re-dispatched execution waits the backoff its lost attempt would
  // have earned; never before the fire time.
  absl::Duration first_delay = exec.attempts > 0
                                   ? dispatch::retry_delay(job.retry_policy, exec.attempts, 0.5)
                                   : absl::ZeroDuration();
  if (exec.trigger == model::Trigger::kSchedule || exec.trigger == model::Trigger::kCatchup) {
    first_delay = std::max(first_delay, exec.scheduled_time + sched::jitter_offset(job) - now);
  }
  model::Execution copy = exec;
  dispatcher_.call_with_retries(
      std::move(exec), job, first_attempt, now + first_delay,
      [this, copy, first_attempt](const SimDispatcher::CallEnd& r) {
        live_.erase(copy.id);
        if (r.cancelled) return;
        push_result(copy,
                    r.success ? model::ExecutionStatus::kSuccess : model::ExecutionStatus::kFailed,
                    first_attempt - 1 + r.attempts_made, r.status_code);
      });
}

void Driver::push_result(const model::Execution& exec, model::ExecutionStatus status, int attempts,
                         int status_code) {
  const absl::Time now = env_->clock->now();
  model::ExecutionResult r;
  r.job_id = exec.job_id;
  r.execution_id = exec.id;
  r.status = status;
  r.attempts = attempts;
  r.status_code = status_code;
  r.node_id = node_id_;
  r.completed_at = now;
  if (results_.size() >= kMaxPendingResults) results_.pop_front();
  if (results_.empty()) oldest_result_ = now;
  results_.push_back(std::move(r));
}

void Driver::flush_results(absl::Time now) {
  if (results_.empty() || now < retry_results_after_) return;
  if (results_.size() < env_->max_batch && now - oldest_result_ < env_->finish_batch_window) {
    return;
  }
  std::deque<model::ExecutionResult> results;
  results.swap(results_);
  while (!results.empty()) {
    model::FinishExecutions fin;
    while (!results.empty() && fin.results.size() < env_->max_batch) {
      fin.results.push_back(std::move(results.front()));
      results.pop_front();
    }
    const uint64_t epoch = epoch_;
    auto copy = std::make_shared<std::vector<model::ExecutionResult>>(fin.results);
    for (const auto& r : *copy) finishing_.insert(r.execution_id);
    env_->cluster->propose(server_, model::CommandBatch{{std::move(fin)}},
                           [this, copy, epoch](Result<store::ApplyOutcome> r) {
                             for (const auto& res : *copy)
                               finishing_.erase(finishing_.find(res.execution_id));
                             if (r.ok()) return;
                             // Not committed: try again while this leadership lasts; a new
                             // leader re-dispatches instead.
                             if (epoch != epoch_) return;
                             const absl::Time at = env_->clock->now();
                             if (results_.empty()) oldest_result_ = at;
                             retry_results_after_ = at + absl::Milliseconds(100);
                             for (auto& res : *copy) results_.push_back(std::move(res));
                           });
  }
}

void Driver::redispatch_in_flight() {
  std::string after;
  while (true) {
    auto page = store_->list_in_flight(after, env_->max_batch);
    CHRONOS_CHECK(page.ok()) << "list_in_flight: " << page.error().message;
    if (page->empty()) return;
    model::RedispatchExecutions cmd;
    cmd.node_id = node_id_;
    std::vector<PendingStart> starts;
    std::string listed;
    for (auto& e : *page) {
      after = e.id;
      if (live_.count(e.id) != 0) continue;  // still ours from an earlier term
      auto job = store_->get_job(e.job_id);
      if (!job.ok()) continue;
      e.attempts += 1;
      cmd.job_ids.push_back(e.job_id);
      cmd.execution_ids.push_back(e.id);
      cmd.attempts.push_back(e.attempts);
      e.node_id = node_id_;
      listed +=
          str_cat(" ", env_->job_name(e.job_id), "#", short_id(e.id), "(attempt ", e.attempts, ")");
      starts.push_back({e, *job, cmd.execution_ids.size() - 1});
    }
    const size_t n = page->size();
    if (!cmd.execution_ids.empty()) {
      log(str_cat("re-dispatch in flight:", listed));
      Committed c;
      c.starts = std::move(starts);
      propose(model::CommandBatch{{std::move(cmd)}}, 0, std::move(c));
    }
    if (n < env_->max_batch) return;
  }
}

}  // namespace chronos::sim
