#include "raft/raft_node.h"

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "base/clock.h"
#include "base/strings.h"
#include "base/thread_name.h"
#include "raft/applier.h"
#include "raft/entry_framing.h"
#include "raft/leadership.h"
#include "raft/state_machine.h"
#include "store/snapshot_image.h"
#include "spdlog/spdlog.h"

#include "raft/libraft_glue.h"

namespace chronos::raft {

std::string_view to_string(Role r) {
  switch (r) {
    case Role::kUnavailable:
      return "unavailable";
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unavailable";
}

std::string_view to_string(MemberRole r) {
  switch (r) {
    case MemberRole::kVoter:
      return "voter";
    case MemberRole::kStandby:
      return "standby";
    case MemberRole::kSpare:
      return "spare";
  }
  return "spare";
}

std::optional<MemberRole> parse_member_role(std::string_view s) {
  if (s == "voter") return MemberRole::kVoter;
  if (s == "standby") return MemberRole::kStandby;
  if (s == "spare") return MemberRole::kSpare;
  return std::nullopt;
}

uint64_t raft_id_for(std::string_view node_id) {
  uint64_t id = 0;
  if (parse_int(node_id, &id) && id > 0) return id;
  uint64_t h = cr_digest(node_id.data(), node_id.size());
  return h == 0 ? 1 : h;
}

namespace {

Role role_of(int state) {
  switch (state) {
    case CR_FOLLOWER:
      return Role::kFollower;
    case CR_CANDIDATE:
      return Role::kCandidate;
    case CR_LEADER:
      return Role::kLeader;
    default:
      return Role::kUnavailable;
  }
}

std::string_view member_role(int role) {
  switch (role) {
    case CR_VOTER:
      return "voter";
    case CR_STANDBY:
      return "standby";
    default:
      return "spare";
  }
}

int raft_role_of(MemberRole r) {
  switch (r) {
    case MemberRole::kVoter:
      return CR_VOTER;
    case MemberRole::kStandby:
      return CR_STANDBY;
    case MemberRole::kSpare:
      return CR_SPARE;
  }
  return CR_SPARE;
}

// Errors of configuration changes, mapped to what an API client can act on.
Error change_error(int rv, std::string_view what) {
  switch (rv) {
    case CR_NOTLEADER:
    case CR_LEADERSHIPLOST:
      return Error{ErrorCode::kNoLeader, str_cat(what, ": ", cr_strerror(rv)), {}};
    case CR_CANTCHANGE:
      return Error{
          ErrorCode::kConflict,
          str_cat(what, ": another membership change is in progress; retry when it is done"),
          {}};
    case CR_DUPLICATEID:
    case CR_DUPLICATEADDRESS:
      return Error{ErrorCode::kConflict, str_cat(what, ": ", cr_strerror(rv)), {}};
    case CR_BADID:
    case CR_NOTFOUND:
      return Error{ErrorCode::kNotFound, str_cat(what, ": ", cr_strerror(rv)), {}};
    default:
      return Error{ErrorCode::kUnavailable, str_cat(what, ": ", cr_strerror(rv)), {}};
  }
}

Error raft_error(int rv, std::string_view what) {
  if (rv == CR_NOTLEADER || rv == CR_LEADERSHIPLOST) {
    return Error{ErrorCode::kNoLeader, str_cat(what, ": ", cr_strerror(rv)), {}};
  }
  return Error{ErrorCode::kUnavailable, str_cat(what, ": ", cr_strerror(rv)), {}};
}

class RaftNodeImpl;

// One queued proposal or barrier. Owned by the queue, then by libraft's
// request (req.data) until its callback fires.
struct Proposal {
  RaftNodeImpl* node = nullptr;
  std::string entry;                     // encoded batch (proposals only)
  uint32_t commands = 0;                 // in `entry`
  bool counted = false;                  // holds a slot of max_pending_proposals
  RaftNode::ProposeCallback propose_cb;  // set for proposals
  RaftNode::BarrierCallback barrier_cb;  // set for barriers
  // Set for loop tasks (membership, maintenance): `task` runs on the loop
  // thread and owns reporting from then on; `task_failed` reports a task
  // that never ran (shutdown, queue full).
  std::function<void()> task;
  std::function<void(Error)> task_failed;
  // When and in which term it was handed to libraft (the leadership lease
  // counts a committed entry from when it was proposed).
  absl::Duration proposed_at;
  uint64_t term = 0;
};

using Proposals = std::vector<std::unique_ptr<Proposal>>;

// Proposals that share one log entry (group commit), in queue order; owned
// by libraft's request (req.data) until on_group_applied. The members move
// to the applier's completion once the entry is proposed.
struct Group {
  RaftNodeImpl* node = nullptr;
  Proposals members;
  uint32_t commands = 0;
  size_t bytes = 0;
  // When and in which term the entry was handed to libraft (the leadership
  // lease counts a committed entry from when it was proposed).
  absl::Duration proposed_at;
  uint64_t term = 0;
};

class RaftNodeImpl final : public RaftNode {
 public:
  RaftNodeImpl(RaftConfig config, store::Store* store)
      : config_(std::move(config)),
        store_(store),
        state_machine_(store, config_.on_applied),
        applier_(&state_machine_, Applier::Limits{}),
        leadership_(config_.election_timeout) {}

  ~RaftNodeImpl() override { stop(); }

  Status init() {
    std::error_code ec;
    std::filesystem::create_directories(config_.dir, ec);
    if (ec) {
      return Error{ErrorCode::kUnavailable,
                   str_cat("cannot create raft dir ", config_.dir, ": ", ec.message()),
                   {}};
    }
    int rv = uv_loop_init(&loop_);
    if (rv != 0) return Error::internal(str_cat("uv_loop_init: ", uv_strerror(rv)));
    loop_open_ = true;
    rv = uv_async_init(&loop_, &wakeup_, &RaftNodeImpl::on_wakeup);
    if (rv != 0) return Error::internal(str_cat("uv_async_init: ", uv_strerror(rv)));
    wakeup_.data = this;
    rv = uv_timer_init(&loop_, &status_timer_);
    CHRONOS_CHECK(rv == 0) << "uv_timer_init: " << uv_strerror(rv);  // cannot fail in libuv 1.x
    status_timer_.data = this;
    handles_open_ = true;
    wakeup_open_ = true;

    const cr_fsm fsm{this,
                     &RaftNodeImpl::fsm_apply,
                     &RaftNodeImpl::fsm_snapshot,
                     &RaftNodeImpl::fsm_snapshot_async,
                     &RaftNodeImpl::fsm_snapshot_finalize,
                     &RaftNodeImpl::fsm_restore,
                     &RaftNodeImpl::fsm_snapshot_held};
    char errmsg[256] = {};
    rv = cr_open(&loop_, config_.dir.c_str(), config_.id, config_.address.c_str(), &fsm, &node_,
                 errmsg);
    if (rv != 0) return raft_error(rv, errmsg);
    raft_open_ = true;
    install_snapshot_ms_ = install_snapshot_timeout_ms(0);
    cr_set_timeouts(node_, static_cast<unsigned>(absl::ToInt64Milliseconds(config_.heartbeat_timeout)),
                    static_cast<unsigned>(absl::ToInt64Milliseconds(config_.election_timeout)),
                    install_snapshot_ms_);
    set_snapshot_threshold(config_.snapshot_threshold);
    set_snapshot_trailing(config_.snapshot_trailing);
    cr_set_pre_vote(node_, true);
    // A promotion to voter replicates to the member in rounds until one
    // completes within an election timeout; one that never catches up is
    // given up by libraft after these rounds (at most ~60 s), so it cannot
    // hold every other membership change forever.
    cr_set_catch_up(node_, kCatchUpRounds,
                    static_cast<unsigned>(absl::ToInt64Milliseconds(kMaxChangeDuration)) /
                        kCatchUpRounds);

    CHRONOS_RETURN_IF_ERROR(bootstrap_if_new());

    // Before raft_start, which may replay entries.
    apply_thread_ = std::thread([this] {
      name_this_thread("raft-apply");
      applier_.run();
    });

    // raft_start may already apply entries and take a snapshot on this
    // thread; the loop thread does not exist yet, so this thread is the
    // loop's only user until it starts.
    rv = cr_start(node_);
    if (rv != 0) return raft_error(rv, str_cat("raft_start (", cr_errmsg(node_), ")"));
    if (store_->applied_index() > cr_last_index(node_)) {
      // The store holds entries the log does not (e.g. raft/ was deleted or
      // replaced): new entries would reuse its indexes and be skipped.
      return Error{
          ErrorCode::kUnavailable,
          str_cat("the store has applied log index ", store_->applied_index(),
                  " but the Raft log in ", config_.dir, " ends at ", cr_last_index(node_),
                  ": the store and raft directories do not belong together"),
          {}};
    }
    refresh_status();
    uv_timer_start(&status_timer_, &RaftNodeImpl::on_status_timer, 20, 20);
    thread_ = std::thread([this] {
      name_this_thread("raft-loop");
      run_loop();
    });
    return ok_status();
  }

  void propose(model::CommandBatch batch, ProposeCallback cb) override {
    // submit() calls it once the entry is applied (or fails).
    CHRONOS_CHECK(cb != nullptr) << "propose() needs a callback";
    auto p = std::make_unique<Proposal>();
    p->node = this;
    p->propose_cb = std::move(cb);
    // Encoding (and proving the entry decodes) happens here, on the
    // caller's thread: the loop thread stays free, and an entry every
    // replica would refuse to apply never reaches the log.
    p->entry = model::encode_batch(batch);
    p->commands = static_cast<uint32_t>(batch.commands.size());
    if (auto check = model::decode_batch(p->entry); !check.ok()) {
      complete(p.get(), Error::internal(str_cat("refusing to propose an entry that does not "
                                                "decode: ",
                                                check.error().message)));
      return;
    }
    enqueue(std::move(p));
  }

  void barrier(BarrierCallback cb) override {
    auto p = std::make_unique<Proposal>();
    p->node = this;
    p->barrier_cb = std::move(cb);
    enqueue(std::move(p));
  }

  RaftStatus status() const override {
    RaftStatus s;
    {
      std::lock_guard lock(status_mu_);
      s = status_;
    }
    // Fresher than the last refresh: a proposer that was just answered
    // sees its entry applied (and so committed and in the log).
    s.applied_index = std::max(s.applied_index, applier_.last_applied());
    s.commit_index = std::max(s.commit_index, s.applied_index);
    s.last_index = std::max(s.last_index, s.commit_index);
    return s;
  }

  void want_lease_until(absl::Duration until) override {
    lease_wanted_until_ns_.store(absl::ToInt64Nanoseconds(until));
  }

  void add_member(uint64_t id, std::string address, MemberRole role, bool must_exist,
                  DoneCallback done) override {
    run_on_loop(
        [this, id, address = std::move(address), role, must_exist, done]() mutable {
          do_add(id, std::move(address), raft_role_of(role), must_exist, std::move(done));
        },
        done);
  }

  void remove_member(uint64_t id, DoneCallback done) override {
    run_on_loop([this, id, done]() mutable { do_remove(id, std::move(done)); }, done);
  }

  void transfer_leadership(uint64_t id, DoneCallback done) override {
    run_on_loop([this, id, done]() mutable { do_transfer(id, std::move(done)); }, done);
  }

  void take_snapshot(std::function<void(Result<uint64_t>)> done) override {
    run_on_loop([this, done]() mutable { do_snapshot(std::move(done)); },
                [done](Status st) { done(std::move(st).error()); });
  }

  void stop() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
      if (wakeup_open_) uv_async_send(&wakeup_);
    }
    if (thread_.joinable()) thread_.join();
    if (loop_open_ && !thread_started_) {
      // init() failed half-way: close what was opened, running the loop here.
      begin_shutdown();
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    if (loop_open_) {
      uv_loop_close(&loop_);
      loop_open_ = false;
    }
    // libraft is closed: nothing is queued any more. What was queued is
    // committed, so it is applied and its proposers answered before the
    // store is let go.
    applier_.finish();
    if (apply_thread_.joinable()) apply_thread_.join();
    if (node_ != nullptr) {
      cr_destroy(node_);
      node_ = nullptr;
    }
  }

 private:
  // ---- lifecycle (loop thread unless noted) ----

  // Called before raft_start on the caller's thread. An empty directory is
  // bootstrapped with the configured voters; a used one returns
  // CR_CANTBOOTSTRAP, which is the normal restart path.
  Status bootstrap_if_new() {
    if (config_.join) return ok_status();  // a leader adds it
    std::vector<Peer> voters = config_.bootstrap_voters;
    if (voters.empty()) voters.push_back({config_.id, config_.address});
    std::vector<uint64_t> ids;
    std::vector<const char*> addresses;
    for (const auto& v : voters) {
      ids.push_back(v.id);
      addresses.push_back(v.address.c_str());
    }
    int rv = cr_bootstrap(node_, static_cast<unsigned>(voters.size()), ids.data(), addresses.data());
    if (rv == 0) {
      spdlog::info("raft: bootstrapped a new cluster with {} voter(s)", voters.size());
      return ok_status();
    }
    if (rv == CR_CANTBOOTSTRAP) return ok_status();
    return raft_error(rv, str_cat("raft_bootstrap (", cr_errmsg(node_), ")"));
  }

  void run_loop() {
    thread_started_ = true;
    uv_run(&loop_, UV_RUN_DEFAULT);
  }

  void close_handles() {
    if (handles_open_) {
      {
        // Under the lock: callers send wakeups only while it is open.
        std::lock_guard lock(queue_mu_);
        wakeup_open_ = false;
        uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&status_timer_), nullptr);
      handles_open_ = false;
    }
  }

  void begin_shutdown() {
    if (closing_) return;
    closing_ = true;
    fail_queued(Error{ErrorCode::kUnavailable, "node is shutting down", {}});
    finish_snapshot(Error{ErrorCode::kUnavailable, "node is shutting down", {}});
    if (handles_open_) uv_timer_stop(&status_timer_);
    close_handles();
    close_raft();
  }

  // raft_close fails in-flight requests (their callbacks run with an error
  // status), then closes the io. libraft 0.15 crashed when closed while a
  // snapshot was being taken or written, so this used to wait for the
  // snapshot's finalize; 0.22 cancels a put in progress itself, and the
  // glue closes libraft only after an image it is cutting is done
  // (StopWhileSnapshottingUnderLoad, StopWhileASnapshotImageIsBeingCut).
  void close_raft() {
    if (!raft_open_ || !closing_) return;
    raft_open_ = false;
    cr_close(node_, &RaftNodeImpl::on_raft_closed, this);
  }

  static void on_raft_closed(void* data) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    {
      std::lock_guard lock(self->status_mu_);
      self->status_.role = Role::kUnavailable;
      self->status_.caught_up = false;
    }
  }

  // ---- proposals ----

  // Admits a proposal if fewer than max_pending_proposals are pending
  // (queued or inside libraft, not yet completed); the bound covers the whole
  // path to completion, not just the hand-off queue.
  void enqueue(std::unique_ptr<Proposal> p) {
    const char* refused = nullptr;
    {
      std::lock_guard lock(queue_mu_);
      if (stopping_ || !wakeup_open_) {
        refused = "node is shutting down";
      } else if (pending_ >= config_.max_pending_proposals) {
        refused = "too many proposals pending; retry later";
      } else {
        ++pending_;
        p->counted = true;
        queue_.push_back(std::move(p));
        uv_async_send(&wakeup_);
      }
    }
    if (refused != nullptr) complete(p.get(), Error{ErrorCode::kUnavailable, refused, {}});
  }

  // Releases the pending slot of a finished proposal.
  static void release(Proposal* p) {
    if (!p->counted) return;
    p->counted = false;
    std::lock_guard lock(p->node->queue_mu_);
    --p->node->pending_;
  }

  static void on_wakeup(uv_async_t* handle) {
    auto* self = static_cast<RaftNodeImpl*>(handle->data);
    bool stopping;
    {
      std::lock_guard lock(self->queue_mu_);
      stopping = self->stopping_;
    }
    if (stopping) {
      self->begin_shutdown();
      return;
    }
    self->run_posted();
    self->drain_queue();
  }

  // Runs `fn` on the loop thread at its next wakeup; dropped once the loop
  // is closing (what is posted only updates loop-thread state).
  void post_to_loop(std::function<void()> fn) {
    std::lock_guard lock(queue_mu_);
    if (!wakeup_open_) return;
    posted_.push_back(std::move(fn));
    uv_async_send(&wakeup_);
  }

  void run_posted() {
    std::vector<std::function<void()>> posted;
    {
      std::lock_guard lock(queue_mu_);
      posted.swap(posted_);
    }
    for (auto& fn : posted) {
      if (!closing_) fn();
    }
  }

  // Loop thread. Takes queued work in order. Proposals next to each other
  // go into one log entry (group commit, at most kMaxGroupBytes and
  // kMaxGroupCommands unless a single proposal is larger); while
  // config_.max_inflight_entries of those entries are proposed and their
  // proposers not yet answered, the leader leaves the queue as it is: what
  // arrives meanwhile goes out as one entry when one of them is applied
  // (its completion wakes the loop).
  void drain_queue() {
    for (;;) {
      auto group = std::make_unique<Group>();
      group->node = this;
      std::unique_ptr<Proposal> other;  // a barrier or a loop task
      {
        std::lock_guard lock(queue_mu_);
        if (!queue_.empty() && queue_.front()->propose_cb &&
            inflight_entries_ >= config_.max_inflight_entries && cr_state(node_) == CR_LEADER) {
          return;
        }
        while (!queue_.empty()) {
          Proposal* next = queue_.front().get();
          if (!next->propose_cb) {
            if (group->members.empty()) {
              other = std::move(queue_.front());
              queue_.pop_front();
            }
            break;
          }
          if (!group->members.empty() &&
              (group->bytes + next->entry.size() > kMaxGroupBytes ||
               group->commands + next->commands > kMaxGroupCommands)) {
            break;
          }
          group->bytes += next->entry.size();
          group->commands += next->commands;
          group->members.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (!group->members.empty()) {
        submit_group(std::move(group));
      } else if (other) {
        submit(std::move(other));
      } else {
        return;
      }
    }
  }

  // Bounds of one group-commit entry. Every member applies a whole entry
  // in one store write, and every answer behind it waits for that write:
  // on a million-job store under load a create's apply took ~0.3 ms and an
  // execution start ~0.25 ms. 64 KiB (about 100 creates, or 160 starts)
  // keeps an entry's apply to tens of milliseconds. (When apply ran on the
  // loop thread, entries of ~600 creates held it for 200-300 ms, most of a
  // 400 ms election timeout.)
  static constexpr size_t kMaxGroupBytes = 64u << 10;
  static constexpr uint32_t kMaxGroupCommands = 128;

  // Wakes the loop to drain the queue again (from a libraft callback, which
  // must not propose itself).
  void wake_loop() {
    std::lock_guard lock(queue_mu_);
    if (wakeup_open_ && !queue_.empty()) uv_async_send(&wakeup_);
  }

  void fail_queued(const Error& e) {
    std::deque<std::unique_ptr<Proposal>> batch;
    {
      std::lock_guard lock(queue_mu_);
      batch.swap(queue_);
    }
    for (auto& p : batch) complete(p.get(), e);
  }

  // A barrier or a loop task.
  void submit(std::unique_ptr<Proposal> p) {
    if (p->task) {
      release(p.get());
      p->task();
      return;
    }
    if (cr_state(node_) != CR_LEADER) {
      complete(p.get(), Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
      return;
    }
    p->proposed_at = monotonic_now();
    p->term = cr_current_term(node_);
    int rv = cr_barrier(node_, p.get(), &RaftNodeImpl::on_barrier_done);
    if (rv != 0) {
      complete(p.get(), raft_error(rv, "raft_barrier"));
      return;
    }
    p.release();  // owned by the request until on_barrier_done
  }

  void submit_group(std::unique_ptr<Group> g) {
    auto fail_all = [&g](const Error& e) {
      for (auto& p : g->members) complete(p.get(), e);
    };
    if (cr_state(node_) != CR_LEADER) {
      return fail_all(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    g->proposed_at = monotonic_now();
    g->term = cr_current_term(node_);
    cr_buffer buf;
    if (g->members.size() == 1) {
      buf = frame_entry(g->members[0]->entry);
    } else {
      std::vector<std::string_view> parts;
      parts.reserve(g->members.size());
      for (const auto& p : g->members) parts.emplace_back(p->entry);
      buf = frame_entry(model::concat_encoded_batches(parts));
    }
    for (auto& p : g->members) std::string().swap(p->entry);  // libraft owns the framed copy now
    if (buf.base == nullptr) return fail_all(Error{ErrorCode::kUnavailable, "out of memory", {}});
    uint64_t index = 0;
    int rv = cr_apply(node_, buf.base, buf.len, g.get(), &RaftNodeImpl::on_group_applied, &index);
    if (rv != 0) {
      cr_free(buf.base);
      return fail_all(raft_error(rv, "raft_apply"));
    }
    // The entry holds its in-flight slot until its proposers are answered:
    // what queues meanwhile goes out as one entry, so groups grow with the
    // time apply takes, not only with the time to commit.
    ++inflight_entries_;
    applier_.await(index, [this, members = std::make_shared<Proposals>(std::move(g->members)),
                           commands = g->commands,
                           index](Result<store::ApplyOutcome> outcome) {
      answer_group(*members, commands, index, std::move(outcome));
      --inflight_entries_;
      wake_loop();  // proposals held while this entry was in flight
    });
    g.release();  // owned by the request until on_group_applied
  }

  static void complete(Proposal* p, Error e) {
    release(p);
    if (p->propose_cb) p->propose_cb(std::move(e));
    if (p->barrier_cb) p->barrier_cb(std::move(e));
    if (p->task_failed) p->task_failed(std::move(e));
  }

  // libraft's callback: the entry is committed and queued to the applier
  // (status 0), or will not be applied through this request. The members
  // hear back through the applier (answer_group), once it has applied the
  // entry and this confirmed it, or here on failure.
  static void on_group_applied(void* data, uint64_t index, int status, void* /*result*/) {
    std::unique_ptr<Group> g(static_cast<Group*>(data));
    RaftNodeImpl* self = g->node;
    if (status == 0) {
      self->leadership_.committed(g->term, g->proposed_at);
      self->applier_.confirm(index);  // the entry applied at `index` is this one
      return;
    }
    // A failed request is failed while libraft changes state: the status
    // timer refreshes later.
    if (status == CR_LEADERSHIPLOST || status == CR_NOTLEADER) self->note_leadership_lost();
    if (Applier::Completion done = self->applier_.abandon(index)) {
      done(raft_error(status, "proposal not applied"));
    }
  }

  // The applier's thread (or the loop's, on failure): each proposal of a
  // group entry gets the results of its own commands.
  static void answer_group(Proposals& members, uint32_t commands, uint64_t index,
                           Result<store::ApplyOutcome> outcome) {
    auto fail_all = [&members](const Error& e) {
      for (auto& p : members) complete(p.get(), e);
    };
    if (!outcome.ok()) return fail_all(outcome.error());
    if (outcome->skipped) {
      // Only possible when the store is ahead of the log it was built from
      // (start() refuses that); the commands did not take effect.
      return fail_all(Error::internal(
          str_cat("entry ", index, " was skipped: the store is ahead of the log")));
    }
    CHRONOS_CHECK(outcome->results.size() == commands)
        << "entry " << index << ": " << outcome->results.size() << " results for " << commands
        << " commands";
    auto next = outcome->results.begin();
    for (auto& p : members) {
      store::ApplyOutcome mine;
      mine.index = index;
      mine.results.assign(std::make_move_iterator(next),
                          std::make_move_iterator(next + p->commands));
      next += p->commands;
      release(p.get());
      p->propose_cb(std::move(mine));
    }
  }

  // Committed: the barrier completes once the applier has applied every
  // entry before it (a consistent read then sees them in the store).
  static void on_barrier_done(void* data, int status) {
    std::unique_ptr<Proposal> p(static_cast<Proposal*>(data));
    if (status != 0) {
      complete(p.get(), raft_error(status, "barrier"));
      return;
    }
    RaftNodeImpl* self = p->node;
    self->applier_.push_marker([p = std::shared_ptr<Proposal>(std::move(p))] {
      release(p.get());
      p->barrier_cb(ok_status());
    });
  }

  // ---- membership and maintenance (loop thread) ----

  // Queues `task` for the loop thread under the same bound as proposals;
  // `failed` reports it when it cannot be queued or never runs.
  void run_on_loop(std::function<void()> task, DoneCallback failed) {
    auto p = std::make_unique<Proposal>();
    p->node = this;
    p->task = std::move(task);
    p->task_failed = [failed = std::move(failed)](Error e) { failed(std::move(e)); };
    enqueue(std::move(p));
  }

  // An in-flight configuration change or transfer; owned by the glue's
  // request (its data) until its callback.
  struct Change {
    RaftNodeImpl* node = nullptr;
    uint64_t id = 0;
    int role = CR_VOTER;  // assigned after the add
    unsigned attempts = 0;  // transfers
    DoneCallback done;
  };

  struct Server {
    uint64_t id = 0;
    std::string address;
    int role = CR_SPARE;
  };

  std::vector<Server> servers() const {
    std::vector<Server> out;
    const unsigned n = cr_server_count(node_);
    for (unsigned i = 0; i < n; ++i) {
      Server s;
      const char* address = nullptr;
      cr_server(node_, i, &s.id, &address, &s.role);
      if (address != nullptr) s.address = address;
      out.push_back(std::move(s));
    }
    return out;
  }

  std::optional<Server> find_server(uint64_t id) const {
    for (Server& s : servers()) {
      if (s.id == id) return std::move(s);
    }
    return std::nullopt;
  }

  void do_add(uint64_t id, std::string address, int role, bool must_exist, DoneCallback done) {
    if (cr_state(node_) != CR_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    const std::optional<Server> existing = find_server(id);
    if (must_exist && !existing) {
      return done(Error{ErrorCode::kNotFound, str_cat("raft id ", id, " is not a member"), "id"});
    }
    if (compact_pending()) {
      return done(Error{ErrorCode::kUnavailable,
                        "this cluster was restored from a backup and is still writing its first "
                        "snapshot (new members are sent that snapshot); retry in a moment",
                        {}});
    }
    for (const Server& srv : servers()) {
      if (srv.id != id && !srv.address.empty() && address == srv.address) {
        return done(Error{ErrorCode::kConflict,
                          str_cat("raft address ", address, " is already used by member ", srv.id),
                          "raft_address"});
      }
    }
    auto c = std::make_unique<Change>();
    c->node = this;
    c->id = id;
    c->role = role;
    c->done = std::move(done);
    if (existing) {
      if (address != existing->address) {
        return c->done(Error{ErrorCode::kConflict,
                             str_cat("member ", id, " already exists with raft address ",
                                     existing->address),
                             "raft_address"});
      }
      if (existing->role == role) return c->done(ok_status());
      return assign(std::move(c));
    }
    int rv = cr_add(node_, id, address.c_str(), c.get(), &RaftNodeImpl::on_member_added);
    if (rv != 0) return c->done(change_error(rv, "add member"));
    c.release();  // owned by the request until on_member_added
  }

  static void on_member_added(void* data, int status) {
    std::unique_ptr<Change> c(static_cast<Change*>(data));
    if (status != 0) return c->done(change_error(status, "add member"));
    if (c->role == CR_SPARE) return c->done(ok_status());
    c->node->assign(std::move(c));
  }

  // Promotion to voter makes libraft replicate to the member in rounds until
  // one completes within an election timeout; only then is the new
  // configuration appended. libraft gives up a member that does not catch
  // up within kCatchUpRounds rounds (cr_set_catch_up in init), failing the
  // change, so no change blocks every other forever.
  static constexpr absl::Duration kMaxChangeDuration = absl::Seconds(60);
  static constexpr unsigned kCatchUpRounds = 10;

  void assign(std::unique_ptr<Change> c) {
    int rv = cr_assign(node_, c->id, c->role, c.get(), &RaftNodeImpl::on_change_done);
    if (rv != 0) return c->done(change_error(rv, "assign role"));
    c.release();  // owned by the request until on_change_done
  }

  void do_remove(uint64_t id, DoneCallback done) {
    if (cr_state(node_) != CR_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    if (id == config_.id) {
      return done(Error{ErrorCode::kConflict,
                        "this node is the leader: transfer leadership first, then remove it",
                        {}});
    }
    if (!find_server(id)) {
      return done(Error{ErrorCode::kNotFound, str_cat("no member with raft id ", id), "id"});
    }
    auto c = std::make_unique<Change>();
    c->node = this;
    c->id = id;
    c->done = std::move(done);
    int rv = cr_remove(node_, id, c.get(), &RaftNodeImpl::on_change_done);
    if (rv != 0) return c->done(change_error(rv, "remove member"));
    c.release();
  }

  static void on_change_done(void* data, int status) {
    std::unique_ptr<Change> c(static_cast<Change*>(data));
    if (status == 0) c->node->refresh_status();
    c->done(status == 0 ? ok_status() : Status(change_error(status, "membership change")));
  }

  void do_transfer(uint64_t id, DoneCallback done) {
    if (cr_state(node_) != CR_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    if (id == config_.id) return done(ok_status());  // already leads
    if (cr_transferee(node_) != 0) {
      return done(Error{ErrorCode::kConflict, "a leadership transfer is already in progress", {}});
    }
    if (id != 0) {
      const std::optional<Server> target = find_server(id);
      if (!target) {
        return done(Error{ErrorCode::kNotFound, str_cat("no member with raft id ", id), "id"});
      }
      if (target->role != CR_VOTER) {
        return done(Error{ErrorCode::kConflict, "leadership goes to voters only", "id"});
      }
    }
    auto c = std::make_unique<Change>();
    c->node = this;
    c->id = id;
    c->done = std::move(done);
    int rv = cr_transfer(node_, id, c.get(), &RaftNodeImpl::on_transfer_done);
    if (rv == CR_NOTFOUND) {
      return c->done(Error{ErrorCode::kNotFound, "no other voter to hand leadership to", {}});
    }
    if (rv != 0) return c->done(change_error(rv, "transfer leadership"));
    c.release();
  }

  // libraft 0.22's transferee ignores TimeoutNow while it has entries
  // received and not yet stored (recv_timeout_now.c), which under a steady
  // write load is most of the time, so a transfer is asked again a few
  // times before it is reported failed.
  static constexpr unsigned kTransferAttempts = 3;

  static void on_transfer_done(void* data, int /*status*/) {
    std::unique_ptr<Change> c(static_cast<Change*>(data));
    RaftNodeImpl* self = c->node;
    self->refresh_status();
    if (cr_state(self->node_) == CR_LEADER && ++c->attempts < kTransferAttempts &&
        !self->closing_ &&
        cr_transfer(self->node_, c->id, c.get(), &RaftNodeImpl::on_transfer_done) == 0) {
      c.release();
      return;
    }
    if (cr_state(self->node_) == CR_LEADER) {
      return c->done(Error{ErrorCode::kUnavailable,
                           "no other node took over leadership (3 tries of an election timeout each)",
                           {}});
    }
    c->done(ok_status());
  }

  // libraft takes a snapshot when, at any step (a tick, a message, an
  // apply), `threshold` entries were committed since the last one. To take
  // one now the threshold is lowered to 1, so the next step snapshots what
  // is applied; the threshold is restored once a snapshot covering
  // everything applied at the request exists.
  void do_snapshot(std::function<void(Result<uint64_t>)> done, bool compact_all = false) {
    if (snapshot_done_) {
      return done(Error{ErrorCode::kConflict, "a snapshot is already being taken on request", {}});
    }
    if (cr_state(node_) != CR_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "snapshots on request are taken by the leader", {}});
    }
    snapshot_done_ = std::move(done);
    snapshot_target_ = cr_last_applied(node_);
    snapshot_saved_threshold_ = snapshot_threshold_;
    snapshot_saved_trailing_ = snapshot_trailing_;
    snapshot_deadline_ = absl::Now() + absl::Seconds(30);
    set_snapshot_threshold(1);
    if (compact_all) set_snapshot_trailing(0);
  }

  // A restored data dir (RaftConfig::compact_log_on_first_leadership): its
  // store holds state no log entry explains, so a member that replayed the
  // log would miss it. The first leader therefore snapshots with no
  // trailing entries, after which every new member starts from a snapshot.
  bool compact_pending() const { return config_.compact_log_on_first_leadership && !compacted_; }

  void compact_if_restored() {
    if (!compact_pending() || compacting_ || closing_) return;
    compacting_ = true;
    do_snapshot(
        [this](Result<uint64_t> r) {
          compacting_ = false;
          if (!r.ok()) {
            spdlog::warn("raft: first snapshot of the restored state failed: {}; will retry",
                         r.error().message);
            return;
          }
          compacted_ = true;
          spdlog::info("raft: restored state snapshotted at index {}", *r);
          if (config_.on_log_compacted) config_.on_log_compacted();
        },
        /*compact_all=*/true);
  }

  // Status timer (also fired right after every finished snapshot):
  // completes a requested snapshot once a finished one covers its target. (Checked only on the
  // timer, and only with no snapshot in progress, a request on a busy
  // store could miss every short gap between the snapshots its threshold
  // of 1 starts back to back, and time out: seen at 100 000 jobs.)
  void poll_snapshot() {
    if (!snapshot_done_) return;
    if (last_snapshot_index_ >= snapshot_target_) {
      return finish_snapshot(last_snapshot_index_);
    }
    if (absl::Now() > snapshot_deadline_) {
      return finish_snapshot(
          Error{ErrorCode::kUnavailable, "the snapshot did not complete within 30s", {}});
    }
  }

  void finish_snapshot(Result<uint64_t> result) {
    if (!snapshot_done_) return;
    set_snapshot_threshold(snapshot_saved_threshold_);
    set_snapshot_trailing(snapshot_saved_trailing_);
    auto done = std::move(snapshot_done_);
    snapshot_done_ = nullptr;
    done(std::move(result));
  }

  // ---- FSM (loop thread) ----

  static int fsm_apply(void* data, const void* base, size_t len, void** result) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    // libraft applies entries in order and advances last_applied after each
    // (commands, barriers and configuration changes alike), so the entry
    // being applied is the one after it.
    uint64_t index = cr_last_applied(self->node_) + 1;
    const std::string_view entry(static_cast<const char*>(base), len);
    *result = nullptr;  // proposers hear from the applier (Applier::await)
    if (!self->applier_.try_push(index, entry)) {
      // The store is behind what commits by a full queue: the loop waits
      // for room (back-pressure) rather than memory growing.
      const absl::Time start = absl::Now();
      self->applier_.push(index, entry);
      const absl::Duration took = absl::Now() - start;
      if (took > self->config_.heartbeat_timeout) {
        spdlog::warn("raft: the apply queue was full; entry {} waited {} for room", index,
                     absl::FormatDuration(took));
      }
    }
    self->log_bytes_since_snapshot_ += len;
    ++self->log_entries_since_snapshot_;
    self->pace_snapshots();
    return 0;
  }

  // libraft snapshots every `threshold` applied entries, and each snapshot
  // copies, checksums, compresses and writes the whole store. On a large
  // store (hundreds of MiB at a million jobs) doing that every 8192 entries
  // was most of every node's work. So once the last image is large, the
  // next snapshot waits until the log written since the last one is a
  // quarter of that image, at most kMaxLogBytesBetweenSnapshots (which,
  // with libraft keeping those entries in memory, bounds what waiting
  // costs), and at most kMaxThresholdFactor × threshold entries. A small
  // store (below config_.paced_snapshot_bytes, 8 MiB) snapshots every
  // `threshold` entries as configured.
  static constexpr uint64_t kMaxLogBytesBetweenSnapshots = 64ull << 20;
  static constexpr uint64_t kMaxTrailingBytes = 64ull << 20;
  static constexpr unsigned kMaxThresholdFactor = 16;

  // Loop thread.
  void pace_snapshots() {
    if (snapshot_done_) return;  // a snapshot on request sets its own threshold
    const uint64_t image = last_image_bytes_.load();
    const bool hold = image >= config_.paced_snapshot_bytes &&
                      log_bytes_since_snapshot_ < std::min(image / 4, kMaxLogBytesBetweenSnapshots);
    const unsigned base = config_.snapshot_threshold;
    unsigned threshold = hold ? static_cast<unsigned>(std::min<uint64_t>(
                                    uint64_t{base} * kMaxThresholdFactor, UINT_MAX))
                              : base;
    // Grouped entries can be large: whatever the count, a snapshot once the
    // log since the last one reaches kMaxLogBytesBetweenSnapshots (libraft
    // holds those entries in memory).
    if (log_bytes_since_snapshot_ >= kMaxLogBytesBetweenSnapshots) threshold = 1;
    if (snapshot_threshold_ != threshold) set_snapshot_threshold(threshold);
    // A large store: a follower that falls a few seconds behind (its own
    // snapshot, a slow disk, two shared cores) catches up from the log
    // rather than from a whole image, so more entries stay behind a
    // snapshot; and InstallSnapshot, when it is needed, gets time to send,
    // write and restore that image before libraft sends it again (on a
    // million-job store a fixed 5 s resent a ~400 MB image every 5 s to a
    // follower still restoring the previous one, piling gigabytes up in
    // both processes' socket buffers).
    // libraft keeps the trailing entries in memory as well as on disk, and
    // grouped entries can be large, so the count also stays within
    // kMaxTrailingBytes at the mean entry size seen between snapshots.
    const bool large = image >= config_.paced_snapshot_bytes;
    uint64_t trailing = uint64_t{config_.snapshot_trailing} * (large ? kMaxThresholdFactor : 1);
    if (mean_entry_bytes_ > 0) {
      trailing = std::min(trailing, std::max<uint64_t>(1, kMaxTrailingBytes / mean_entry_bytes_));
    }
    if (snapshot_trailing_ != trailing) set_snapshot_trailing(static_cast<unsigned>(trailing));
    const unsigned install_ms = install_snapshot_timeout_ms(image);
    if (install_ms != install_snapshot_ms_) {
      install_snapshot_ms_ = install_ms;
      cr_set_install_snapshot_timeout(node_, install_ms);
    }
  }

  // libraft waits this long for a follower's answer to InstallSnapshot
  // before it sends the snapshot again (its default is 30 s). A follower
  // that restarts while one is on its way never answers it, and would stay
  // behind for the whole timeout; so a few election timeouts (at least
  // 5 s), plus a second per kInstallBytesPerSecond of the image's raw size
  // (what the follower's restore writes), at most an hour.
  static constexpr uint64_t kInstallBytesPerSecond = 10ull << 20;
  unsigned install_snapshot_timeout_ms(uint64_t image_bytes) const {
    const int64_t base = std::max<int64_t>(5'000, 4 * absl::ToInt64Milliseconds(config_.election_timeout));
    const uint64_t per_bytes = std::min<uint64_t>(image_bytes / kInstallBytesPerSecond, 3600) * 1000;
    return static_cast<unsigned>(base + static_cast<int64_t>(per_bytes));
  }

  // libraft's settings, remembered here (0.22 has setters only).
  void set_snapshot_threshold(unsigned entries) {
    snapshot_threshold_ = entries;
    cr_set_snapshot_threshold(node_, entries);
  }
  void set_snapshot_trailing(unsigned entries) {
    snapshot_trailing_ = entries;
    cr_set_snapshot_trailing(node_, entries);
  }

  // Buffers are ours (FSM version >= 2): freed in fsm_snapshot_finalize.
  // Loop thread: the image is cut in fsm_snapshot_async; the log written
  // from here on counts towards the next snapshot. libraft snapshots at its
  // last applied index, which the finalize records.
  static int fsm_snapshot(void* data, cr_buffer** bufs, unsigned* n) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    if (self->log_entries_since_snapshot_ > 0) {
      self->mean_entry_bytes_ = self->log_bytes_since_snapshot_ / self->log_entries_since_snapshot_;
    }
    self->log_bytes_since_snapshot_ = 0;
    self->log_entries_since_snapshot_ = 0;
    self->snapshot_in_progress_ = true;
    self->snapshot_index_ = cr_last_applied(self->node_);
    self->snapshot_ticket_ = self->applier_.ticket();
    *bufs = nullptr;
    *n = 0;
    return 0;
  }

  // libuv's thread pool (the glue runs it there: libraft 0.22 would call it
  // on the loop thread, libraft_glue.c "snapshots cut off the loop
  // thread"), while the loop goes on applying. The image comes from the
  // store's own consistent snapshot, so it may be newer than the index
  // libraft records for it, which is safe: the image carries its applied
  // index and replayed entries at or below it are skipped.
  // libraft counts entries as applied once they are queued to the applier,
  // so the image waits until the store has applied what was queued by
  // fsm_snapshot (libraft drops log entries this image covers).
  static int fsm_snapshot_async(void* data, cr_buffer** bufs, unsigned* n) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    if (!self->applier_.wait_done(self->snapshot_ticket_)) return CR_CANCELED;
    auto image = self->store_->serialize_snapshot_chunks();
    if (!image.ok()) {
      spdlog::error("raft: snapshot failed: {}", image.error().message);
      return CR_IOERR;
    }
    // libraft reads the buffers until fsm_snapshot_finalize, so the image
    // is lent rather than copied, one buffer per compressed frame (libraft
    // writes them with one writev; nothing joins them). libraft takes one
    // snapshot at a time.
    const std::vector<std::string>& chunks = image->chunks;
    auto* arr = static_cast<cr_buffer*>(cr_malloc(sizeof(cr_buffer) * chunks.size()));
    if (arr == nullptr) return CR_NOMEM;
    self->last_image_bytes_.store(image->raw_bytes);
    self->snapshot_image_ = std::make_unique<std::vector<std::string>>(std::move(image->chunks));
    for (size_t i = 0; i < self->snapshot_image_->size(); ++i) {
      std::string& chunk = (*self->snapshot_image_)[i];
      arr[i].base = chunk.data();
      arr[i].len = chunk.size();
    }
    *bufs = arr;
    *n = static_cast<unsigned>(self->snapshot_image_->size());
    return 0;
  }

  static int fsm_snapshot_finalize(void* data, cr_buffer* /*bufs*/, unsigned /*n*/) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    self->snapshot_image_.reset();
    self->snapshot_in_progress_ = false;
    self->last_snapshot_index_ = std::max(self->last_snapshot_index_, self->snapshot_index_);
    // A requested snapshot completes at the next loop iteration, not here:
    // libraft compacts the log with the request's trailing count after
    // this returns, so the count is restored only then.
    if (self->snapshot_done_ && self->handles_open_) {
      uv_timer_start(&self->status_timer_, &RaftNodeImpl::on_status_timer, 0, 20);
    }
    return 0;
  }

  // Start-up only (before the loop thread exists).
  static bool fsm_snapshot_held(void* data, uint64_t index) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    if (!self->state_machine_.holds(index)) return false;
    self->held_snapshot_index_ = index;
    return true;
  }

  // On success the FSM owns base (libraft's contract). At start-up libraft
  // restores its latest snapshot before replaying the log; when the store
  // already holds that state (the usual restart) nothing is written.
  static int fsm_restore(void* data, void* base, size_t len) {
    auto* self = static_cast<RaftNodeImpl*>(data);
    if (len == 0 && self->held_snapshot_index_ != 0) {
      // Not read: fsm_snapshot_held found the store holds it. Its size is
      // not known until the next cut (no pacing for that one).
      spdlog::info("raft: the store at index {} already holds the snapshot at index {} (not read)",
                   self->store_->applied_index(), self->held_snapshot_index_);
      self->last_snapshot_index_ = std::max(self->last_snapshot_index_, self->held_snapshot_index_);
      self->held_snapshot_index_ = 0;
      return 0;
    }
    std::string_view image(static_cast<const char*>(base), len);
    std::string error;
    // The image replaces the keyspace: entries queued before it are applied
    // first, so none lands on top of it.
    self->applier_.drain();
    switch (self->state_machine_.restore(image, &error)) {
      case StateMachine::RestoreResult::kCorrupt:
        spdlog::error("raft: snapshot image rejected: {}", error);
        return CR_CORRUPT;
      case StateMachine::RestoreResult::kFailed:
        spdlog::error("raft: snapshot restore failed: {}", error);
        return CR_IOERR;
      case StateMachine::RestoreResult::kAlreadyHeld:
        spdlog::info("raft: the store at index {} already holds the snapshot",
                     self->store_->applied_index());
        break;
      case StateMachine::RestoreResult::kRestored:
        spdlog::info("raft: restored snapshot at index {}", self->store_->applied_index());
        self->applier_.restored(self->store_->applied_index());
        break;
    }
    self->last_image_bytes_.store(store::snapshot_raw_bytes(image));  // checked by now
    self->last_snapshot_index_ = std::max(self->last_snapshot_index_, self->store_->applied_index());
    cr_free(base);
    return 0;
  }

  // ---- status ----

  // The clock of the leadership lease: the same monotonic clock the
  // scheduler compares RaftStatus::lease_until with.
  static absl::Duration monotonic_now() { return RealClock::instance()->monotonic(); }

  static void on_status_timer(uv_timer_t* t) {
    auto* self = static_cast<RaftNodeImpl*>(t->data);
    // The timer fires every 20 ms; a late one means the loop thread was
    // held (an apply, a restore, libraft itself), which followers see as a
    // silent leader.
    const absl::Time now = absl::Now();
    const absl::Duration gap = now - self->last_status_tick_;
    if (self->last_status_tick_ != absl::InfinitePast() && gap > self->config_.heartbeat_timeout * 4) {
      spdlog::warn("raft: the loop thread was held for {}", absl::FormatDuration(gap));
    }
    self->last_status_tick_ = now;
    self->refresh_status();
    self->poll_snapshot();
  }

  // Called from a request failed because leadership was lost, while libraft
  // is still stepping down (refresh_status must not read its state now).
  // Whoever learns of the failure may look at the status next, so it stops
  // claiming leadership at once; the timer refreshes it right after.
  void note_leadership_lost() {
    {
      std::lock_guard lock(status_mu_);
      if (status_.role == Role::kLeader) {
        status_.role = Role::kFollower;
        status_.leader_id = 0;
        status_.leader_address.clear();
        status_.caught_up = false;
      }
    }
    if (handles_open_) uv_timer_start(&status_timer_, &RaftNodeImpl::on_status_timer, 0, 20);
  }

  void refresh_status() {
    RaftStatus s;
    s.id = config_.id;
    s.address = config_.address;
    s.role = role_of(cr_state(node_));
    uint64_t leader_id = 0;
    const char* leader_address = nullptr;
    cr_leader(node_, &leader_id, &leader_address);
    s.leader_id = leader_id;
    if (leader_address != nullptr) s.leader_address = leader_address;
    s.term = cr_current_term(node_);
    s.commit_index = cr_commit_index(node_);
    // libraft counts an entry applied once it is queued to the applier;
    // while the applier works, what the store holds is its count.
    // Never reported lower than before: libraft's count includes barriers,
    // which the applier's does not.
    s.applied_index = std::max(
        reported_applied_, applier_.idle() ? cr_last_applied(node_) : applier_.last_applied());
    reported_applied_ = s.applied_index;
    s.last_index = cr_last_index(node_);
    const bool leading = s.role == Role::kLeader;
    const int64_t election_ms = absl::ToInt64Milliseconds(config_.election_timeout);
    for (Server& srv : servers()) {
      MemberInfo m;
      m.id = srv.id;
      m.address = std::move(srv.address);
      m.role = std::string(member_role(srv.role));
      // The glue stamps every message received from a server: a follower
      // that answered within an election timeout is reachable, and so is
      // the leader of a follower that heard from it.
      const int64_t since = cr_since_last_message_ms(node_, srv.id);
      if (leading) {
        m.reachable = srv.id == config_.id || (since >= 0 && since < election_ms);
        if (srv.id != config_.id && since >= 0) m.last_contact_ms = since;
        uint64_t match = 0;
        if (srv.id == config_.id) {
          m.match_index = s.last_index;
        } else if (cr_match_index(node_, srv.id, &match)) {
          m.match_index = match;
        }
      } else if (srv.id == leader_id && s.role == Role::kFollower && since >= 0) {
        m.last_contact_ms = since;
        m.reachable = since < election_ms;
      }
      s.members.push_back(std::move(m));
    }
    // A new leader may not yet have applied entries of older terms: it
    // knows they are committed only once an entry of its own term commits.
    // A barrier per term gives that entry; until it is applied, local reads
    // could be stale and the node is not caught up. Later barriers renew the
    // leadership lease when nothing else of ours commits.
    const absl::Duration now_mono = monotonic_now();
    if (!closing_ && leadership_.want_barrier(s.role == Role::kLeader && leading, s.term,
                                              cr_transferee(node_) != 0, now_mono,
                                              absl::Nanoseconds(lease_wanted_until_ns_.load()))) {
      auto p = std::make_unique<Proposal>();
      p->node = this;
      uint64_t term = s.term;
      // The applier's thread (or the loop's, on failure): LeadershipTracker
      // lives on the loop thread.
      p->barrier_cb = [this, term, now_mono](Status st) {
        post_to_loop([this, term, now_mono, ok = st.ok()] {
          leadership_.barrier_done(term, now_mono, ok);
          if (ok) refresh_status();
        });
      };
      submit(std::move(p));
    }
    if (s.role == Role::kLeader && leading) {
      // Once that barrier is applied the leader has every entry committed
      // before its term; later ones reach the store through the applier
      // (commit > applied while it works is not lag).
      s.caught_up = leadership_.caught_up(s.term);
      s.lease_until = leadership_.lease_until(s.term);
      if (s.caught_up) compact_if_restored();
    } else {
      s.caught_up =
          s.role == Role::kFollower && s.leader_id != 0 && s.applied_index >= s.commit_index;
    }
    std::lock_guard lock(status_mu_);
    status_ = std::move(s);
  }

  RaftConfig config_;
  store::Store* store_;

  // Loop-thread state.
  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  uv_timer_t status_timer_{};
  cr_node* node_ = nullptr;  // libraft, through the glue; freed by stop()
  bool loop_open_ = false;
  bool raft_open_ = false;
  bool closing_ = false;
  bool handles_open_ = false;
  bool wakeup_open_ = false;    // guarded by queue_mu_ once the loop runs
  std::atomic<bool> thread_started_{false};
  StateMachine state_machine_;  // used by applier_'s thread (and restore, once drained)
  Applier applier_;
  std::thread apply_thread_;  // runs applier_
  LeadershipTracker leadership_;
  // want_lease_until's argument in nanoseconds (any thread).
  std::atomic<int64_t> lease_wanted_until_ns_{std::numeric_limits<int64_t>::min()};
  // A snapshot requested through take_snapshot (at most one at a time).
  std::function<void(Result<uint64_t>)> snapshot_done_;
  uint64_t snapshot_target_ = 0;
  unsigned snapshot_saved_threshold_ = 0;
  unsigned snapshot_saved_trailing_ = 0;
  // What libraft was last told (set_snapshot_threshold/_trailing).
  unsigned snapshot_threshold_ = 0;
  unsigned snapshot_trailing_ = 0;
  unsigned install_snapshot_ms_ = 0;
  // Between fsm_snapshot and its finalize; the index it is taken at, and
  // the latest index a finished (or restored) snapshot covers.
  bool snapshot_in_progress_ = false;
  uint64_t snapshot_index_ = 0;
  uint64_t snapshot_ticket_ = 0;  // the applier's ticket at fsm_snapshot
  uint64_t reported_applied_ = 0;  // the status's last applied index
  uint64_t last_snapshot_index_ = 0;
  // The snapshot fsm_snapshot_held told libraft not to read (start-up).
  uint64_t held_snapshot_index_ = 0;
  bool compacting_ = false;  // compact_if_restored's snapshot is running
  bool compacted_ = false;   // ... and has completed
  absl::Time snapshot_deadline_;
  // Snapshot pacing (pace_snapshots): loop thread; last_image_bytes_ is read
  // by other threads.
  uint64_t log_bytes_since_snapshot_ = 0;
  uint64_t log_entries_since_snapshot_ = 0;
  uint64_t mean_entry_bytes_ = 0;  // over the entries between the last two snapshots
  absl::Time last_status_tick_ = absl::InfinitePast();
  // The last image's size uncompressed (the store's size, which is what
  // cutting and restoring an image cost).
  std::atomic<uint64_t> last_image_bytes_{0};
  // The image's chunks lent to libraft by fsm_snapshot_async until finalize.
  std::unique_ptr<std::vector<std::string>> snapshot_image_;
  // Group entries proposed and not yet answered (loop thread and the
  // applier's completions).
  std::atomic<unsigned> inflight_entries_{0};
  std::thread thread_;

  std::mutex queue_mu_;
  std::deque<std::unique_ptr<Proposal>> queue_;  // guarded by queue_mu_
  std::vector<std::function<void()>> posted_;     // post_to_loop; guarded by queue_mu_
  bool stopping_ = false;                        // guarded by queue_mu_
  size_t pending_ = 0;  // admitted proposals not yet completed; guarded by queue_mu_

  mutable std::mutex status_mu_;
  RaftStatus status_;  // guarded by status_mu_
};


}  // namespace

Result<std::unique_ptr<RaftNode>> RaftNode::start(const RaftConfig& config, store::Store* store) {
  auto node = std::make_unique<RaftNodeImpl>(config, store);
  auto st = node->init();
  if (!st.ok()) {
    node->stop();
    return std::move(st).error();
  }
  return std::unique_ptr<RaftNode>(std::move(node));
}

}  // namespace chronos::raft
