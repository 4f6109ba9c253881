// The driver against a real store, with a log and targets the test steps by
// hand: what it proposes, when it sends, and what it does without a lease.
// The deterministic simulation (tests/sim) runs the same driver on a whole
// simulated cluster; these tests pin single behaviours.

#include "sched/driver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>

#include "base/strings.h"
#include "store/tests/store_fixture.h"

namespace chronos::sched {
namespace {

using dispatch::AttemptKind;
using dispatch::AttemptOutcome;
using store::test_support::TempDir;

const absl::Time kT0 = absl::FromUnixSeconds(1'710'000'000);

// Applies proposals to the store when the test says so, as a one-node log.
class StepLog final : public LogPort {
 public:
  StepLog(store::Store* store, Post* post) : store_(store), post_(post) {}
  Leadership leadership() const override { return leadership_; }
  void want_lease_until(absl::Duration until) override { wanted_until_ = until; }
  void propose(model::CommandBatch batch, Done done) override {
    pending_.push_back({std::move(batch), std::move(done)});
  }
  // Commits every pending proposal, in order; the apply hook runs first, as
  // in raft/. With `callbacks_after_batch` every entry is applied (and
  // reported to the driver) before any proposal's callback runs, which is
  // the order libraft 0.22 reports them in.
  void commit_all() {
    std::vector<std::pair<Done, Result<store::ApplyOutcome>>> later;
    while (!pending_.empty()) {
      auto [batch, done] = std::move(pending_.front());
      pending_.pop_front();
      auto outcome = store_->apply(++index_, batch);
      CHRONOS_CHECK(outcome.ok()) << outcome.error().message;
      if (Input in = Driver::applied(batch, *outcome)) (*post_)(std::move(in));
      if (callbacks_after_batch) {
        later.emplace_back(std::move(done), std::move(outcome));
      } else {
        done(std::move(outcome));
      }
    }
    for (auto& [done, outcome] : later) done(std::move(outcome));
  }
  // Applies `batch` as if another node had proposed it.
  void apply_now(model::CommandBatch batch) {
    propose(std::move(batch), [](Result<store::ApplyOutcome>) {});
    commit_all();
  }
  std::vector<model::CommandBatch> pending() const {
    std::vector<model::CommandBatch> out;
    for (const auto& p : pending_) out.push_back(p.first);
    return out;
  }

  Leadership leadership_{true, true, 1, absl::InfiniteDuration()};
  absl::Duration wanted_until_ = -absl::InfiniteDuration();
  bool callbacks_after_batch = false;

 private:
  store::Store* store_;
  Post* post_;
  uint64_t index_ = 0;
  std::deque<std::pair<model::CommandBatch, Done>> pending_;
};

// Records attempts; the test answers them.
class StepTargets final : public TargetPort {
 public:
  struct Sent {
    Attempt attempt;
    Done done;
  };
  void send(Attempt a, Done done) override { sent.push_back({std::move(a), std::move(done)}); }
  void cancel(const std::string& id) override { cancelled.push_back(id); }
  void answer(size_t i, AttemptKind kind, int status = 0) {
    AttemptOutcome o;
    o.kind = kind;
    o.attempt = sent[i].attempt.attempt;
    o.status_code = status;
    sent[i].done(o);
  }
  std::vector<Sent> sent;
  std::vector<std::string> cancelled;
};

class DriverTest : public ::testing::Test {
 protected:
  DriverTest() : clock_(kT0) {
    auto s = store::Store::open(dir_.path());
    CHRONOS_CHECK(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    log_ = std::make_unique<StepLog>(store_.get(), &post_);
    post_ = [this](Input in) { inbox_.push_back(std::move(in)); };
    options_.node_id = "n1";
    options_.plan.lookahead = absl::Milliseconds(500);
    options_.seed = 7;
    make_driver();
  }

  // A new driver with options_ (the old one's state is gone, as in a new
  // process).
  void make_driver() {
    driver_ = std::make_unique<Driver>(
        options_, DriverPorts{store_.get(), log_.get(), &targets_, &clock_, post_,
                              [this](absl::Time) { return str_cat("exec-", ++ids_); }, &metrics_,
                              [](const std::string& line) {
                                if (getenv("DRIVER_TEST_TRACE")) {
                                  fprintf(stderr, "%s\n", line.c_str());
                                }
                              }});
  }

  void turn() {
    std::vector<Input> in;
    in.swap(inbox_);
    driver_->turn(clock_.now(), std::move(in));
  }
  // Turns until nothing new is posted (completions run in the next turn).
  void settle() {
    for (int i = 0; i < 10; ++i) {
      log_->commit_all();
      turn();
      if (inbox_.empty() && log_->pending().empty()) return;
    }
  }
  void advance_to(absl::Time t) {
    clock_.advance(t - clock_.now());
    settle();
  }
  model::Job every_second_job(model::Concurrency c = model::Concurrency::kBufferOne,
                              const std::string& id = "job-1") {
    model::Job job;
    job.id = id;
    job.name = id == "job-1" ? "j" : id;
    job.schedule = "* * * * * *";
    job.webhook = model::Webhook{};
    job.webhook->url = "http://target.test/";
    job.concurrency = c;
    job.retry_policy.initial_interval = absl::Seconds(1);
    job.retry_policy.jitter = 0;
    job.created_at = kT0;
    job.updated_at = kT0;
    log_->apply_now(model::CommandBatch{{model::PutJob{job, 0}}});
    return job;
  }
  // An earlier leader started "exec-old" (the run at kT0+1s) and vanished.
  void left_in_flight() {
    model::Execution e;
    e.id = "exec-old";
    e.job_id = "job-1";
    e.scheduled_time = kT0 + absl::Seconds(1);
    e.started_at = e.scheduled_time;
    e.status = model::ExecutionStatus::kRunning;
    log_->apply_now(model::CommandBatch{{model::StartExecutions{{e}, {}}}});
  }
  model::Execution stored(const std::string& id) {
    auto e = store_->get_execution("job-1", id);
    CHRONOS_CHECK(e.ok()) << e.error().message;
    return *e;
  }

  DriverOptions options_;
  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  SimulatedClock clock_;
  std::vector<Input> inbox_;
  Post post_;
  std::unique_ptr<StepLog> log_;
  StepTargets targets_;
  metrics::Registry metrics_;
  int ids_ = 0;
  std::unique_ptr<Driver> driver_;
};

TEST_F(DriverTest, CommitsAStartAheadAndSendsItAtItsFireTimeNeverBefore) {
  every_second_job();
  clock_.advance(absl::Milliseconds(600));  // the run at kT0+1s is within the lookahead
  turn();
  ASSERT_EQ(log_->pending().size(), 1u);  // the start is proposed first
  EXPECT_TRUE(targets_.sent.empty());
  settle();
  EXPECT_TRUE(targets_.sent.empty()) << "sent before its fire time";
  EXPECT_EQ(stored("exec-1").status, model::ExecutionStatus::kRunning);
  advance_to(kT0 + absl::Seconds(1));
  ASSERT_EQ(targets_.sent.size(), 1u);
  EXPECT_EQ(targets_.sent[0].attempt.attempt, 1);
  EXPECT_EQ(targets_.sent[0].attempt.execution.scheduled_time, kT0 + absl::Seconds(1));
}

TEST_F(DriverTest, SendsNothingWithoutALeaseAndGoesOnWhenItIsRenewed) {
  every_second_job();
  log_->leadership_.lease_until = clock_.monotonic() + absl::Milliseconds(100);
  advance_to(kT0 + absl::Seconds(1));
  EXPECT_TRUE(targets_.sent.empty());
  // It asks for the lease to cover the send it holds.
  EXPECT_LE(log_->wanted_until_, clock_.monotonic());
  EXPECT_LE(driver_->next_wake(clock_.now()), clock_.now() + absl::Milliseconds(5));
  log_->leadership_.lease_until = clock_.monotonic() + absl::Seconds(1);
  settle();
  ASSERT_EQ(targets_.sent.size(), 1u);
  EXPECT_EQ(targets_.sent[0].attempt.send_by, log_->leadership_.lease_until);
}

TEST_F(DriverTest, AsksForTheLeaseOnlyAsFarAsItsNextSend) {
  every_second_job();
  clock_.advance(absl::Milliseconds(300));
  settle();
  EXPECT_EQ(log_->wanted_until_, clock_.monotonic() + absl::Milliseconds(700));  // kT0+1s
  log_->apply_now(model::CommandBatch{{model::DeleteJob{"job-1", 0}}});
  settle();
  EXPECT_EQ(log_->wanted_until_, -absl::InfiniteDuration());  // nothing to send
}

TEST_F(DriverTest, ARetryIsCommittedBeforeItIsSent) {
  every_second_job();
  advance_to(kT0 + absl::Seconds(1));
  ASSERT_EQ(targets_.sent.size(), 1u);
  targets_.answer(0, AttemptKind::kHttpStatus, 503);
  turn();
  auto pending = log_->pending();
  ASSERT_EQ(pending.size(), 1u);
  const auto* rec = std::get_if<model::RedispatchExecutions>(&pending[0].commands.at(0));
  ASSERT_NE(rec, nullptr);
  EXPECT_TRUE(rec->retry);
  EXPECT_EQ(rec->attempts, std::vector<int>{1});
  // Its due time is recorded too: a new leader waits out the back-off.
  EXPECT_EQ(rec->next_attempt_at, std::vector<absl::Time>{kT0 + absl::Seconds(2)});
  settle();
  EXPECT_EQ(stored("exec-1").attempts, 1);
  EXPECT_EQ(targets_.sent.size(), 1u);  // waits its backoff
  advance_to(kT0 + absl::Seconds(2) + absl::Milliseconds(10));
  ASSERT_GE(targets_.sent.size(), 2u);
  EXPECT_EQ(targets_.sent[1].attempt.attempt, 2);
  EXPECT_EQ(targets_.sent[1].attempt.execution.id, "exec-1");
}

TEST_F(DriverTest, ANewLeaderRecordsTheAttemptItMayHaveLostBeforeSendingTheNext) {
  every_second_job();
  left_in_flight();
  clock_.advance(absl::Seconds(1) + absl::Milliseconds(300));
  turn();  // activates
  EXPECT_TRUE(targets_.sent.empty());
  settle();
  auto old = std::find_if(targets_.sent.begin(), targets_.sent.end(),
                          [](const auto& s) { return s.attempt.execution.id == "exec-old"; });
  ASSERT_NE(old, targets_.sent.end());
  EXPECT_EQ(old->attempt.attempt, 2);
  EXPECT_EQ(stored("exec-old").attempts, 1);
}

TEST_F(DriverTest, ANewLeaderWaitsOutARecordedBackoff) {
  every_second_job();
  left_in_flight();
  model::RedispatchExecutions retry{{"job-1"}, {"exec-old"}, {1}, "n0"};
  retry.retry = true;
  retry.next_attempt_at = {kT0 + absl::Seconds(5)};
  log_->apply_now(model::CommandBatch{{retry}});
  advance_to(kT0 + absl::Seconds(2));  // activates: the retry is not due
  auto old = [&] {
    return std::count_if(targets_.sent.begin(), targets_.sent.end(),
                         [](const auto& s) { return s.attempt.execution.id == "exec-old"; });
  };
  EXPECT_EQ(old(), 0);
  advance_to(kT0 + absl::Seconds(5));
  ASSERT_EQ(old(), 1);
  // Attempt 2 was never sent by anyone: it goes out as 2, unrecorded.
  EXPECT_EQ(targets_.sent.back().attempt.attempt, 2);
}

TEST_F(DriverTest, ALeaderThatLosesLeadershipSendsNothingItHeld) {
  every_second_job();
  clock_.advance(absl::Milliseconds(600));
  settle();  // committed ahead, held until kT0+1s
  log_->leadership_.leader = false;
  advance_to(kT0 + absl::Seconds(2));
  EXPECT_TRUE(targets_.sent.empty());
  EXPECT_FALSE(driver_->active());
}

TEST_F(DriverTest, AnAttemptThatWasNotSentGoesAgainUnderTheSameNumber) {
  every_second_job();
  advance_to(kT0 + absl::Seconds(1));
  ASSERT_EQ(targets_.sent.size(), 1u);
  targets_.answer(0, AttemptKind::kNotSent);
  settle();
  ASSERT_EQ(targets_.sent.size(), 2u);
  EXPECT_EQ(targets_.sent[1].attempt.attempt, 1);
  EXPECT_TRUE(log_->pending().empty());  // nothing recorded: nothing was sent
}

TEST_F(DriverTest, AWaitingRunIsSentWhenTheRunAheadOfItsResultCommits) {
  every_second_job(model::Concurrency::kBufferOne);
  advance_to(kT0 + absl::Seconds(1));
  ASSERT_EQ(targets_.sent.size(), 1u);  // exec-1, still going
  advance_to(kT0 + absl::Seconds(2));
  ASSERT_EQ(targets_.sent.size(), 1u);
  const std::string waiting = "exec-2";
  EXPECT_EQ(stored(waiting).status, model::ExecutionStatus::kPending);
  targets_.answer(0, AttemptKind::kSuccess, 200);
  advance_to(kT0 + absl::Seconds(2) + absl::Milliseconds(1));  // the result waits for its batch
  EXPECT_EQ(targets_.sent.size(), 1u);
  advance_to(kT0 + absl::Seconds(2) + absl::Milliseconds(10));  // committed: the waiting run starts
  ASSERT_EQ(targets_.sent.size(), 2u);
  EXPECT_EQ(targets_.sent[1].attempt.execution.id, waiting);
  EXPECT_EQ(stored(waiting).status, model::ExecutionStatus::kRunning);
}

// libraft may report a batch of applied entries before the callbacks of
// their proposals: the promotion of a waiting run then reaches the driver
// before the report that its own start committed (which lists only runs
// that started at once). It is sent all the same.
TEST_F(DriverTest, ARunPromotedBeforeItsStartIsReportedCommittedIsStillSent) {
  every_second_job(model::Concurrency::kBufferOne);
  advance_to(kT0 + absl::Seconds(1));
  ASSERT_EQ(targets_.sent.size(), 1u);  // exec-1, still going
  clock_.advance(absl::Seconds(1));
  turn();  // proposes exec-2's start (it will wait behind exec-1)
  targets_.answer(0, AttemptKind::kSuccess, 200);
  turn();
  clock_.advance(absl::Milliseconds(10));
  turn();  // proposes exec-1's result, which promotes exec-2
  ASSERT_EQ(log_->pending().size(), 2u);
  log_->callbacks_after_batch = true;
  settle();
  ASSERT_EQ(targets_.sent.size(), 2u);
  EXPECT_EQ(targets_.sent[1].attempt.execution.id, "exec-2");
}

// ... and a run whose end is applied before its start is reported committed
// is not sent.
TEST_F(DriverTest, ARunEndedBeforeItsStartIsReportedCommittedIsNotSent) {
  every_second_job(model::Concurrency::kAllow);
  clock_.advance(absl::Milliseconds(600));
  turn();  // proposes exec-1's start ahead of its fire time
  ASSERT_EQ(log_->pending().size(), 1u);
  model::ExecutionResult cancel;
  cancel.job_id = "job-1";
  cancel.execution_id = "exec-1";
  cancel.status = model::ExecutionStatus::kCancelled;
  cancel.completed_at = clock_.now();
  log_->propose(model::CommandBatch{{model::FinishExecutions{{cancel}}}},
                [](Result<store::ApplyOutcome>) {});
  log_->callbacks_after_batch = true;
  settle();
  EXPECT_EQ(stored("exec-1").status, model::ExecutionStatus::kCancelled);
  advance_to(kT0 + absl::Seconds(1) + absl::Milliseconds(100));
  for (const auto& s : targets_.sent) EXPECT_NE(s.attempt.execution.id, "exec-1");
}

// Job ids of the StartExecutions in a pending proposal.
std::vector<std::string> started_jobs(const model::CommandBatch& batch) {
  std::vector<std::string> out;
  for (const auto& c : batch.commands) {
    if (const auto* start = std::get_if<model::StartExecutions>(&c)) {
      for (const auto& e : start->executions) out.push_back(e.job_id);
    }
  }
  return out;
}

TEST_F(DriverTest, ANewLeaderStartsWhatItHasLoadedBeforeItHasLoadedEveryJob) {
  options_.load_slice = 3;
  make_driver();
  for (int i = 0; i < 8; ++i) every_second_job(model::Concurrency::kAllow, str_cat("job-", i));
  inbox_.clear();  // applied before this leader's time, as after a restart
  clock_.advance(absl::Milliseconds(600));  // the runs at kT0+1s are within the lookahead
  turn();  // activates; lists the runs in flight (none)
  EXPECT_TRUE(driver_->loading());
  turn();  // the first three jobs
  ASSERT_EQ(log_->pending().size(), 1u);
  EXPECT_EQ(started_jobs(log_->pending()[0]),
            (std::vector<std::string>{"job-0", "job-1", "job-2"}));
  EXPECT_TRUE(driver_->loading());
  // A job the log touches meanwhile is loaded at once, ahead of the walk.
  model::Job later = *store_->get_job("job-7");
  later.version += 1;
  log_->apply_now(model::CommandBatch{{model::PutJob{later, later.version - 1}}});
  turn();
  EXPECT_TRUE(driver_->loading());
  std::vector<std::string> second = started_jobs(log_->pending().back());
  EXPECT_NE(std::find(second.begin(), second.end(), "job-7"), second.end());
  settle();
  EXPECT_FALSE(driver_->loading());
  advance_to(kT0 + absl::Seconds(1));
  // Every job once, job-7 too (the walk met it again after loading it).
  std::map<std::string, int> sends;
  for (const auto& sent : targets_.sent) {
    EXPECT_EQ(sent.attempt.execution.scheduled_time, kT0 + absl::Seconds(1));
    ++sends[sent.attempt.execution.job_id];
  }
  EXPECT_EQ(sends.size(), 8u);
  for (const auto& [job, n] : sends) EXPECT_EQ(n, 1) << job;
}

}  // namespace
}  // namespace chronos::sched
