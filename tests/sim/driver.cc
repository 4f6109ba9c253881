#include "sim/driver.h"

#include <algorithm>
#include <utility>

#include "base/strings.h"

namespace chronos::sim {
namespace {

double unit_random(std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

absl::Duration uniform_ms(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return absl::Milliseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
}

// The job's "sim" tag: how its target behaves.
std::string profile_of(const model::Job& job) {
  auto it = job.tags.find("sim");
  return it == job.tags.end() ? "short" : it->second;
}

bool is_uuid(std::string_view s) { return s.size() == 36 && s[8] == '-' && s[13] == '-'; }

}  // namespace

// ---- SimTargets ----

void SimTargets::send(Attempt attempt, Done done) {
  calls_.push_back(Call{std::move(attempt), std::move(done)});
}

void SimTargets::cancel(const std::string& execution_id) {
  for (auto& c : calls_) {
    if (c.attempt.execution.id == execution_id) c.cancelled = true;
  }
}

absl::Duration SimTargets::draw_duration(const model::Job& job) {
  std::mt19937_64& rng = *env_->rng;
  const std::string profile = profile_of(job);
  if (profile == "long") return uniform_ms(rng, 800, 4000);
  if (profile == "fast") return uniform_ms(rng, 20, 200);
  if (profile == "mixed" && unit_random(rng) < 0.15) return uniform_ms(rng, 2000, 6000);
  return uniform_ms(rng, 20, 400);
}

bool SimTargets::run(absl::Time now, uint64_t term, const SentHook& sent) {
  bool keep_going = true;
  std::vector<Call> ended;
  for (size_t i = 0; i < calls_.size() && keep_going;) {
    Call& c = calls_[i];
    const model::Execution& e = c.attempt.execution;
    if (c.cancelled) {
      dispatch::AttemptOutcome o;
      o.kind = dispatch::AttemptKind::kCancelled;
      o.attempt = c.attempt.attempt;
      c.done(std::move(o));
      calls_.erase(calls_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    if (!c.sent) {
      // As the dispatcher thread: past send_by (the lease) nothing goes out.
      if (env_->clock->monotonic() > c.attempt.send_by) {
        dispatch::AttemptOutcome o;
        o.kind = dispatch::AttemptKind::kNotSent;
        o.attempt = c.attempt.attempt;
        c.done(std::move(o));
        calls_.erase(calls_.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      c.sent = true;
      env_->receiver->record(Delivery{e.id, e.job_id, e.scheduled_time, e.trigger,
                                      c.attempt.attempt, now, server_, term});
      env_->log->add(
          now, str_cat("n", server_, " deliver ", env_->job_name(e.job_id), "#", short_id(e.id),
                       " t=", env_->log->stamp(e.scheduled_time), " attempt ", c.attempt.attempt));
      c.done_at = now + draw_duration(c.attempt.job);
      const double failure_rate = profile_of(c.attempt.job) == "fast" ? 0.0 : 0.1;
      c.success = unit_random(*env_->rng) >= failure_rate;
      if (sent && sent(e, c.attempt.attempt)) {
        keep_going = false;
        break;
      }
    }
    if (c.done_at <= now) {
      dispatch::AttemptOutcome o;
      o.attempt = c.attempt.attempt;
      o.started_at = c.done_at;
      if (c.success) {
        o.kind = dispatch::AttemptKind::kSuccess;
        o.status_code = 200;
      } else {
        o.kind = dispatch::AttemptKind::kHttpStatus;
        o.status_code = 503;
        o.error = "HTTP status 503 is not a success code";
      }
      c.done(std::move(o));
      calls_.erase(calls_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  return keep_going;
}

// ---- Process ----

// The driver's log port: this server of the cluster. A start entry whose
// commit is to crash the process is not reported to the driver.
class Process::ClusterLog final : public sched::LogPort {
 public:
  explicit ClusterLog(Process* p) : p_(p) {}
  Leadership leadership() const override {
    Cluster& c = *p_->env_->cluster;
    const unsigned i = p_->server_;
    Leadership l;
    l.leader = c.is_leader(i);
    l.caught_up = c.caught_up(i);
    l.term = c.term(i);
    l.lease_until = c.lease_until(i);
    return l;
  }
  void want_lease_until(absl::Duration until) override {
    p_->env_->cluster->want_lease_until(p_->server_, until);
  }
  void propose(model::CommandBatch batch, Done done) override {
    bool starts = false;
    for (const auto& cmd : batch.commands) {
      if (const auto* s = std::get_if<model::StartExecutions>(&cmd)) {
        starts = starts || !s->executions.empty();
      }
    }
    Process* p = p_;
    p->env_->cluster->propose(p->server_, batch,
                              [p, starts, done = std::move(done)](Result<store::ApplyOutcome> r) {
                                if (starts && r.ok() && p->crash_here(CrashPoint::kStartCommitted))
                                  return;
                                done(std::move(r));
                              });
  }

 private:
  Process* p_;
};

Process::Process(const ProcessEnv* env, unsigned server)
    : env_(env), server_(server), log_(std::make_unique<ClusterLog>(this)), targets_(env, server) {
  sched::DriverOptions o;
  o.node_id = str_cat("n", server);
  o.plan = env->plan;
  o.seed = (*env->rng)() | 1;
  // A new leader loads its few jobs and runs in flight over several turns,
  // deciding between slices, as a leader of a million jobs does.
  o.load_slice = 2;
  sched::DriverPorts ports;
  ports.store = &env->cluster->store(server);
  ports.log = log_.get();
  ports.targets = &targets_;
  ports.clock = env->clock;
  ports.post = [this](sched::Input in) { inbox_.push_back(std::move(in)); };
  ports.new_execution_id = [env](absl::Time now) { return env->ids->execution_id(now); };
  ports.metrics = env->metrics;
  // The driver's lines, with job ids as job names and execution ids short.
  ports.trace = [this](const std::string& line) {
    std::string out;
    size_t i = 0;
    while (i < line.size()) {
      if (i + 36 <= line.size() && is_uuid(std::string_view(line).substr(i, 36))) {
        const std::string id = line.substr(i, 36);
        const std::string name = env_->job_name(id);
        out += name != short_id(id) ? name : std::string(short_id(id));
        i += 36;
      } else {
        out += line[i++];
      }
    }
    env_->log->add(env_->clock->now(), str_cat("n", server_, " ", out));
  };
  driver_ = std::make_unique<sched::Driver>(std::move(o), std::move(ports));
}

Process::~Process() = default;

bool Process::crash_here(CrashPoint point) {
  if (crash_point_ != point || !driver_->active() || halted_) return halted_;
  halted_ = true;
  env_->log->add(env_->clock->now(),
                 str_cat("n", server_,
                         point == CrashPoint::kStartCommitted
                             ? " CRASH POINT: start committed, nothing sent"
                             : " CRASH POINT: first request sent, no result yet"));
  return true;
}

void Process::on_applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome) {
  if (halted_) return;
  if (sched::Input in = sched::Driver::applied(batch, outcome)) inbox_.push_back(std::move(in));
}

void Process::poll() {
  if (halted_) return;
  const absl::Time now = env_->clock->now();
  auto sent = [this](const model::Execution&, int) { return crash_here(CrashPoint::kFirstSend); };
  // Attempts that ended by now report first, as on the dispatcher thread.
  if (!targets_.run(now, driver_->term(), sent)) return;
  std::vector<sched::Input> inputs;
  inputs.swap(inbox_);
  driver_->turn(now, std::move(inputs));
  if (halted_) return;
  // What the turn sent goes out at once.
  targets_.run(now, driver_->term(), sent);
}

}  // namespace chronos::sim
