// Group commit under snapshots (issue 12): three RaftNodes on loopback,
// a snapshot every few entries, concurrent proposers whose proposals the
// leader packs into large entries, and a follower restarted now and then
// so that it catches up from the leader's snapshots. libraft 0.15 crashed
// on this mix (a NULL dereference in refsDecr with large entries under
// snapshots), which is why group commit was once taken back; `make test`
// runs it under ASan+UBSan with the instrumented libraft too.
//
// CHRONOS_RAFT_STRESS_ITERATIONS overrides the number of rounds (1 000).

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "base/check.h"
#include "base/ids.h"
#include "base/strings.h"
#include "model/job.h"
#include "raft/raft_node.h"
#include "raft/tests/free_port.h"

namespace chronos::raft {
namespace {

namespace fs = std::filesystem;


constexpr int kNodes = 3;
constexpr int kProposers = 4;

struct Member {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<RaftNode> raft;
};

class Cluster {
 public:
  Cluster() : dir_(fs::temp_directory_path() / str_cat("chronos-stress-", new_uuid_v4())) {
    for (int i = 0; i < kNodes; ++i) peers_.push_back({uint64_t(i + 1), ""});
    for (auto& p : peers_) p.address = str_cat("127.0.0.1:", free_port());
    for (int i = 0; i < kNodes; ++i) start(i);
  }
  ~Cluster() {
    for (auto& m : members_) {
      if (m.raft) m.raft->stop();
    }
    members_.clear();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(int i) {
    if (members_.size() <= size_t(i)) members_.resize(i + 1);
    auto st = store::Store::open((dir_ / str_cat("store-", i)).string());
    CHRONOS_CHECK(st.ok()) << st.error().message;
    members_[i].store = std::move(st).value();
    RaftConfig cfg;
    cfg.id = peers_[i].id;
    cfg.address = peers_[i].address;
    cfg.dir = (dir_ / str_cat("raft-", i)).string();
    cfg.bootstrap_voters = peers_;
    cfg.heartbeat_timeout = absl::Milliseconds(50);
    // Generous for a sanitizer build on two shared cores: leader changes
    // are allowed (their proposals fail and are not counted) but rare.
    cfg.election_timeout = absl::Milliseconds(1000);
    cfg.snapshot_threshold = 4;
    cfg.snapshot_trailing = 2;
    auto r = RaftNode::start(cfg, members_[i].store.get());
    CHRONOS_CHECK(r.ok()) << r.error().message;
    members_[i].raft = std::move(r).value();
  }

  void restart(int i) {
    members_[i].raft->stop();
    members_[i].raft.reset();
    members_[i].store.reset();
    start(i);
  }

  // The member that says it leads and has applied its term's barrier.
  int leader(absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      for (int i = 0; i < kNodes; ++i) {
        RaftStatus s = members_[i].raft->status();
        if (s.role == Role::kLeader && s.caught_up) return i;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return -1;
  }

  Member& operator[](int i) { return members_[i]; }

 private:
  fs::path dir_;
  std::vector<Peer> peers_;
  std::vector<Member> members_;
};

model::Job make_job(const std::string& name, size_t description_bytes) {
  model::Job job;
  job.id = new_uuid_v4();
  job.name = name;
  job.schedule = "* * * * *";
  job.description = std::string(description_bytes, 'd');
  job.webhook = model::Webhook{};
  job.webhook->url = "http://127.0.0.1:9/hook";
  return job;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

// One round: every proposer proposes at once on the leader (so they queue
// behind each other and share entries); the round waits for every answer.
// Jobs created two rounds ago are deleted in the same proposals, which
// keeps the store (and every snapshot image) small.
TEST(GroupCommitStress, SnapshotsEveryFewEntriesUnderConcurrentLargeProposals) {
  const int iterations = env_int("CHRONOS_RAFT_STRESS_ITERATIONS", 1000);
  // As the chronos binary does (main.cc): a peer restarted mid-write must
  // not kill the process writing to it.
  signal(SIGPIPE, SIG_IGN);
  Cluster c;
  std::set<std::string> live;                    // acknowledged creates not deleted
  std::vector<std::vector<std::string>> rounds;  // ids created per round
  int acked = 0, failed = 0, grouped_rounds = 0;
  for (int it = 0; it < iterations; ++it) {
    if (it > 0 && it % 250 == 0) {
      const int l = c.leader();
      ASSERT_GE(l, 0) << "no leader at round " << it;
      c.restart((l + 1 + (it / 250) % 2) % kNodes);  // one follower, then the other
    }
    const int l = c.leader();
    ASSERT_GE(l, 0) << "no leader at round " << it;
    std::vector<std::string> to_delete;
    if (rounds.size() >= 2) to_delete = rounds[rounds.size() - 2];
    std::mutex mu;
    std::condition_variable cv;
    int answered = 0;
    std::set<uint64_t> indexes;
    std::vector<std::string> created;
    for (int p = 0; p < kProposers; ++p) {
      model::CommandBatch batch;
      // Sizes from a few hundred bytes to ~96 KiB, so groups reach the
      // group bound and entries are large.
      const size_t size = (it * 7919 + p * 104729) % 4 == 0 ? 96 * 1024 : 64 + (it + p) % 512;
      model::Job job = make_job(str_cat("stress-", it, "-", p), size);
      const std::string id = job.id;
      batch.commands.push_back(model::PutJob{std::move(job), 0});
      for (size_t d = p; d < to_delete.size(); d += kProposers) {
        batch.commands.push_back(model::DeleteJob{to_delete[d], 0});
      }
      c[l].raft->propose(std::move(batch), [&, id](Result<store::ApplyOutcome> r) {
        std::lock_guard lock(mu);
        if (r.ok() && r->results[0].ok()) {
          created.push_back(id);
          indexes.insert(r->index);
          for (size_t k = 1; k < r->results.size(); ++k) {
            EXPECT_TRUE(r->results[k].ok()) << "delete in round " << it;
          }
          ++acked;
        } else {
          ++failed;
        }
        ++answered;
        cv.notify_all();
      });
    }
    {
      std::unique_lock lock(mu);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60),
                              [&] { return answered == kProposers; }))
          << "round " << it << " not answered";
      if (indexes.size() < created.size()) ++grouped_rounds;
    }
    // A round whose proposals failed (a leader change) may have applied
    // some of them anyway: those ids are simply not counted.
    for (const auto& id : to_delete) live.erase(id);
    for (const auto& id : created) live.insert(id);
    rounds.push_back(created);
  }
  EXPECT_GT(acked, iterations * kProposers * 9 / 10);
  EXPECT_GT(grouped_rounds, 0) << "no two proposals ever shared an entry";
  // Every member ends with every acknowledged live job.
  for (int i = 0; i < kNodes; ++i) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    bool all = false;
    while (!all && absl::Now() < deadline) {
      all = true;
      for (const auto& id : live) {
        if (!c[i].store->get_job(id).ok()) {
          all = false;
          break;
        }
      }
      if (!all) absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_TRUE(all) << "member " << i << " lacks an acknowledged job";
  }
  std::printf("stress: %d rounds, %d acknowledged, %d failed, %d rounds with a shared entry\n",
              iterations, acked, failed, grouped_rounds);
}

}  // namespace
}  // namespace chronos::raft
