#include "raft/applier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "base/ids.h"
#include "base/strings.h"
#include "model/job.h"
#include "raft/entry_framing.h"

namespace chronos::raft {
namespace {

namespace fs = std::filesystem;

// A store in a fresh directory (removed afterwards), a state machine over
// it, and framed log entries that create one job each.
class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / str_cat("chronos-applier-test-", new_uuid_v4());
    auto st = store::Store::open(dir_.string());
    ASSERT_TRUE(st.ok()) << st.error().message;
    store_ = std::move(st).value();
    state_machine_ = std::make_unique<StateMachine>(store_.get(), nullptr);
  }
  void TearDown() override {
    state_machine_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A framed entry creating a job called `name`.
  static std::string create_entry(const std::string& name) {
    model::Job job;
    job.id = new_uuid_v4();
    job.name = name;
    job.schedule = "* * * * *";
    job.webhook = model::Webhook{};
    job.webhook->url = "http://127.0.0.1:9/hook";
    model::CommandBatch batch{{model::PutJob{job, 0}}};
    cr_buffer buf = frame_entry(model::encode_batch(batch));
    std::string framed(static_cast<const char*>(buf.base), buf.len);
    cr_free(buf.base);
    return framed;
  }

  fs::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<StateMachine> state_machine_;
};

TEST_F(ApplierTest, AProposerHearsOnlyOnceItsEntryIsInTheStore) {
  Applier applier(state_machine_.get(), Applier::Limits{});
  std::vector<std::string> events;
  applier.await(2, [&](Result<store::ApplyOutcome> outcome) {
    ASSERT_TRUE(outcome.ok());
    EXPECT_EQ(outcome->index, 2u);
    ASSERT_EQ(outcome->results.size(), 1u);
    EXPECT_TRUE(outcome->results[0].ok());
    events.push_back(str_cat("answered at ", store_->applied_index()));
  });
  ASSERT_TRUE(applier.try_push(1, create_entry("a")));
  ASSERT_TRUE(applier.try_push(2, create_entry("b")));
  applier.push_marker([&] { events.push_back(str_cat("marker at ", store_->applied_index())); });
  EXPECT_FALSE(applier.idle());
  EXPECT_EQ(applier.last_applied(), 0u);
  EXPECT_EQ(store_->applied_index(), 0u) << "queueing applies nothing";

  applier.confirm(2);  // libraft's request callback, before or after apply
  EXPECT_TRUE(applier.run_one());
  EXPECT_EQ(applier.last_applied(), 1u);
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(applier.run_one());
  EXPECT_TRUE(applier.run_one());
  EXPECT_FALSE(applier.run_one());
  EXPECT_TRUE(applier.idle());
  EXPECT_EQ(events, (std::vector<std::string>{"answered at 2", "marker at 2"}));
  EXPECT_EQ(store_->job_count(), 2u);
  EXPECT_EQ(applier.abandon(2), nullptr) << "answered once, not again";
}

TEST_F(ApplierTest, AnAbandonedProposalIsAnsweredByWhoeverAbandonedIt) {
  Applier applier(state_machine_.get(), Applier::Limits{});
  int answered = 0;
  applier.await(1, [&](Result<store::ApplyOutcome>) { ++answered; });
  Applier::Completion done = applier.abandon(1);
  ASSERT_NE(done, nullptr);
  // libraft may still apply an entry whose request it failed.
  ASSERT_TRUE(applier.try_push(1, create_entry("a")));
  EXPECT_TRUE(applier.run_one());
  EXPECT_EQ(answered, 0);
  EXPECT_EQ(store_->job_count(), 1u);
  done(Error{ErrorCode::kNoLeader, "leadership lost", {}});
  EXPECT_EQ(answered, 1);
}

// A deposed leader's uncommitted entry at an index can be replaced by the
// new leader's, which libraft may queue before it fails the old request:
// what was applied there is not the proposer's, so only libraft's verdict
// answers it.
TEST_F(ApplierTest, AnEntryAppliedAtAnAwaitedIndexAnswersOnlyWhenLibraftConfirmsIt) {
  Applier applier(state_machine_.get(), Applier::Limits{});
  std::vector<std::string> answers;
  auto record = [&](Result<store::ApplyOutcome> r) {
    answers.push_back(r.ok() ? str_cat("applied ", r->index) : r.error().message);
  };
  applier.await(1, record);
  applier.await(2, record);
  ASSERT_TRUE(applier.try_push(1, create_entry("mine")));
  ASSERT_TRUE(applier.try_push(2, create_entry("the new leader's")));
  ASSERT_TRUE(applier.run_one());
  ASSERT_TRUE(applier.run_one());
  EXPECT_TRUE(answers.empty()) << "applied, not yet confirmed";
  applier.confirm(1);
  EXPECT_EQ(answers, std::vector<std::string>{"applied 1"});
  Applier::Completion failed = applier.abandon(2);
  ASSERT_NE(failed, nullptr);
  failed(Error{ErrorCode::kNoLeader, "leadership lost", {}});
  EXPECT_EQ(answers, (std::vector<std::string>{"applied 1", "leadership lost"}));
  applier.confirm(2);  // nothing left to answer
  EXPECT_EQ(answers.size(), 2u);
}

TEST_F(ApplierTest, ARestoredSnapshotMovesTheAppliedIndexUp) {
  Applier applier(state_machine_.get(), Applier::Limits{});
  ASSERT_TRUE(applier.try_push(1, create_entry("a")));
  ASSERT_TRUE(applier.run_one());
  applier.restored(5000);
  EXPECT_EQ(applier.last_applied(), 5000u);
  applier.restored(10);
  EXPECT_EQ(applier.last_applied(), 5000u);
}

TEST_F(ApplierTest, AReplayTheStoreHoldsIsSkippedAndSaysSo) {
  Applier applier(state_machine_.get(), Applier::Limits{});
  ASSERT_TRUE(applier.try_push(1, create_entry("a")));
  ASSERT_TRUE(applier.run_one());
  bool skipped = false;
  applier.await(1, [&](Result<store::ApplyOutcome> outcome) {
    skipped = outcome.ok() && outcome->skipped;
  });
  ASSERT_TRUE(applier.try_push(1, create_entry("a again")));
  ASSERT_TRUE(applier.run_one());
  applier.confirm(1);
  EXPECT_TRUE(skipped);
  EXPECT_EQ(store_->job_count(), 1u);
}

TEST_F(ApplierTest, AFullQueueRefusesUntilTheStoreCatchesUp) {
  const std::string entry = create_entry("x");
  Applier applier(state_machine_.get(), Applier::Limits{2, 1u << 20});
  ASSERT_TRUE(applier.try_push(1, entry));
  ASSERT_TRUE(applier.try_push(2, entry));
  EXPECT_FALSE(applier.try_push(3, entry));
  applier.push_marker([] {});  // markers are not bounded
  ASSERT_TRUE(applier.run_one());
  EXPECT_TRUE(applier.try_push(3, entry));

  // By bytes: one entry larger than the bound still goes in, alone.
  Applier small(state_machine_.get(), Applier::Limits{100, entry.size() + 1});
  const std::string big(entry.size() * 3, 'x');
  EXPECT_TRUE(small.try_push(10, big));
  EXPECT_FALSE(small.try_push(11, entry));
}

// The node's threads: the loop pushes and waits for room; the apply thread
// runs; a snapshot waits for its ticket; stopping applies what was queued.
TEST_F(ApplierTest, ThreadsWaitForRoomAndForTicketsAndFinishWhatWasQueued) {
  Applier applier(state_machine_.get(), Applier::Limits{1, 1u << 20});
  std::atomic<int> answered{0};
  constexpr int kEntries = 50;
  for (int i = 1; i <= kEntries; ++i) {
    applier.await(static_cast<uint64_t>(i), [&](Result<store::ApplyOutcome> r) {
      if (r.ok() && !r->skipped) ++answered;
    });
  }
  std::thread apply_thread([&] { applier.run(); });
  uint64_t ticket = 0;
  for (int i = 1; i <= kEntries; ++i) {
    applier.push(static_cast<uint64_t>(i), create_entry(str_cat("j", i)));  // waits for room
    applier.confirm(static_cast<uint64_t>(i));
    if (i == kEntries / 2) ticket = applier.ticket();
  }
  ASSERT_TRUE(applier.wait_done(ticket));
  EXPECT_GE(store_->applied_index(), static_cast<uint64_t>(kEntries / 2));
  applier.finish();
  apply_thread.join();
  EXPECT_EQ(answered.load(), kEntries);
  EXPECT_EQ(store_->job_count(), static_cast<uint64_t>(kEntries));
  EXPECT_TRUE(applier.idle());
  EXPECT_FALSE(applier.wait_done(applier.ticket() + 1)) << "stopped: nothing more will be done";
}

}  // namespace
}  // namespace chronos::raft
