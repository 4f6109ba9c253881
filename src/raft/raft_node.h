#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/result.h"
#include "model/command.h"
#include "store/store.h"

namespace chronos::raft {

struct Peer {
  uint64_t id = 0;
  std::string address;  // host:port (IPv4 dotted quad for libraft's TCP transport)
};

struct RaftConfig {
  uint64_t id = 1;
  std::string address = "127.0.0.1:7000";
  std::string dir;  // libraft's own directory (log segments, snapshots, metadata)
  // Initial voters, used only to bootstrap an empty `dir`; empty means "just
  // this node" (the single-node default). A restart never re-bootstraps.
  std::vector<Peer> bootstrap_voters;
  absl::Duration heartbeat_timeout = absl::Milliseconds(100);
  absl::Duration election_timeout = absl::Milliseconds(1000);
  unsigned snapshot_threshold = 8192;  // entries between snapshots
  unsigned snapshot_trailing = 2048;   // entries kept behind a snapshot
  size_t max_pending_proposals = 4096; // proposals admitted and not yet completed
  // Called on the loop thread after every entry is applied to the store
  // (proposed here or not, leader or follower; not for skipped replays).
  // Must return at once: record what changed and hand work elsewhere.
  std::function<void(const model::CommandBatch&)> on_applied;
};

enum class Role : uint8_t { kUnavailable, kFollower, kCandidate, kLeader };
std::string_view to_string(Role r);

struct MemberInfo {
  uint64_t id = 0;
  std::string address;
  std::string role;  // voter | standby | spare
};

// A consistent copy of the node's Raft state, refreshed by the loop thread.
struct RaftStatus {
  uint64_t id = 0;
  std::string address;
  Role role = Role::kUnavailable;
  uint64_t leader_id = 0;  // 0 = unknown
  std::string leader_address;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  // True on a leader once an entry of its own term has been applied (so
  // everything committed before it is applied too), and on a follower that
  // knows a leader. Reads served from local state are then not behind.
  bool caught_up = false;
  std::vector<MemberInfo> members;
};

// One Raft member (libraft + raft_uv) driving the store as its state machine.
//
//   api/sched ──propose()──▶ [bounded queue] ──uv_async──▶ loop thread
//                                                           │ raft_apply
//                                     commit ◀──replicate───┘
//                                        │ fsm apply: decode → Store::apply
//                                        ▼
//                      completion callback (on the loop thread)
//
// Thread safety: propose(), barrier(), status() and stop() may be called from
// any thread. Completion callbacks run on the loop thread and must return
// quickly (hand work to another executor); they must not call stop().
// Lifecycle: start() → running → stop() (idempotent; also run by the
// destructor). The Store must outlive the node.
class RaftNode {
 public:
  using ProposeCallback = std::function<void(Result<store::ApplyOutcome>)>;
  using BarrierCallback = std::function<void(Status)>;

  virtual ~RaftNode() = default;

  // Opens (and on first start bootstraps) the node and starts its thread.
  static Result<std::unique_ptr<RaftNode>> start(const RaftConfig& config, store::Store* store);

  // Proposes `batch` as one log entry. `cb` gets the apply outcome once the
  // entry is committed and applied here; or kNoLeader when this node is not
  // the leader or lost leadership before the entry committed (it may still
  // commit under the next leader); kUnavailable when max_pending_proposals
  // are already pending or the node is stopping; kInternal when the batch
  // does not survive its own encoding. The batch is encoded on the calling
  // thread.
  virtual void propose(model::CommandBatch batch, ProposeCallback cb) = 0;

  // Completes once every entry committed before the call is applied here
  // (leader only; kNoLeader elsewhere).
  virtual void barrier(BarrierCallback cb) = 0;

  virtual RaftStatus status() const = 0;

  // Stops the loop: queued proposals complete with kUnavailable, those
  // already inside libraft with the error libraft closes them with
  // (kUnavailable or kNoLeader). Blocks until the loop thread has exited.
  virtual void stop() = 0;
};

// Raft ids are integers; node ids in the config are names ("node-1"). A
// decimal name maps to itself, any other to a stable 64-bit hash of it.
uint64_t raft_id_for(std::string_view node_id);

}  // namespace chronos::raft
