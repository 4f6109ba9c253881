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
#include "raft/entry_framing.h"
#include "raft/leadership.h"
#include "raft/state_machine.h"
#include "spdlog/spdlog.h"

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

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
  uint64_t h = raft_digest(node_id.data(), node_id.size());
  return h == 0 ? 1 : h;
}

namespace {

Role role_of(int state) {
  switch (state) {
    case RAFT_FOLLOWER:
      return Role::kFollower;
    case RAFT_CANDIDATE:
      return Role::kCandidate;
    case RAFT_LEADER:
      return Role::kLeader;
    default:
      return Role::kUnavailable;
  }
}

std::string_view member_role(int role) {
  switch (role) {
    case RAFT_VOTER:
      return "voter";
    case RAFT_STANDBY:
      return "standby";
    default:
      return "spare";
  }
}

int raft_role_of(MemberRole r) {
  switch (r) {
    case MemberRole::kVoter:
      return RAFT_VOTER;
    case MemberRole::kStandby:
      return RAFT_STANDBY;
    case MemberRole::kSpare:
      return RAFT_SPARE;
  }
  return RAFT_SPARE;
}

// Errors of configuration changes, mapped to what an API client can act on.
Error change_error(int rv, std::string_view what) {
  switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
      return Error{ErrorCode::kNoLeader, str_cat(what, ": ", raft_strerror(rv)), {}};
    case RAFT_CANTCHANGE:
      return Error{
          ErrorCode::kConflict,
          str_cat(what, ": another membership change is in progress; retry when it is done"),
          {}};
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
      return Error{ErrorCode::kConflict, str_cat(what, ": ", raft_strerror(rv)), {}};
    case RAFT_BADID:
    case RAFT_NOTFOUND:
      return Error{ErrorCode::kNotFound, str_cat(what, ": ", raft_strerror(rv)), {}};
    default:
      return Error{ErrorCode::kUnavailable, str_cat(what, ": ", raft_strerror(rv)), {}};
  }
}

Error raft_error(int rv, std::string_view what) {
  if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST) {
    return Error{ErrorCode::kNoLeader, str_cat(what, ": ", raft_strerror(rv)), {}};
  }
  return Error{ErrorCode::kUnavailable, str_cat(what, ": ", raft_strerror(rv)), {}};
}

class RaftNodeImpl;

// One queued proposal or barrier. Owned by the queue, then by libraft's
// request (req.data) until its callback fires.
struct Proposal {
  RaftNodeImpl* node = nullptr;
  std::string entry;                     // encoded batch (proposals only)
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
  struct raft_apply apply_req {};
  struct raft_barrier barrier_req {};
};

class RaftNodeImpl final : public RaftNode {
 public:
  RaftNodeImpl(RaftConfig config, store::Store* store)
      : config_(std::move(config)),
        store_(store),
        state_machine_(store, config_.on_applied),
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

    rv = raft_uv_tcp_init(&transport_, &loop_);
    if (rv != 0) return raft_error(rv, "raft_uv_tcp_init");
    rv = raft_uv_init(&io_, &loop_, config_.dir.c_str(), &transport_);
    if (rv != 0) return raft_error(rv, str_cat("raft_uv_init (", io_.errmsg, ")"));

    // FSM version 3 (snapshot_async) needs io version 2 with async_work,
    // which libraft 0.15's raft_uv does not provide; we provide it on the
    // same loop with uv_queue_work (libuv's thread pool), as later raft_uv
    // releases do.
    io_.version = 2;
    io_.async_work = &RaftNodeImpl::io_async_work;
    fsm_.version = 3;
    fsm_.data = this;
    fsm_.apply = &RaftNodeImpl::fsm_apply;
    fsm_.snapshot = &RaftNodeImpl::fsm_snapshot;
    fsm_.snapshot_async = &RaftNodeImpl::fsm_snapshot_async;
    fsm_.snapshot_finalize = &RaftNodeImpl::fsm_snapshot_finalize;
    fsm_.restore = &RaftNodeImpl::fsm_restore;

    rv = raft_init(&raft_, &io_, &fsm_, config_.id, config_.address.c_str());
    if (rv != 0) return raft_error(rv, str_cat("raft_init (", raft_errmsg(&raft_), ")"));
    raft_.data = this;
    raft_open_ = true;
    raft_set_heartbeat_timeout(
        &raft_, static_cast<unsigned>(absl::ToInt64Milliseconds(config_.heartbeat_timeout)));
    raft_set_election_timeout(
        &raft_, static_cast<unsigned>(absl::ToInt64Milliseconds(config_.election_timeout)));
    raft_set_snapshot_threshold(&raft_, config_.snapshot_threshold);
    raft_set_snapshot_trailing(&raft_, config_.snapshot_trailing);
    raft_set_pre_vote(&raft_, true);
    // libraft waits this long for a follower's answer to InstallSnapshot
    // before it sends the snapshot again (default 30 s). A follower that
    // restarts while one is on its way never answers it, and would stay
    // behind for the whole timeout; a few election timeouts (at least 5 s,
    // time to send and restore a large image) bound that stall.
    raft_set_install_snapshot_timeout(
        &raft_, static_cast<unsigned>(std::max<int64_t>(
                    5'000, 4 * absl::ToInt64Milliseconds(config_.election_timeout))));

    CHRONOS_RETURN_IF_ERROR(bootstrap_if_new());

    // raft_start may already apply entries and start a snapshot, calling
    // io_async_work on this thread; the loop thread does not exist yet, so
    // this thread is the loop's only user until it starts.
    t_loop_node = this;
    rv = raft_start(&raft_);
    t_loop_node = nullptr;
    if (rv != 0) return raft_error(rv, str_cat("raft_start (", raft_errmsg(&raft_), ")"));
    if (store_->applied_index() > raft_last_index(&raft_)) {
      // The store holds entries the log does not (e.g. raft/ was deleted or
      // replaced): new entries would reuse its indexes and be skipped.
      return Error{
          ErrorCode::kUnavailable,
          str_cat("the store has applied log index ", store_->applied_index(),
                  " but the Raft log in ", config_.dir, " ends at ", raft_last_index(&raft_),
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
    std::lock_guard lock(status_mu_);
    return status_;
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
  }

 private:
  // ---- lifecycle (loop thread unless noted) ----

  // Called before raft_start on the caller's thread. An empty directory is
  // bootstrapped with the configured voters; a used one returns
  // RAFT_CANTBOOTSTRAP, which is the normal restart path.
  Status bootstrap_if_new() {
    if (config_.join) return ok_status();  // a leader adds it
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    std::vector<Peer> voters = config_.bootstrap_voters;
    if (voters.empty()) voters.push_back({config_.id, config_.address});
    for (const auto& v : voters) {
      int rv = raft_configuration_add(&conf, v.id, v.address.c_str(), RAFT_VOTER);
      if (rv != 0) {
        raft_configuration_close(&conf);
        return raft_error(rv, str_cat("bootstrap configuration (", v.address, ")"));
      }
    }
    int rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv == 0) {
      spdlog::info("raft: bootstrapped a new cluster with {} voter(s)", voters.size());
      return ok_status();
    }
    if (rv == RAFT_CANTBOOTSTRAP) return ok_status();
    return raft_error(rv, str_cat("raft_bootstrap (", raft_errmsg(&raft_), ")"));
  }

  void run_loop() {
    thread_started_ = true;
    t_loop_node = this;
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
    close_raft_when_idle();
  }

  // raft_close fails in-flight requests (their callbacks run with an error
  // status), then closes the io. libraft 0.15 crashes when it is closed while
  // a snapshot is being taken or written (seen as a NULL read inside
  // raft_close under a stop-during-snapshots test), so closing waits until
  // no snapshot is in progress: our async work done, no pending snapshot,
  // no snapshot put in flight. Polled every 5 ms, for at most 10 s.
  void close_raft_when_idle() {
    if (!raft_open_ || !closing_) return;
    bool snapshotting = pending_async_work_ != 0 || raft_.snapshot.pending.term != 0 ||
                        raft_.snapshot.put.data != nullptr;
    if (snapshotting && close_polls_ < kMaxClosePolls) {
      if (close_polls_++ == 0) {
        uv_timer_init(&loop_, &close_timer_);
        close_timer_.data = this;
        uv_timer_start(
            &close_timer_,
            [](uv_timer_t* t) { static_cast<RaftNodeImpl*>(t->data)->close_raft_when_idle(); }, 5,
            5);
      }
      return;
    }
    if (snapshotting) spdlog::warn("raft: closing while a snapshot is still in progress");
    if (close_polls_ > 0) {
      uv_timer_stop(&close_timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(&close_timer_), nullptr);
    }
    raft_open_ = false;
    raft_close(&raft_, &RaftNodeImpl::on_raft_closed);
  }

  static constexpr int kMaxClosePolls = 2000;  // × 5 ms

  static void on_raft_closed(struct raft* r) {
    auto* self = static_cast<RaftNodeImpl*>(r->data);
    raft_uv_close(&self->io_);
    raft_uv_tcp_close(&self->transport_);
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
    self->drain_queue();
  }

  void drain_queue() {
    std::deque<std::unique_ptr<Proposal>> batch;
    {
      std::lock_guard lock(queue_mu_);
      batch.swap(queue_);
    }
    for (auto& p : batch) submit(std::move(p));
  }

  void fail_queued(const Error& e) {
    std::deque<std::unique_ptr<Proposal>> batch;
    {
      std::lock_guard lock(queue_mu_);
      batch.swap(queue_);
    }
    for (auto& p : batch) complete(p.get(), e);
  }

  void submit(std::unique_ptr<Proposal> p) {
    if (p->task) {
      release(p.get());
      p->task();
      return;
    }
    if (raft_state(&raft_) != RAFT_LEADER) {
      complete(p.get(), Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
      return;
    }
    p->proposed_at = monotonic_now();
    p->term = raft_.current_term;
    if (p->barrier_cb) {
      p->barrier_req.data = p.get();
      int rv = raft_barrier(&raft_, &p->barrier_req, &RaftNodeImpl::on_barrier_done);
      if (rv != 0) {
        complete(p.get(), raft_error(rv, "raft_barrier"));
        return;
      }
      p.release();  // owned by the request until on_barrier_done
      return;
    }
    struct raft_buffer buf = frame_entry(p->entry);
    std::string().swap(p->entry);  // libraft owns the framed copy now
    if (buf.base == nullptr) {
      complete(p.get(), Error{ErrorCode::kUnavailable, "out of memory", {}});
      return;
    }
    p->apply_req.data = p.get();
    int rv = raft_apply(&raft_, &p->apply_req, &buf, 1, &RaftNodeImpl::on_apply_done);
    if (rv != 0) {
      raft_free(buf.base);
      complete(p.get(), raft_error(rv, "raft_apply"));
      return;
    }
    awaited_indexes_.insert(p->apply_req.index);
    p.release();  // owned by the request until on_apply_done
  }

  static void complete(Proposal* p, Error e) {
    release(p);
    if (p->propose_cb) p->propose_cb(std::move(e));
    if (p->barrier_cb) p->barrier_cb(std::move(e));
    if (p->task_failed) p->task_failed(std::move(e));
  }

  static void on_apply_done(struct raft_apply* req, int status, void* result) {
    std::unique_ptr<Proposal> p(static_cast<Proposal*>(req->data));
    std::unique_ptr<store::ApplyOutcome> outcome(static_cast<store::ApplyOutcome*>(result));
    p->node->awaited_indexes_.erase(req->index);
    // Refresh first so a client that sees its write acknowledged also sees
    // it in the status (applied index) it reads next. A failed request is
    // failed while libraft changes state: the status timer refreshes later.
    if (status == 0) p->node->refresh_status();
    if (status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER) p->node->note_leadership_lost();
    if (status != 0) {
      complete(p.get(), raft_error(status, "proposal not applied"));
      return;
    }
    CHRONOS_CHECK(outcome != nullptr) << "applied entry " << req->index << " has no outcome";
    if (outcome->skipped) {
      // Only possible when the store is ahead of the log it was built from
      // (start() refuses that); the command did not take effect.
      complete(p.get(), Error::internal(str_cat("entry ", req->index,
                                                " was skipped: the store is ahead of the log")));
      return;
    }
    p->node->leadership_.committed(p->term, p->proposed_at);
    release(p.get());
    p->propose_cb(std::move(*outcome));
  }

  static void on_barrier_done(struct raft_barrier* req, int status) {
    std::unique_ptr<Proposal> p(static_cast<Proposal*>(req->data));
    if (status != 0) {
      complete(p.get(), raft_error(status, "barrier"));
      return;
    }
    release(p.get());
    p->barrier_cb(ok_status());
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

  // An in-flight configuration change or transfer; owned by libraft's
  // request (req.data / transfer.data) until its callback.
  struct Change {
    RaftNodeImpl* node = nullptr;
    uint64_t id = 0;
    int role = RAFT_VOTER;  // assigned after the add
    DoneCallback done;
    struct raft_change req {};
    struct raft_transfer transfer {};
  };

  const struct raft_server* find_server(uint64_t id) const {
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      if (raft_.configuration.servers[i].id == id) return &raft_.configuration.servers[i];
    }
    return nullptr;
  }

  void do_add(uint64_t id, std::string address, int role, bool must_exist, DoneCallback done) {
    if (raft_state(&raft_) != RAFT_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    if (must_exist && find_server(id) == nullptr) {
      return done(Error{ErrorCode::kNotFound, str_cat("raft id ", id, " is not a member"), "id"});
    }
    if (compact_pending()) {
      return done(Error{ErrorCode::kUnavailable,
                        "this cluster was restored from a backup and is still writing its first "
                        "snapshot (new members are sent that snapshot); retry in a moment",
                        {}});
    }
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      const auto& srv = raft_.configuration.servers[i];
      if (srv.id != id && srv.address != nullptr && address == srv.address) {
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
    c->req.data = c.get();
    if (const struct raft_server* existing = find_server(id)) {
      if (existing->address == nullptr || address != existing->address) {
        return c->done(Error{ErrorCode::kConflict,
                             str_cat("member ", id, " already exists with raft address ",
                                     existing->address ? existing->address : ""),
                             "raft_address"});
      }
      if (existing->role == role) return c->done(ok_status());
      return assign(std::move(c));
    }
    int rv = raft_add(&raft_, &c->req, id, address.c_str(), &RaftNodeImpl::on_member_added);
    if (rv != 0) return c->done(change_error(rv, "add member"));
    change_started_ms_ = raft_.io->time(raft_.io);
    c.release();  // owned by the request until on_member_added
  }

  static void on_member_added(struct raft_change* req, int status) {
    std::unique_ptr<Change> c(static_cast<Change*>(req->data));
    if (status != 0) return c->done(change_error(status, "add member"));
    if (c->role == RAFT_SPARE) return c->done(ok_status());
    c->node->assign(std::move(c));
  }

  // Promotion to voter makes libraft replicate to the member in rounds until
  // one completes within an election timeout; only then is the new
  // configuration appended. A member that never catches up would hold the
  // change (and block every other) forever, so the status timer aborts a
  // change older than kMaxChangeDuration (abort_stuck_change).
  void assign(std::unique_ptr<Change> c) {
    c->req = {};
    c->req.data = c.get();
    int rv = raft_assign(&raft_, &c->req, c->id, c->role, &RaftNodeImpl::on_change_done);
    if (rv != 0) return c->done(change_error(rv, "assign role"));
    change_started_ms_ = raft_.io->time(raft_.io);
    c.release();  // owned by the request until on_change_done
  }

  void do_remove(uint64_t id, DoneCallback done) {
    if (raft_state(&raft_) != RAFT_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    if (id == config_.id) {
      return done(Error{ErrorCode::kConflict,
                        "this node is the leader: transfer leadership first, then remove it",
                        {}});
    }
    if (find_server(id) == nullptr) {
      return done(Error{ErrorCode::kNotFound, str_cat("no member with raft id ", id), "id"});
    }
    auto c = std::make_unique<Change>();
    c->node = this;
    c->id = id;
    c->done = std::move(done);
    c->req.data = c.get();
    int rv = raft_remove(&raft_, &c->req, id, &RaftNodeImpl::on_change_done);
    if (rv != 0) return c->done(change_error(rv, "remove member"));
    change_started_ms_ = raft_.io->time(raft_.io);
    c.release();
  }

  static void on_change_done(struct raft_change* req, int status) {
    std::unique_ptr<Change> c(static_cast<Change*>(req->data));
    if (status == 0) c->node->refresh_status();
    c->done(status == 0 ? ok_status() : Status(change_error(status, "membership change")));
  }

  static constexpr absl::Duration kMaxChangeDuration = absl::Seconds(60);

  // Gives up a configuration change that has been pending too long (see
  // assign()). libraft 0.15 has no cancel call; this does what it does
  // itself when leadership is lost (clear the promotion and the pending
  // change, fail the request), which is safe because nothing has been
  // appended for a promotion that has not completed its rounds.
  void abort_stuck_change() {
    if (raft_state(&raft_) != RAFT_LEADER) return;
    struct raft_change* req = raft_.leader_state.change;
    if (req == nullptr || raft_.leader_state.promotee_id == 0) return;
    if (raft_.io->time(raft_.io) - change_started_ms_ <
        static_cast<raft_time>(absl::ToInt64Milliseconds(kMaxChangeDuration))) {
      return;
    }
    spdlog::warn("raft: giving up promoting member {}: it did not catch up within {}",
                 raft_.leader_state.promotee_id, absl::FormatDuration(kMaxChangeDuration));
    raft_.leader_state.promotee_id = 0;
    raft_.leader_state.round_number = 0;
    raft_.leader_state.round_index = 0;
    raft_.leader_state.change = nullptr;
    std::unique_ptr<Change> c(static_cast<Change*>(req->data));
    c->done(Error{ErrorCode::kUnavailable,
                  str_cat("member ", c->id, " did not catch up with the log within ",
                          absl::FormatDuration(kMaxChangeDuration), "; it stays a spare"),
                  {}});
  }

  void do_transfer(uint64_t id, DoneCallback done) {
    if (raft_state(&raft_) != RAFT_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    }
    if (id == config_.id) return done(ok_status());  // already leads
    if (raft_.transfer != nullptr) {
      return done(Error{ErrorCode::kConflict, "a leadership transfer is already in progress", {}});
    }
    if (id != 0) {
      const struct raft_server* target = find_server(id);
      if (target == nullptr) {
        return done(Error{ErrorCode::kNotFound, str_cat("no member with raft id ", id), "id"});
      }
      if (target->role != RAFT_VOTER) {
        return done(Error{ErrorCode::kConflict, "leadership goes to voters only", "id"});
      }
    }
    auto c = std::make_unique<Change>();
    c->node = this;
    c->id = id;
    c->done = std::move(done);
    c->transfer.data = c.get();
    int rv = raft_transfer(&raft_, &c->transfer, id, &RaftNodeImpl::on_transfer_done);
    if (rv == RAFT_NOTFOUND) {
      return c->done(Error{ErrorCode::kNotFound, "no other voter to hand leadership to", {}});
    }
    if (rv != 0) return c->done(change_error(rv, "transfer leadership"));
    c.release();
    // The target may be elected at once: the lease ends now, not at the
    // next status refresh.
    refresh_status();
  }

  static void on_transfer_done(struct raft_transfer* req) {
    std::unique_ptr<Change> c(static_cast<Change*>(req->data));
    RaftNodeImpl* self = c->node;
    self->refresh_status();  // safe: progress is checked (refresh_status)
    if (raft_state(&self->raft_) == RAFT_LEADER) {
      return c->done(Error{ErrorCode::kUnavailable,
                           "no other node took over leadership within the election timeout",
                           {}});
    }
    c->done(ok_status());
  }

  // libraft 0.15 takes snapshots only when `threshold` entries were applied
  // since the last one. To take one now the threshold is lowered to 1 and a
  // barrier entry is applied, which makes libraft snapshot right after;
  // the threshold is restored once a snapshot covering the barrier exists.
  void do_snapshot(std::function<void(Result<uint64_t>)> done, bool compact_all = false) {
    if (snapshot_done_) {
      return done(Error{ErrorCode::kConflict, "a snapshot is already being taken on request", {}});
    }
    if (raft_state(&raft_) != RAFT_LEADER) {
      return done(Error{ErrorCode::kNoLeader, "snapshots on request are taken by the leader", {}});
    }
    snapshot_done_ = std::move(done);
    snapshot_target_ = raft_last_applied(&raft_) + 1;
    snapshot_saved_threshold_ = raft_.snapshot.threshold;
    snapshot_saved_trailing_ = raft_.snapshot.trailing;
    snapshot_deadline_ = absl::Now() + absl::Seconds(30);
    raft_set_snapshot_threshold(&raft_, 1);
    if (compact_all) raft_set_snapshot_trailing(&raft_, 0);
    snapshot_barrier();
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

  void snapshot_barrier() {
    auto p = std::make_unique<Proposal>();
    p->node = this;
    p->barrier_cb = [this](Status st) {
      if (!st.ok()) finish_snapshot(st.error());
    };
    submit(std::move(p));
  }

  // Status timer: completes a requested snapshot once one covers its target.
  void poll_snapshot() {
    if (!snapshot_done_) return;
    if (raft_.log.snapshot.last_index >= snapshot_target_ && raft_.snapshot.pending.term == 0) {
      return finish_snapshot(raft_.log.snapshot.last_index);
    }
    if (absl::Now() > snapshot_deadline_) {
      return finish_snapshot(
          Error{ErrorCode::kUnavailable, "the snapshot did not complete within 30s", {}});
    }
    // A snapshot already in progress when the barrier was applied kept
    // libraft from starting ours: apply another entry once it is done.
    if (raft_.snapshot.pending.term == 0 && raft_state(&raft_) == RAFT_LEADER &&
        raft_last_applied(&raft_) >= snapshot_target_ && ++snapshot_polls_ % 10 == 0) {
      snapshot_barrier();
    }
  }

  void finish_snapshot(Result<uint64_t> result) {
    if (!snapshot_done_) return;
    raft_set_snapshot_threshold(&raft_, snapshot_saved_threshold_);
    raft_set_snapshot_trailing(&raft_, snapshot_saved_trailing_);
    auto done = std::move(snapshot_done_);
    snapshot_done_ = nullptr;
    done(std::move(result));
  }

  // ---- FSM (loop thread) ----

  static int fsm_apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
    auto* self = static_cast<RaftNodeImpl*>(fsm->data);
    // libraft applies entries in order and advances last_applied after each
    // (commands, barriers and configuration changes alike), so the entry
    // being applied is the one after it.
    uint64_t index = raft_last_applied(&self->raft_) + 1;
    *result = self->state_machine_
                  .apply(index, std::string_view(static_cast<const char*>(buf->base), buf->len),
                         self->awaited_indexes_.count(index) != 0)
                  .release();
    self->log_bytes_since_snapshot_ += buf->len;
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
  static constexpr unsigned kMaxThresholdFactor = 16;

  // Loop thread.
  void pace_snapshots() {
    if (snapshot_done_) return;  // a snapshot on request sets its own threshold
    const uint64_t image = last_image_bytes_.load();
    const bool hold = image >= config_.paced_snapshot_bytes &&
                      log_bytes_since_snapshot_ < std::min(image / 4, kMaxLogBytesBetweenSnapshots);
    const unsigned base = config_.snapshot_threshold;
    const unsigned threshold = hold ? static_cast<unsigned>(std::min<uint64_t>(
                                          uint64_t{base} * kMaxThresholdFactor, UINT_MAX))
                                    : base;
    if (raft_.snapshot.threshold != threshold) raft_set_snapshot_threshold(&raft_, threshold);
  }

  // Buffers are ours (FSM version >= 2): freed in fsm_snapshot_finalize.
  // Loop thread: the image is cut in fsm_snapshot_async; the log written
  // from here on counts towards the next snapshot.
  static int fsm_snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
    static_cast<RaftNodeImpl*>(fsm->data)->log_bytes_since_snapshot_ = 0;
    *bufs = nullptr;
    *n_bufs = 0;
    return 0;
  }

  // Thread pool: the image comes from the store's own consistent snapshot
  // while applies go on. It may therefore be newer than the index libraft
  // records for it, which is safe: the image carries its applied index and
  // replayed entries at or below it are skipped.
  static int fsm_snapshot_async(struct raft_fsm* fsm, struct raft_buffer* bufs[],
                                unsigned* n_bufs) {
    auto* self = static_cast<RaftNodeImpl*>(fsm->data);
    auto image = self->store_->serialize_snapshot();
    if (!image.ok()) {
      spdlog::error("raft: snapshot failed: {}", image.error().message);
      return RAFT_IOERR;
    }
    // libraft reads the buffer until fsm_snapshot_finalize, so the image
    // is lent rather than copied (it can be hundreds of MiB). libraft takes
    // one snapshot at a time; finalize runs on the loop thread after this
    // work item completes, which orders the two.
    auto* arr = static_cast<struct raft_buffer*>(raft_malloc(sizeof(struct raft_buffer)));
    if (arr == nullptr) return RAFT_NOMEM;
    self->snapshot_image_ = std::make_unique<std::string>(std::move(*image));
    self->last_image_bytes_.store(self->snapshot_image_->size());
    arr[0].base = self->snapshot_image_->data();
    arr[0].len = self->snapshot_image_->size();
    *bufs = arr;
    *n_bufs = 1;
    return 0;
  }

  static int fsm_snapshot_finalize(struct raft_fsm* fsm, struct raft_buffer* bufs[],
                                   unsigned* n_bufs) {
    if (*bufs != nullptr) raft_free(*bufs);
    *bufs = nullptr;
    *n_bufs = 0;
    static_cast<RaftNodeImpl*>(fsm->data)->snapshot_image_.reset();
    return 0;
  }

  // On success the FSM owns buf->base (libraft's contract). At start-up
  // libraft restores its latest snapshot before replaying the log; when the
  // store already holds that state (the usual restart) nothing is written.
  static int fsm_restore(struct raft_fsm* fsm, struct raft_buffer* buf) {
    auto* self = static_cast<RaftNodeImpl*>(fsm->data);
    std::string_view image(static_cast<const char*>(buf->base), buf->len);
    self->last_image_bytes_.store(buf->len);
    std::string error;
    switch (self->state_machine_.restore(image, &error)) {
      case StateMachine::RestoreResult::kCorrupt:
        spdlog::error("raft: snapshot image rejected: {}", error);
        return RAFT_CORRUPT;
      case StateMachine::RestoreResult::kFailed:
        spdlog::error("raft: snapshot restore failed: {}", error);
        return RAFT_IOERR;
      case StateMachine::RestoreResult::kAlreadyHeld:
        spdlog::info("raft: the store at index {} already holds the snapshot",
                     self->store_->applied_index());
        break;
      case StateMachine::RestoreResult::kRestored:
        spdlog::info("raft: restored snapshot at index {}", self->store_->applied_index());
        break;
    }
    raft_free(buf->base);
    return 0;
  }

  // ---- io extension ----

  struct AsyncWork {
    uv_work_t work{};
    struct raft_io_async_work* req = nullptr;
    raft_io_async_work_cb cb = nullptr;
    int status = 0;
  };

  // raft_io.async_work: run req->work on libuv's thread pool, then the
  // callback on the loop thread. Called on the loop thread.
  static int io_async_work(struct raft_io* io, struct raft_io_async_work* req,
                           raft_io_async_work_cb cb) {
    auto* self = t_loop_node;
    CHRONOS_CHECK(self != nullptr && &self->io_ == io) << "async_work off the loop thread";
    auto* w = new AsyncWork;
    w->req = req;
    w->cb = cb;
    w->work.data = w;
    ++self->pending_async_work_;
    int rv = uv_queue_work(
        &self->loop_, &w->work,
        [](uv_work_t* work) {
          auto* aw = static_cast<AsyncWork*>(work->data);
          aw->status = aw->req->work(aw->req);
        },
        [](uv_work_t* work, int status) {
          std::unique_ptr<AsyncWork> aw(static_cast<AsyncWork*>(work->data));
          aw->cb(aw->req, status == UV_ECANCELED ? RAFT_CANCELED : aw->status);
          RaftNodeImpl* node = t_loop_node;
          --node->pending_async_work_;
          node->close_raft_when_idle();
        });
    if (rv != 0) {
      --self->pending_async_work_;
      delete w;
      return RAFT_IOERR;
    }
    return 0;
  }

  // The node whose loop runs on this thread (set by run_loop; also during
  // init, which calls into libraft before the loop thread exists).
  static thread_local RaftNodeImpl* t_loop_node;

  // ---- status ----

  // The clock of the leadership lease: the same monotonic clock the
  // scheduler compares RaftStatus::lease_until with.
  static absl::Duration monotonic_now() { return RealClock::instance()->monotonic(); }

  static void on_status_timer(uv_timer_t* t) {
    auto* self = static_cast<RaftNodeImpl*>(t->data);
    self->refresh_status();
    self->poll_snapshot();
    self->abort_stuck_change();
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
    s.role = role_of(raft_state(&raft_));
    raft_id leader_id = 0;
    const char* leader_address = nullptr;
    raft_leader(&raft_, &leader_id, &leader_address);
    s.leader_id = leader_id;
    if (leader_address != nullptr) s.leader_address = leader_address;
    s.term = raft_.current_term;
    s.commit_index = raft_.commit_index;
    s.applied_index = raft_last_applied(&raft_);
    s.last_index = raft_last_index(&raft_);
    // While libraft steps down it frees the leader's progress array and
    // then fails pending requests, whose callbacks may refresh: the state
    // still reads "leader" then, but progress is gone.
    const bool leading =
        raft_state(&raft_) == RAFT_LEADER && raft_.leader_state.progress != nullptr;
    const raft_time now = raft_.io->time(raft_.io);
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      const auto& srv = raft_.configuration.servers[i];
      MemberInfo m;
      m.id = srv.id;
      m.address = srv.address ? srv.address : "";
      m.role = std::string(member_role(srv.role));
      if (leading) {
        // progress[] is parallel to the configuration's servers.
        m.reachable = srv.id == config_.id || raft_.leader_state.progress[i].recent_recv;
        m.match_index = srv.id == config_.id ? raft_last_index(&raft_)
                                             : raft_.leader_state.progress[i].match_index;
      } else if (srv.id == leader_id && s.role == Role::kFollower) {
        // Followers restart the election timer on every message from the
        // leader.
        int64_t since = static_cast<int64_t>(now - raft_.election_timer_start);
        m.last_contact_ms = since;
        m.reachable = since < absl::ToInt64Milliseconds(config_.election_timeout);
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
                                              raft_.transfer != nullptr, now_mono,
                                              absl::Nanoseconds(lease_wanted_until_ns_.load()))) {
      auto p = std::make_unique<Proposal>();
      p->node = this;
      uint64_t term = s.term;
      p->barrier_cb = [this, term, now_mono](Status st) {
        leadership_.barrier_done(term, now_mono, st.ok());
        if (st.ok()) refresh_status();
      };
      submit(std::move(p));
    }
    if (s.role == Role::kLeader && leading) {
      // Once that barrier is applied the leader has every committed entry;
      // later entries are applied in the same loop turn that commits them
      // (a refresh from inside an apply batch may see commit > applied for
      // a moment, which is not lag).
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
  struct raft_uv_transport transport_ {};
  struct raft_io io_ {};
  struct raft_fsm fsm_ {};
  struct raft raft_ {};
  bool loop_open_ = false;
  bool raft_open_ = false;
  bool closing_ = false;
  bool handles_open_ = false;
  bool wakeup_open_ = false;    // guarded by queue_mu_ once the loop runs
  int pending_async_work_ = 0;  // io_async_work items not yet called back
  uv_timer_t close_timer_{};    // polls close_raft_when_idle during shutdown
  int close_polls_ = 0;
  std::atomic<bool> thread_started_{false};
  StateMachine state_machine_;
  LeadershipTracker leadership_;
  // want_lease_until's argument in nanoseconds (any thread).
  std::atomic<int64_t> lease_wanted_until_ns_{std::numeric_limits<int64_t>::min()};
  raft_time change_started_ms_ = 0;  // of the pending configuration change (io time)
  // A snapshot requested through take_snapshot (at most one at a time).
  std::function<void(Result<uint64_t>)> snapshot_done_;
  uint64_t snapshot_target_ = 0;
  unsigned snapshot_saved_threshold_ = 0;
  unsigned snapshot_saved_trailing_ = 0;
  bool compacting_ = false;  // compact_if_restored's snapshot is running
  bool compacted_ = false;   // ... and has completed
  absl::Time snapshot_deadline_;
  unsigned snapshot_polls_ = 0;
  // Snapshot pacing (pace_snapshots): loop thread, except last_image_bytes_,
  // which the thread pool's fsm_snapshot_async also writes.
  uint64_t log_bytes_since_snapshot_ = 0;
  std::atomic<uint64_t> last_image_bytes_{0};
  // The image lent to libraft by fsm_snapshot_async until finalize.
  std::unique_ptr<std::string> snapshot_image_;
  std::unordered_set<uint64_t> awaited_indexes_;  // our proposals not yet applied
  std::thread thread_;

  std::mutex queue_mu_;
  std::deque<std::unique_ptr<Proposal>> queue_;  // guarded by queue_mu_
  bool stopping_ = false;                        // guarded by queue_mu_
  size_t pending_ = 0;  // admitted proposals not yet completed; guarded by queue_mu_

  mutable std::mutex status_mu_;
  RaftStatus status_;  // guarded by status_mu_
};

thread_local RaftNodeImpl* RaftNodeImpl::t_loop_node = nullptr;

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
