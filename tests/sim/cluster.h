#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "model/command.h"
#include "raft/applier.h"
#include "raft/leadership.h"
#include "raft/state_machine.h"
#include "store/store.h"

#include "sim/fixture_glue.h"

namespace chronos::sim {

struct ClusterOptions {
  // One empty store per server, opened by the caller (opening RocksDB
  // costs tens of milliseconds, so the test opens the next seed's stores
  // while a seed runs). The cluster owns them from create() on.
  std::vector<std::unique_ptr<store::Store>> stores;
  // The node's defaults (node/config.h); pre-vote is always on, as there.
  // One heartbeat per server: it is also the server's tick interval, and
  // the fixture starts every server's ticks at time 0; equal intervals keep
  // every server's election timer firing on the same instants, which makes
  // split votes far more common than between real nodes. Give distinct ones.
  std::vector<unsigned> heartbeat_timeout_ms;
  unsigned election_timeout_ms = 400;
  // The election timeout each server draws first (in [election, 2 x
  // election]); see set_randomized_election_timeout for the later ones.
  std::vector<unsigned> first_election_timeout_ms;
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 2048;
  // The processes' monotonic clock (the leadership lease); it must move
  // with the fixture's time.
  const Clock* clock = nullptr;
  // libraft's diagnostics (error to info) of server `i`, if set.
  std::function<void(unsigned i, std::string_view message)> trace;
};

// N libraft servers inside raft_fixture: in-memory log, disk and network,
// one fake clock in milliseconds that only raft_fixture_step() advances.
// Each server's FSM is raft/'s own Applier and StateMachine over a real
// store::Store (entries queued at raft_last_applied() + 1 and applied one
// per step, so the store lags libraft as raft_node's apply thread lets it;
// restore unless already held), and its
// leadership (the barrier per term, the lease and its renewal) raft/'s own
// LeadershipTracker, as in raft/raft_node.cc; only how libraft is driven
// differs. The scheduler driver, targets and clients live outside (World).
//
//   World ──propose()──▶ raft_apply ──fixture network──▶ peers
//     ▲                                    │ commit
//     │ callbacks (inside step())          ▼
//     └───────────── AppliedHook ◀── FSM apply ──▶ store::Store (RocksDB)
//
// Faults: kill/revive (the server stops/starts receiving and sending) and
// network sides: two servers exchange messages only when both are alive and
// on the same side (applied with raft_fixture_saturate/desaturate).
// restart_process() models the crash of the process around a server: what
// the node kept in memory (pending completions, the per-term barrier) is
// gone. The fixture cannot restart a struct raft, so libraft's state,
// role included, survives: a server that comes back may still lead its
// old term and must pass a new barrier before it counts as caught up.
//
// Single-threaded. Callbacks (proposal completions, AppliedHook) run inside
// step() or propose(); they must not call step() or destroy the cluster.
class Cluster {
 public:
  using ProposeCallback = std::function<void(Result<store::ApplyOutcome>)>;
  // A server applied a batch (not for entries skipped as replays).
  using AppliedHook =
      std::function<void(unsigned server, const model::CommandBatch&, const store::ApplyOutcome&)>;

  static Result<std::unique_ptr<Cluster>> create(ClusterOptions options, AppliedHook on_applied);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  unsigned size() const { return static_cast<unsigned>(servers_.size()); }
  uint64_t now_ms() const;
  // One fixture event (a tick, a message, a disk write).
  void step();

  store::Store& store(unsigned i);
  int state(unsigned i);  // CR_FOLLOWER, CR_CANDIDATE, CR_LEADER, ...
  uint64_t last_index(unsigned i);
  uint64_t commit_index(unsigned i);
  uint64_t last_applied(unsigned i);
  bool alive(unsigned i) const;
  bool is_leader(unsigned i);
  uint64_t term(unsigned i);
  // What raft_node's status reports as caught_up on a leader: a barrier of
  // its current term has been applied.
  bool caught_up(unsigned i);
  // RaftStatus::lease_until of server i (on the Clock's monotonic time),
  // and RaftNode::want_lease_until.
  absl::Duration lease_until(unsigned i);
  void want_lease_until(unsigned i, absl::Duration until);
  // raft_node's periodic status refresh: a leader proposes its term's
  // barrier and lease renewals. Call for every live server after each step.
  void refresh(unsigned i);

  void kill(unsigned i);
  void revive(unsigned i);
  void restart_process(unsigned i);
  void set_side(unsigned i, int side);
  int side(unsigned i) const { return sides_[i]; }
  // Alive and on a side with a majority of all servers alive on it.
  bool in_majority(unsigned i) const;
  bool majority_live() const;
  void set_network_latency(unsigned i, unsigned ms);
  // What server i draws at its next election-timer reset (the fixture's
  // io returns one value until it is given another).
  void set_randomized_election_timeout(unsigned i, unsigned ms);
  // When server i's next timeout fires; it moves when the timer is reset.
  uint64_t next_timeout(unsigned i);

  // Proposes `batch` on server i (which must think it is the leader, else
  // kNoLeader at once). `cb` gets the apply outcome on commit, or an error
  // (kNoLeader: leadership lost before commit; the entry may still commit).
  // A proposal bound to the process is forgotten when restart_process(i)
  // runs first (its proposer died with it); an unbound one (a client's
  // request) still completes.
  void propose(unsigned i, const model::CommandBatch& batch, ProposeCallback cb,
               bool bound_to_process = true);

  uint64_t snapshots_taken() const;
  uint64_t snapshots_restored() const;

 private:
  struct Server {
    Cluster* cluster = nullptr;
    unsigned index = 0;
    std::unique_ptr<store::Store> store;
    cr_fsm fsm{};
    uint64_t generation = 0;     // bumped by restart_process
    std::unique_ptr<raft::StateMachine> state_machine;
    std::unique_ptr<raft::Applier> applier;  // over state_machine
    std::unique_ptr<raft::LeadershipTracker> leadership;  // the process's: replaced by a restart
    absl::Duration lease_wanted_until = -absl::InfiniteDuration();
    uint64_t snapshots = 0;
    uint64_t restores = 0;
  };
  struct Proposal;
  struct Barrier;

  Cluster() = default;
  void apply_links();
  // Applies everything queued to s's applier.
  void drain(Server& s);

  static int fsm_apply(void* data, const void* base, size_t len, void** result);
  static int fsm_snapshot(void* data, cr_buffer** bufs, unsigned* n);
  static int fsm_snapshot_finalize(void* data, cr_buffer* bufs, unsigned n);
  static int fsm_restore(void* data, void* base, size_t len);
  static void on_apply_done(void* data, uint64_t index, int status, void* result);
  static void on_barrier_done(void* data, int status);

  sf_cluster* fixture_ = nullptr;
  const Clock* clock_ = nullptr;
  unsigned election_timeout_ms_ = 0;
  bool closing_ = false;
  AppliedHook on_applied_;
  std::function<void(unsigned, std::string_view)> trace_;
  std::vector<std::unique_ptr<Server>> servers_;  // stable addresses: fsm.data points here
  std::vector<int> sides_;
};

}  // namespace chronos::sim
