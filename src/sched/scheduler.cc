#include "sched/scheduler.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "base/ids.h"
#include "base/strings.h"
#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace chronos::sched {
namespace {

// The driver's log port: this node's Raft member.
class RaftLog final : public LogPort {
 public:
  explicit RaftLog(raft::RaftNode* raft) : raft_(raft) {}
  Leadership leadership() const override {
    raft::RaftStatus st = raft_->status();
    Leadership l;
    l.leader = st.role == raft::Role::kLeader;
    l.caught_up = st.caught_up;
    l.term = st.term;
    l.lease_until = st.lease_until;
    return l;
  }
  void propose(model::CommandBatch batch, Done done) override {
    raft_->propose(std::move(batch), std::move(done));
  }
  void want_lease_until(absl::Duration until) override { raft_->want_lease_until(until); }

 private:
  raft::RaftNode* raft_;
};

// The driver's target port: webhooks through the HTTP dispatcher. Jobs with
// another target type fail their attempts with a clear error until those
// targets exist.
class HttpTargets final : public TargetPort {
 public:
  explicit HttpTargets(dispatch::HttpDispatcher* dispatcher) : dispatcher_(dispatcher) {}
  void send(Attempt a, Done done) override {
    if (!a.job.webhook) {
      dispatch::AttemptOutcome o;
      o.kind = dispatch::AttemptKind::kInvalidRequest;
      o.attempt = a.attempt;
      o.error = str_cat("target type \"", a.job.dispatch ? a.job.dispatch->type : "none",
                        "\" is not supported by this version");
      return done(std::move(o));
    }
    dispatch::HttpRequestSpec spec;
    spec.webhook = *a.job.webhook;
    spec.job_id = a.job.id;
    spec.job_name = a.job.name;
    spec.execution_id = a.execution.id;
    spec.scheduled_time = a.execution.scheduled_time;
    spec.attempt = a.attempt;
    spec.timeout = a.job.timeout;
    spec.send_by = a.send_by;
    dispatcher_->submit(std::move(spec), std::move(done));
  }
  void cancel(const std::string& execution_id) override { dispatcher_->cancel(execution_id); }

 private:
  dispatch::HttpDispatcher* dispatcher_;
};

// A caller of wait_for_result.
struct Waiter {
  std::string job_id;
  absl::Time deadline;
  Scheduler::StartedCallback done;
  uint64_t seq = 0;  // identifies it for a registration-time check
};

class SchedulerImpl final : public Scheduler {
 public:
  SchedulerImpl(Options options, store::Store* store, raft::RaftNode* raft,
                dispatch::HttpDispatcher* dispatcher, const Clock* clock,
                metrics::Registry* registry)
      : options_(std::move(options)),
        store_(store),
        clock_(clock),
        log_(raft),
        targets_(dispatcher),
        driver_(
            options_.driver,
            DriverPorts{store, &log_, &targets_, clock, [this](Input in) { post(std::move(in)); },
                        [](absl::Time now) { return new_uuid_v7(now); }, registry, nullptr}) {}

  ~SchedulerImpl() override { stop(); }

  void start() {
    thread_ = std::thread([this] {
      name_this_thread("scheduler");
      run();
    });
  }

  void on_applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome) override {
    // Every committed end wakes its waiters: results, cancels, replaces,
    // whichever node proposed them.
    std::vector<std::pair<std::string, std::string>> finished;
    for (const auto& cmd : batch.commands) {
      if (const auto* fin = std::get_if<model::FinishExecutions>(&cmd)) {
        for (const auto& r : fin->results) finished.emplace_back(r.job_id, r.execution_id);
      }
    }
    if (Input in = Driver::applied(batch, outcome)) post(std::move(in));
    if (!finished.empty()) notify_waiters(finished);
  }

  void trigger(TriggerRequest request, StartedCallback started) override {
    request_input(Driver::trigger(std::move(request), started), started);
  }

  void cancel(std::string job_id, std::string execution_id, StartedCallback done) override {
    request_input(Driver::cancel(std::move(job_id), std::move(execution_id), done), done);
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
    // The thread is gone: what it did not get to runs here, on a stopped
    // driver (requests are answered "not the leader", completions find
    // nothing to continue), and so does whatever is posted from now on.
    std::vector<Input> inbox;
    {
      std::lock_guard lock(mu_);
      thread_done_ = true;
      inbox.swap(inbox_);
    }
    {
      std::lock_guard lock(stopped_mu_);
      driver_.shutdown(std::move(inbox));
    }
    fail_waiters("scheduler stopped");
  }

 private:
  // Any thread, the scheduler thread included (an input is never run
  // inline while the thread may be in a turn). Inputs are never dropped:
  // they carry completions the driver relies on and callers waiting for an
  // answer; the bound applies to new requests (request_input). Once the
  // thread has exited they run here, on the stopped driver.
  void post(Input in) {
    {
      std::lock_guard lock(mu_);
      if (!thread_done_) {
        inbox_.push_back(std::move(in));
        cv_.notify_one();
        return;
      }
    }
    std::lock_guard lock(stopped_mu_);
    driver_.shutdown({std::move(in)});
  }

  // A trigger or cancel from the API: refused at once when too many wait
  // or the scheduler stops.
  void request_input(Input in, const StartedCallback& done) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && requests_ < options_.max_requests) {
        ++requests_;
        inbox_.push_back([in = std::move(in), this](Driver& d) {
          {
            std::lock_guard lock(mu_);
            --requests_;
          }
          in(d);
        });
        cv_.notify_one();
        return;
      }
    }
    done(Error{ErrorCode::kUnavailable, "scheduler is busy or stopping; retry later", {}});
  }

  void run() {
    while (true) {
      std::vector<Input> inbox;
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
        inbox.swap(inbox_);
      }
      const absl::Time now = clock_->now();
      driver_.turn(now, std::move(inbox));
      if (!driver_.active()) fail_waiters("this node is not the leader");
      expire_waiters(now);
      wait_until(driver_.next_wake(clock_->now()));
    }
  }

  void wait_until(absl::Time wake) {
    // Leadership is polled at least every 20 ms so a lost term stops
    // scheduling promptly even with nothing due.
    const absl::Duration d =
        std::clamp(wake - clock_->now(), absl::ZeroDuration(), absl::Milliseconds(20));
    std::unique_lock lock(mu_);
    if (stopping_ || !inbox_.empty()) return;
    cv_.wait_for(lock, absl::ToChronoNanoseconds(d));
  }

  // ---- waiters ----

  void fail_waiters(const char* why) {
    std::unordered_map<std::string, std::vector<Waiter>> waiters;
    {
      std::lock_guard lock(mu_);
      if (waiters_.empty()) return;
      waiters.swap(waiters_);
      waiter_count_ = 0;
    }
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
  // thread).
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

  Options options_;
  store::Store* store_;
  const Clock* clock_;
  RaftLog log_;
  HttpTargets targets_;
  // The scheduler thread's; after stop(), used under stopped_mu_.
  Driver driver_;
  std::mutex stopped_mu_;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;     // guarded by mu_
  bool thread_done_ = false;  // the thread has exited; guarded by mu_
  std::vector<Input> inbox_;  // guarded by mu_
  size_t requests_ = 0;       // trigger/cancel inputs in inbox_; guarded by mu_
  // execution id → callers of wait_for_result; guarded by mu_
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;
  size_t waiter_count_ = 0;  // guarded by mu_
  uint64_t waiter_seq_ = 0;  // guarded by mu_
};

}  // namespace

std::unique_ptr<Scheduler> Scheduler::start(Options options, store::Store* store,
                                            raft::RaftNode* raft,
                                            dispatch::HttpDispatcher* dispatcher,
                                            const Clock* clock, metrics::Registry* metrics) {
  auto s =
      std::make_unique<SchedulerImpl>(std::move(options), store, raft, dispatcher, clock, metrics);
  s->start();
  return s;
}

}  // namespace chronos::sched
