#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "model/command.h"
#include "raft/leadership.h"
#include "raft/state_machine.h"
#include "store/store.h"

extern "C" {
#include <raft.h>
#include <raft/fixture.h>
}

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
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 2048;
  // The processes' monotonic clock (the leadership lease); it must move
  // with the fixture's time.
  const Clock* clock = nullptr;
};

// N libraft servers inside raft_fixture: in-memory log, disk and network,
// one fake clock in milliseconds that only raft_fixture_step() advances.
// Each server's FSM is raft/'s own StateMachine over a real store::Store
// (apply at raft_last_applied() + 1, restore unless already held), and its
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

  struct raft* raft(unsigned i);
  store::Store& store(unsigned i);
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
  void set_randomized_election_timeout(unsigned i, unsigned ms);

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
    struct raft_fsm fsm {};
    struct raft* raft = nullptr;
    std::set<uint64_t> awaited;  // indexes of our pending proposals (raft_node's awaited_indexes_)
    uint64_t generation = 0;     // bumped by restart_process
    std::unique_ptr<raft::StateMachine> state_machine;
    std::unique_ptr<raft::LeadershipTracker> leadership;  // the process's: replaced by a restart
    absl::Duration lease_wanted_until = -absl::InfiniteDuration();
    uint64_t snapshots = 0;
    uint64_t restores = 0;
    // The fixture io's own append/truncate (see io_truncate) and the length
    // of its persisted-entries array, which they change.
    int (*fixture_append)(struct raft_io*, struct raft_io_append*, const struct raft_entry[],
                          unsigned, raft_io_append_cb) = nullptr;
    int (*fixture_truncate)(struct raft_io*, raft_index) = nullptr;
    uint64_t persisted = 0;
  };
  struct Proposal;
  struct Barrier;
  struct Append;

  Cluster() = default;
  void apply_links();

  static int fsm_apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result);
  static int fsm_snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int fsm_snapshot_finalize(struct raft_fsm* fsm, struct raft_buffer* bufs[],
                                   unsigned* n_bufs);
  static int fsm_restore(struct raft_fsm* fsm, struct raft_buffer* buf);
  static Server& server_of(struct raft_io* io);
  static int io_append(struct raft_io* io, struct raft_io_append* req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
  static void io_append_done(struct raft_io_append* req, int status);
  static int io_truncate(struct raft_io* io, raft_index index);
  static void on_apply_done(struct raft_apply* req, int status, void* result);
  static void on_barrier_done(struct raft_barrier* req, int status);

  struct raft_fixture fixture_;
  const Clock* clock_ = nullptr;
  unsigned election_timeout_ms_ = 0;
  bool fixture_open_ = false;
  bool closing_ = false;
  AppliedHook on_applied_;
  std::vector<std::unique_ptr<Server>> servers_;  // stable addresses: fsm.data points here
  std::vector<int> sides_;
};

}  // namespace chronos::sim
