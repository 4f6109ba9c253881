#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/result.h"
#include "model/command.h"
#include "raft/state_machine.h"
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
  // Join an existing cluster instead: an empty `dir` is not bootstrapped;
  // the node waits (as a non-member follower) until a leader adds it.
  bool join = false;
  // The store was restored from a backup into a new cluster: the first time
  // this node leads, it snapshots and drops the whole log (new members must
  // start from a snapshot: no log entry explains the restored state), then
  // calls on_log_compacted (loop thread). Until then add_member refuses.
  bool compact_log_on_first_leadership = false;
  std::function<void()> on_log_compacted;
  absl::Duration heartbeat_timeout = absl::Milliseconds(100);
  absl::Duration election_timeout = absl::Milliseconds(1000);
  unsigned snapshot_threshold = 8192;  // entries between snapshots
  unsigned snapshot_trailing = 2048;   // entries kept behind a snapshot
  // From this snapshot image size on, the next snapshot also waits for log
  // proportional to the image (see pace_snapshots in raft_node.cc); tests
  // lower it to see pacing on a small store.
  uint64_t paced_snapshot_bytes = 8ull << 20;
  size_t max_pending_proposals = 4096;  // proposals admitted and not yet completed
  // Group commit: proposals queued while this many entries of the leader's
  // are appended and not yet applied wait, then go out together as one
  // entry (raft_node.cc drain_queue); 2 overlaps the disk write of one
  // entry with the replication of the other.
  unsigned max_inflight_entries = 2;
  // Called on the apply thread after every entry is applied to the store
  // (proposed here or not, leader or follower; not for skipped replays),
  // with what apply did. Must return at once: record what changed and hand
  // work elsewhere.
  AppliedHook on_applied;
};

enum class Role : uint8_t { kUnavailable, kFollower, kCandidate, kLeader };
std::string_view to_string(Role r);

struct MemberInfo {
  uint64_t id = 0;
  std::string address;
  std::string role;  // voter | standby | spare
  // As this node sees the member: on the leader, whether it answered within
  // the election timeout (always true for the leader itself); on a follower,
  // known only for the leader (a message within the election timeout).
  std::optional<bool> reachable;
  // Milliseconds since this node last heard from the member: a follower
  // knows it for the leader only.
  std::optional<int64_t> last_contact_ms;
  // On the leader: the highest log index known to be replicated there.
  std::optional<uint64_t> match_index;
};

enum class MemberRole : uint8_t { kVoter, kStandby, kSpare };
std::string_view to_string(MemberRole r);
// "voter" | "standby" | "spare"; nullopt otherwise.
std::optional<MemberRole> parse_member_role(std::string_view s);

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
  // On a caught-up leader: its leadership lease (raft/leadership.h), as a
  // time of the process's monotonic clock (Clock::monotonic()): until then
  // no other node can have been elected. -InfiniteDuration() otherwise.
  // Compare it with the monotonic clock at the moment of acting, never with
  // the time the status was read.
  absl::Duration lease_until = -absl::InfiniteDuration();
  std::vector<MemberInfo> members;
};

// One Raft member (libraft + raft_uv) driving the store as its state machine.
//
//   api/sched ──propose()──▶ [bounded queue] ──uv_async──▶ loop thread
//                                                           │ raft_apply
//                                     commit ◀──replicate───┘
//                                        │ fsm apply: copy into the Applier's queue
//                                        ▼
//        apply thread: decode → Store::apply → on_applied → completion callback
//
// Thread safety: propose(), barrier(), status() and stop() may be called from
// any thread. Proposal and barrier completions run on the apply thread (a
// failure may be reported on the loop thread), membership and maintenance
// callbacks on the loop thread; all must return quickly (hand work to
// another executor) and must not call stop().
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

  // The leader should hold its lease at least until `until` (monotonic, as
  // RaftStatus::lease_until): the scheduler's next send. The lease is
  // renewed ahead of it with a barrier when nothing else of this leader's
  // commits; -InfiniteDuration() wants none (an idle leader writes
  // nothing). Any thread; the latest call wins.
  virtual void want_lease_until(absl::Duration until) = 0;

  // ---- membership and maintenance (leader only unless noted; any thread) ----
  // Callbacks run on the loop thread. Errors:
  // kNoLeader (not the leader, or leadership lost meanwhile), kConflict
  // (another membership change is in progress; an id or address already
  // used by a different member; removing the leader itself),
  // kNotFound (no such member), kUnavailable (stopping, queue full).
  using DoneCallback = std::function<void(Status)>;

  // Adds server `id` at `address` as a spare, then assigns `role`; for a
  // voter libraft first replicates the log to it (or sends a snapshot)
  // until it has caught up, so `done` may take as long as that. Adding a
  // member that already has this id, address and role is a no-op; one with
  // this id and address but another role is re-assigned. `must_exist`
  // refuses (kNotFound) a server that is not a member when the request
  // reaches the loop, so a re-registration never re-adds a removed node.
  // kUnavailable while a restored cluster writes its first snapshot.
  virtual void add_member(uint64_t id, std::string address, MemberRole role, bool must_exist,
                          DoneCallback done) = 0;
  virtual void remove_member(uint64_t id, DoneCallback done) = 0;
  // Hands leadership to voter `id` (0: the most up-to-date voter). `done`
  // gets ok once another node leads, kUnavailable when none took over
  // within the election timeout, kNotFound when there is no other voter
  // (or no such member), kConflict when `id` is not a voter or a transfer
  // is already running.
  virtual void transfer_leadership(uint64_t id, DoneCallback done) = 0;
  // Takes a snapshot on the leader now and reports the index it covers.
  // kConflict while one is already being taken; kNoLeader on a follower.
  virtual void take_snapshot(std::function<void(Result<uint64_t>)> done) = 0;

  // Stops the loop: queued proposals complete with kUnavailable, those
  // already inside libraft with the error libraft closes them with
  // (kUnavailable or kNoLeader); committed entries still queued to the
  // applier are applied and their proposers answered. Blocks until the
  // loop and apply threads have exited.
  virtual void stop() = 0;
};

// Raft ids are integers; node ids in the config are names ("node-1"). A
// decimal name maps to itself, any other to a stable 64-bit hash of it.
uint64_t raft_id_for(std::string_view node_id);

}  // namespace chronos::raft
