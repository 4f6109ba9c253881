#include "raft/raft_node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <variant>

#include "absl/time/clock.h"
#include "base/ids.h"
#include "base/strings.h"
#include "model/job.h"
#include "raft/tests/free_port.h"

namespace chronos::raft {
namespace {

namespace fs = std::filesystem;

// A fresh data directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / str_cat("chronos-raft-test-", new_uuid_v4());
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path(std::string_view sub) const { return (path_ / sub).string(); }

 private:
  fs::path path_;
};


model::Job make_job(std::string name) {
  model::Job job;
  job.id = new_uuid_v4();
  job.name = std::move(name);
  job.schedule = "* * * * *";
  job.webhook = model::Webhook{};
  job.webhook->url = "http://127.0.0.1:9/hook";
  return job;
}

struct Node {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<RaftNode> raft;
};

Node start_node(const TempDir& dir, int port, unsigned snapshot_threshold = 8192,
                size_t max_pending = 4096, uint64_t paced_snapshot_bytes = 8ull << 20) {
  Node n;
  auto st = store::Store::open(dir.path("store"));
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  n.store = std::move(st).value();
  RaftConfig cfg;
  cfg.id = 1;
  cfg.address = str_cat("127.0.0.1:", port);
  cfg.dir = dir.path("raft");
  cfg.snapshot_threshold = snapshot_threshold;
  cfg.snapshot_trailing = snapshot_threshold / 2;
  cfg.max_pending_proposals = max_pending;
  cfg.paced_snapshot_bytes = paced_snapshot_bytes;
  auto r = RaftNode::start(cfg, n.store.get());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  n.raft = std::move(r).value();
  return n;
}

bool wait_caught_up(RaftNode& raft, absl::Duration timeout = absl::Seconds(30)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (raft.status().caught_up) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

Result<store::ApplyOutcome> propose_sync(RaftNode& raft, model::CommandBatch batch) {
  std::promise<Result<store::ApplyOutcome>> done;
  auto fut = done.get_future();
  raft.propose(std::move(batch),
               [&done](Result<store::ApplyOutcome> r) { done.set_value(std::move(r)); });
  if (fut.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    return Error::internal("proposal timed out");
  }
  return fut.get();
}

TEST(RaftNode, SingleVoterBootstrapsAndBecomesLeader) {
  TempDir dir;
  Node n = start_node(dir, free_port());
  ASSERT_TRUE(wait_caught_up(*n.raft));
  auto s = n.raft->status();
  EXPECT_EQ(s.role, Role::kLeader);
  EXPECT_EQ(s.leader_id, 1u);
  ASSERT_EQ(s.members.size(), 1u);
  EXPECT_EQ(s.members[0].role, "voter");
}

TEST(RaftNode, ProposalIsAppliedBeforeItsCallback) {
  TempDir dir;
  Node n = start_node(dir, free_port());
  ASSERT_TRUE(wait_caught_up(*n.raft));
  model::Job job = make_job("alpha");
  auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->results.size(), 1u);
  EXPECT_TRUE(out->results[0].ok());
  EXPECT_TRUE(n.store->get_job(job.id).ok());
  EXPECT_EQ(n.store->applied_index(), out->index);
}

TEST(RaftNode, PreconditionFailureIsReportedToProposer) {
  TempDir dir;
  Node n = start_node(dir, free_port());
  ASSERT_TRUE(wait_caught_up(*n.raft));
  model::Job a = make_job("dup");
  model::Job b = make_job("dup");
  auto out = propose_sync(*n.raft, {{model::PutJob{a, 0}, model::PutJob{b, 0}}});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->results[0].ok());
  ASSERT_FALSE(out->results[1].ok());
  EXPECT_EQ(out->results[1].error().code, ErrorCode::kAlreadyExists);
}

TEST(RaftNode, RestartReplaysNothingTwiceAndKeepsEveryJob) {
  TempDir dir;
  int port = free_port();
  std::vector<std::string> ids;
  {
    Node n = start_node(dir, port);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 20; ++i) {
      model::Job job = make_job(str_cat("job-", i));
      ids.push_back(job.id);
      auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
      ASSERT_TRUE(out.ok() && out->results[0].ok());
    }
    n.raft->stop();
  }
  Node n = start_node(dir, port);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  for (const auto& id : ids) EXPECT_TRUE(n.store->get_job(id).ok()) << id;
  EXPECT_EQ(n.store->job_count(), ids.size());
}

TEST(RaftNode, SnapshotsUnderLowThresholdSurviveRestart) {
  TempDir dir;
  int port = free_port();
  std::vector<std::string> ids;
  {
    Node n = start_node(dir, port, /*snapshot_threshold=*/8);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 60; ++i) {
      model::Job job = make_job(str_cat("snap-", i));
      ids.push_back(job.id);
      auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
      ASSERT_TRUE(out.ok() && out->results[0].ok());
    }
    n.raft->stop();
  }
  // libraft keeps snapshot files as snapshot-<term>-<index>-<ts>.
  bool has_snapshot = false;
  for (const auto& e : fs::directory_iterator(dir.path("raft"))) {
    if (e.path().filename().string().rfind("snapshot-", 0) == 0) has_snapshot = true;
  }
  EXPECT_TRUE(has_snapshot);
  // Restart on a wiped store: everything must come back from the snapshot
  // plus the trailing log.
  fs::remove_all(dir.path("store"));
  Node n = start_node(dir, port, 8);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  for (const auto& id : ids) EXPECT_TRUE(n.store->get_job(id).ok()) << id;
  EXPECT_EQ(n.store->job_count(), ids.size());
}

Result<uint64_t> snapshot_sync(RaftNode& raft) {
  std::promise<Result<uint64_t>> done;
  auto fut = done.get_future();
  raft.take_snapshot([&done](Result<uint64_t> r) { done.set_value(std::move(r)); });
  if (fut.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    return Error::internal("snapshot timed out");
  }
  return fut.get();
}

// Indexes of the snapshot files libraft keeps (snapshot-<term>-<index>-<ts>;
// it keeps the last two), highest first.
std::vector<uint64_t> snapshot_indexes(const TempDir& dir) {
  std::vector<uint64_t> out;
  for (const auto& e : fs::directory_iterator(dir.path("raft"))) {
    const std::string name = e.path().filename().string();
    uint64_t term = 0, index = 0, ts = 0;
    if (name.find(".meta") == std::string::npos &&
        std::sscanf(name.c_str(), "snapshot-%lu-%lu-%lu", &term, &index, &ts) == 3) {
      out.push_back(index);
    }
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

// Once a snapshot image is large (here: any size), the next snapshot waits
// for log proportional to it, up to 16 x the threshold in entries; unpaced,
// one is taken every `threshold` entries. Noops are a few bytes each, so
// with pacing 100 of them (< 16 x 8) take no snapshot.
TEST(RaftNode, SnapshotsOfALargeStoreWaitForLogProportionalToTheImage) {
  for (const bool paced : {false, true}) {
    SCOPED_TRACE(paced ? "paced" : "unpaced");
    TempDir dir;
    Node n = start_node(dir, free_port(), /*snapshot_threshold=*/8, 4096,
                        paced ? 1 : UINT64_MAX);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 40; ++i) {
      auto out = propose_sync(*n.raft, {{model::PutJob{make_job(str_cat("big-", i)), 0}}});
      ASSERT_TRUE(out.ok() && out->results[0].ok());
    }
    auto from = snapshot_sync(*n.raft);
    ASSERT_TRUE(from.ok()) << from.error().message;
    for (int i = 0; i < 100; ++i) {
      auto out = propose_sync(*n.raft, {{model::Noop{}}});
      ASSERT_TRUE(out.ok()) << out.error().message;
    }
    // A snapshot on request completes after any snapshot in progress.
    auto to = snapshot_sync(*n.raft);
    ASSERT_TRUE(to.ok()) << to.error().message;
    std::vector<uint64_t> kept = snapshot_indexes(dir);
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_GE(kept[0], *to);
    if (paced) {
      EXPECT_EQ(kept[1], *from) << "a snapshot was taken between the two requested ones";
    } else {
      EXPECT_GT(kept[1], *from + 64) << "snapshots every 8 entries expected";
    }
    n.raft->stop();
  }
}

TEST(RaftNode, StopWhileSnapshottingUnderLoadKeepsEveryAcknowledgedWrite) {
  TempDir dir;
  int port = free_port();
  std::mutex mu;
  std::vector<std::string> acked;
  {
    Node n = start_node(dir, port, /*snapshot_threshold=*/4);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 300; ++i) {
      model::Job job = make_job(str_cat("load-", i));
      std::string id = job.id;
      n.raft->propose({{model::PutJob{job, 0}}}, [&mu, &acked, id](Result<store::ApplyOutcome> r) {
        if (r.ok() && r->results[0].ok()) {
          std::lock_guard lock(mu);
          acked.push_back(id);
        }
      });
    }
    // Stop as soon as some writes are acknowledged: snapshots (every 4
    // entries) are being cut on the thread pool at that moment.
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (acked.size() >= 50) break;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    n.raft->stop();
  }
  std::vector<std::string> expected;
  {
    std::lock_guard lock(mu);
    expected = acked;
  }
  ASSERT_GE(expected.size(), 50u);
  Node n = start_node(dir, port, 4);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  for (const auto& id : expected) EXPECT_TRUE(n.store->get_job(id).ok()) << id;
}

// The real store, whose snapshot images are cut only when the test lets
// them: the cut blocks (at most 60 s) until release(). Everything else is
// the store's own.
class GatedStore final : public store::Store {
 public:
  explicit GatedStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}
  ~GatedStore() override { release(); }

  // Waits for a cut to be blocked on the gate.
  bool wait_cut_started(absl::Duration timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(timeout), [this] { return started_ > 0; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  Result<SnapshotChunks> serialize_snapshot_chunks() const override {
    {
      std::unique_lock lock(mu_);
      ++started_;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(60), [this] { return released_; });
    }
    return inner_->serialize_snapshot_chunks();
  }

  uint64_t applied_index() const override { return inner_->applied_index(); }
  Result<store::ApplyOutcome> apply(uint64_t index, const model::CommandBatch& batch) override {
    return inner_->apply(index, batch);
  }
  Result<model::Job> get_job(std::string_view id) const override { return inner_->get_job(id); }
  Result<model::Job> find_job(std::string_view ns, std::string_view name) const override {
    return inner_->find_job(ns, name);
  }
  Result<model::Job> get_job_version(std::string_view id, int64_t version) const override {
    return inner_->get_job_version(id, version);
  }
  Result<std::vector<store::VersionInfo>> list_versions(std::string_view id,
                                                        int64_t before_version,
                                                        size_t limit) const override {
    return inner_->list_versions(id, before_version, limit);
  }
  Result<store::ListPage> list_jobs(const store::ListQuery& query) const override {
    return inner_->list_jobs(query);
  }
  uint64_t job_count() const override { return inner_->job_count(); }
  Result<store::ScheduleState> get_schedule_state(std::string_view job_id) const override {
    return inner_->get_schedule_state(job_id);
  }
  Result<model::Execution> get_execution(std::string_view job_id,
                                         std::string_view execution_id) const override {
    return inner_->get_execution(job_id, execution_id);
  }
  Result<store::ExecutionPage> list_executions(const store::ExecutionQuery& query) const override {
    return inner_->list_executions(query);
  }
  Result<std::vector<model::Execution>> list_in_flight(std::string_view after_id,
                                                       size_t limit) const override {
    return inner_->list_in_flight(after_id, limit);
  }
  Status for_each_job(const std::function<bool(const model::Job&, const store::ScheduleState&)>&
                          fn) const override {
    return inner_->for_each_job(fn);
  }
  Status for_each_timing(
      std::string_view after_id,
      const std::function<bool(const model::JobTiming&, const store::ScheduleState&)>& fn)
      const override {
    return inner_->for_each_timing(after_id, fn);
  }
  Result<std::vector<std::string>> executions_to_prune(std::string_view job_id,
                                                       size_t keep_newest,
                                                       absl::Time completed_before,
                                                       size_t limit) const override {
    return inner_->executions_to_prune(job_id, keep_newest, completed_before, limit);
  }
  Result<std::vector<store::MemberRecord>> list_members() const override {
    return inner_->list_members();
  }
  Status restore_snapshot(std::string_view image) override {
    return inner_->restore_snapshot(image);
  }
  Status import_backup(std::string_view image) override { return inner_->import_backup(image); }

 private:
  std::unique_ptr<store::Store> inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int started_ = 0;
  bool released_ = false;
};

Node start_gated_node(const TempDir& dir, int port, GatedStore** gate) {
  auto st = store::Store::open(dir.path("store"));
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  auto gated = std::make_unique<GatedStore>(std::move(st).value());
  *gate = gated.get();
  Node n;
  n.store = std::move(gated);
  RaftConfig cfg;
  cfg.id = 1;
  cfg.address = str_cat("127.0.0.1:", port);
  cfg.dir = dir.path("raft");
  cfg.snapshot_threshold = 4;
  cfg.snapshot_trailing = 2;
  auto r = RaftNode::start(cfg, n.store.get());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  n.raft = std::move(r).value();
  return n;
}

// libraft 0.22 would cut the image on the Raft loop (legacy.c calls
// snapshot_async there); the glue moves the cut to the thread pool. While
// the cut is held, the loop still commits and applies proposals.
TEST(RaftNode, ProposalsCommitWhileASnapshotImageIsBeingCut) {
  TempDir dir;
  GatedStore* gate = nullptr;
  Node n = start_gated_node(dir, free_port(), &gate);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    model::Job job = make_job(str_cat("before-", i));
    ids.push_back(job.id);
    auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
    ASSERT_TRUE(out.ok() && out->results[0].ok());
  }
  ASSERT_TRUE(gate->wait_cut_started(absl::Seconds(30)));
  for (int i = 0; i < 20; ++i) {
    model::Job job = make_job(str_cat("during-", i));
    ids.push_back(job.id);
    auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
    ASSERT_TRUE(out.ok() && out->results[0].ok()) << "proposal " << i << " during the cut";
  }
  gate->release();
  auto snap = snapshot_sync(*n.raft);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  n.raft->stop();
  for (const auto& id : ids) EXPECT_TRUE(n.store->get_job(id).ok()) << id;
}

// Stopping while the image is being cut: libraft closes once the cut is
// done (raft_uv's close does not know about it), and nothing acknowledged
// is lost.
TEST(RaftNode, StopWhileASnapshotImageIsBeingCutKeepsEveryAcknowledgedWrite) {
  TempDir dir;
  int port = free_port();
  std::vector<std::string> ids;
  {
    GatedStore* gate = nullptr;
    Node n = start_gated_node(dir, port, &gate);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 6; ++i) {
      model::Job job = make_job(str_cat("acked-", i));
      ids.push_back(job.id);
      auto out = propose_sync(*n.raft, {{model::PutJob{job, 0}}});
      ASSERT_TRUE(out.ok() && out->results[0].ok());
    }
    ASSERT_TRUE(gate->wait_cut_started(absl::Seconds(30)));
    auto stopped = std::async(std::launch::async, [&n] { n.raft->stop(); });
    // Either order of close and cut end must be safe; this one lets stop()
    // reach libraft's close first on most runs.
    absl::SleepFor(absl::Milliseconds(200));
    gate->release();
    ASSERT_EQ(stopped.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  }
  Node n = start_node(dir, port, 4);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  for (const auto& id : ids) EXPECT_TRUE(n.store->get_job(id).ok()) << id;
}

TEST(RaftNode, RefusesProposalsBeyondThePendingBound) {
  TempDir dir;
  Node n = start_node(dir, free_port(), 8192, /*max_pending=*/1);
  ASSERT_TRUE(wait_caught_up(*n.raft));
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, refused = 0, applied = 0;
  constexpr int kProposals = 10;
  for (int i = 0; i < kProposals; ++i) {
    // Back to back: each one stays pending until its entry is on disk and
    // applied, far longer than it takes to make the next call.
    n.raft->propose({{model::PutJob{make_job(str_cat("bound-", i)), 0}}},
                    [&](Result<store::ApplyOutcome> r) {
                      std::lock_guard lock(mu);
                      if (r.ok()) {
                        ++applied;
                      } else if (r.error().code == ErrorCode::kUnavailable) {
                        ++refused;
                      }
                      ++done;
                      cv.notify_all();
                    });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return done == kProposals; }));
  EXPECT_GE(refused, 1);
  EXPECT_GE(applied, 1);
  EXPECT_EQ(refused + applied, kProposals);
  EXPECT_EQ(n.store->job_count(), static_cast<uint64_t>(applied));
}

TEST(RaftNode, RefusesToStartWhenTheStoreIsAheadOfTheLog) {
  TempDir dir;
  int port = free_port();
  {
    Node n = start_node(dir, port);
    ASSERT_TRUE(wait_caught_up(*n.raft));
    for (int i = 0; i < 5; ++i) {
      auto out = propose_sync(*n.raft, {{model::PutJob{make_job(str_cat("ahead-", i)), 0}}});
      ASSERT_TRUE(out.ok());
    }
    n.raft->stop();
  }
  fs::remove_all(dir.path("raft"));
  auto st = store::Store::open(dir.path("store"));
  ASSERT_TRUE(st.ok());
  RaftConfig cfg;
  cfg.address = str_cat("127.0.0.1:", port);
  cfg.dir = dir.path("raft");
  auto r = RaftNode::start(cfg, st->get());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("do not belong together"), std::string::npos)
      << r.error().message;
}

// ---- membership (several nodes in this process, on loopback) ----

Node start_member(const TempDir& dir, uint64_t id, int port, bool join) {
  Node n;
  auto st = store::Store::open(dir.path(str_cat("store-", id)));
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  n.store = std::move(st).value();
  RaftConfig cfg;
  cfg.id = id;
  cfg.address = str_cat("127.0.0.1:", port);
  cfg.dir = dir.path(str_cat("raft-", id));
  cfg.join = join;
  cfg.heartbeat_timeout = absl::Milliseconds(50);
  cfg.election_timeout = absl::Milliseconds(500);
  auto r = RaftNode::start(cfg, n.store.get());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  n.raft = std::move(r).value();
  return n;
}

Status change_sync(const std::function<void(RaftNode::DoneCallback)>& op) {
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  op([done](Status st) { done->set_value(std::move(st)); });
  if (fut.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    return Error::internal("membership change timed out");
  }
  return fut.get();
}

template <typename Pred>
bool eventually(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

std::string role_of(const RaftStatus& s, uint64_t id) {
  for (const auto& m : s.members) {
    if (m.id == id) return m.role;
  }
  return "";
}

// One test walks the whole life of a membership: a joiner that never
// bootstrapped is added and promoted (catching up by snapshot), leadership
// moves to it, the old leader is removed, a snapshot is taken on request.
TEST(RaftNode, JoinPromoteTransferRemoveAndSnapshotOnRequest) {
  TempDir dir;
  Node a = start_member(dir, 1, free_port(), /*join=*/false);
  ASSERT_TRUE(wait_caught_up(*a.raft));
  // Enough entries, and a snapshot, that the joiner needs it to catch up.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(propose_sync(*a.raft, {{model::PutJob{make_job(str_cat("j", i)), 0}}}).ok());
  }
  auto snap = std::make_shared<std::promise<Result<uint64_t>>>();
  auto snap_fut = snap->get_future();
  a.raft->take_snapshot([snap](Result<uint64_t> r) { snap->set_value(std::move(r)); });
  ASSERT_EQ(snap_fut.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto snap_index = snap_fut.get();
  ASSERT_TRUE(snap_index.ok()) << snap_index.error().message;
  EXPECT_GE(*snap_index, a.store->applied_index() - 1);

  int port_b = free_port();
  Node b = start_member(dir, 2, port_b, /*join=*/true);
  EXPECT_TRUE(b.raft->status().members.empty()) << "a joiner does not bootstrap";

  // Followers and joiners refuse membership changes.
  EXPECT_EQ(change_sync([&](auto cb) { b.raft->remove_member(1, cb); }).error().code,
            ErrorCode::kNoLeader);

  ASSERT_TRUE(change_sync([&](auto cb) {
                a.raft->add_member(2, str_cat("127.0.0.1:", port_b), MemberRole::kVoter, false, cb);
              }).ok());
  EXPECT_EQ(role_of(a.raft->status(), 2), "voter");
  ASSERT_TRUE(eventually([&] { return b.store->job_count() == 20; }));
  // The same add again is a no-op; the address of another member is refused.
  EXPECT_TRUE(change_sync([&](auto cb) {
                a.raft->add_member(2, str_cat("127.0.0.1:", port_b), MemberRole::kVoter, false, cb);
              }).ok());
  EXPECT_EQ(change_sync([&](auto cb) {
              a.raft->add_member(3, str_cat("127.0.0.1:", port_b), MemberRole::kVoter, false, cb);
            })
                .error()
                .code,
            ErrorCode::kConflict);
  // The leader does not remove itself.
  EXPECT_EQ(change_sync([&](auto cb) { a.raft->remove_member(1, cb); }).error().code,
            ErrorCode::kConflict);
  EXPECT_EQ(change_sync([&](auto cb) { a.raft->remove_member(99, cb); }).error().code,
            ErrorCode::kNotFound);

  ASSERT_TRUE(change_sync([&](auto cb) { a.raft->transfer_leadership(2, cb); }).ok());
  ASSERT_TRUE(eventually([&] {
    RaftStatus s = b.raft->status();
    return s.role == Role::kLeader && s.caught_up;
  }));
  ASSERT_TRUE(change_sync([&](auto cb) { b.raft->remove_member(1, cb); }).ok());
  EXPECT_EQ(role_of(b.raft->status(), 1), "");
  // The survivor alone is a majority: writes still commit.
  EXPECT_TRUE(propose_sync(*b.raft, {{model::PutJob{make_job("after"), 0}}}).ok());
  EXPECT_EQ(b.store->job_count(), 21u);
  a.raft->stop();
  b.raft->stop();
}

TEST(RaftNode, TransferWithoutAnotherVoterIsNotFound) {
  TempDir dir;
  Node n = start_node(dir, free_port());
  ASSERT_TRUE(wait_caught_up(*n.raft));
  EXPECT_EQ(change_sync([&](auto cb) { n.raft->transfer_leadership(0, cb); }).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(n.raft->status().role, Role::kLeader);
}

// A store write slower than the election timeout on the leader (a slow
// disk, a large entry on a large store) used to hold libraft's loop, so
// the followers heard no heartbeat and elected another leader. Entries are
// applied on their own thread: the leader keeps its term and its place
// while its store is slow, and what was proposed after is answered after.
TEST(RaftNode, ASlowStoreWriteOnTheLeaderKeepsItsLeadership) {
  TempDir dir;
  constexpr uint64_t kNodes = 3;
  std::vector<Peer> voters;
  for (uint64_t id = 1; id <= kNodes; ++id) {
    voters.push_back({id, str_cat("127.0.0.1:", free_port())});
  }
  std::atomic<uint64_t> slow_node{0};
  std::atomic<bool> slow_started{false};
  std::vector<Node> nodes;
  for (const Peer& peer : voters) {
    Node n;
    auto st = store::Store::open(dir.path(str_cat("store-", peer.id)));
    ASSERT_TRUE(st.ok()) << st.error().message;
    n.store = std::move(st).value();
    RaftConfig cfg;
    cfg.id = peer.id;
    cfg.address = peer.address;
    cfg.dir = dir.path(str_cat("raft-", peer.id));
    cfg.bootstrap_voters = voters;
    cfg.heartbeat_timeout = absl::Milliseconds(50);
    cfg.election_timeout = absl::Milliseconds(400);
    // The hook runs inside apply, after the store write: a pause here is a
    // slow write as far as libraft can tell.
    cfg.on_applied = [&slow_node, &slow_started, id = peer.id](const model::CommandBatch& batch,
                                                                const store::ApplyOutcome&) {
      if (slow_node.load() != id) return;
      for (const auto& cmd : batch.commands) {
        const auto* put = std::get_if<model::PutJob>(&cmd);
        if (put != nullptr && put->job.name == "slow") {
          slow_started = true;
          absl::SleepFor(absl::Seconds(2));
        }
      }
    };
    auto r = RaftNode::start(cfg, n.store.get());
    ASSERT_TRUE(r.ok()) << r.error().message;
    n.raft = std::move(r).value();
    nodes.push_back(std::move(n));
  }
  RaftNode* leader = nullptr;
  uint64_t leader_id = 0;
  ASSERT_TRUE(eventually([&] {
    for (const Node& n : nodes) {
      RaftStatus s = n.raft->status();
      if (s.role == Role::kLeader && s.caught_up) {
        leader = n.raft.get();
        leader_id = s.id;
        return true;
      }
    }
    return false;
  }));
  const uint64_t term = leader->status().term;
  slow_node = leader_id;

  std::promise<Result<store::ApplyOutcome>> slow_done, after_done;
  leader->propose({{model::PutJob{make_job("slow"), 0}}},
                  [&](Result<store::ApplyOutcome> r) { slow_done.set_value(std::move(r)); });
  ASSERT_TRUE(eventually([&] { return slow_started.load(); }));
  leader->propose({{model::PutJob{make_job("after"), 0}}},
                  [&](Result<store::ApplyOutcome> r) { after_done.set_value(std::move(r)); });
  auto slow = slow_done.get_future();
  auto after = after_done.get_future();
  ASSERT_EQ(slow.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(after.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto slow_outcome = slow.get();
  auto after_outcome = after.get();
  ASSERT_TRUE(slow_outcome.ok()) << slow_outcome.error().message;
  ASSERT_TRUE(after_outcome.ok()) << after_outcome.error().message;
  EXPECT_LT(slow_outcome->index, after_outcome->index);
  for (const Node& n : nodes) {
    RaftStatus s = n.raft->status();
    EXPECT_EQ(s.term, term) << "node " << s.id << " saw an election";
    EXPECT_EQ(s.leader_id, leader_id) << "node " << s.id;
  }
  EXPECT_EQ(leader->status().role, Role::kLeader);
  for (Node& n : nodes) n.raft->stop();
}

}  // namespace
}  // namespace chronos::raft
