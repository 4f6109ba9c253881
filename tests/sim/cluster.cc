#include "sim/cluster.h"

#include <cstring>

#include "base/check.h"
#include "base/strings.h"
#include "raft/entry_framing.h"

namespace chronos::sim {

namespace {

Error raft_error(int rv, std::string_view what) {
  if (rv == CR_NOTLEADER || rv == CR_LEADERSHIPLOST) {
    return Error{ErrorCode::kNoLeader, str_cat(what, ": ", cr_strerror(rv)), {}};
  }
  return Error{ErrorCode::kUnavailable, str_cat(what, ": ", cr_strerror(rv)), {}};
}

}  // namespace

// One raft_apply in flight; owned by the request until on_apply_done.
struct Cluster::Proposal {
  Server* server = nullptr;
  uint64_t generation = 0;
  bool bound = true;
  ProposeCallback cb;
  absl::Duration proposed_at;  // for the leadership lease
  uint64_t term = 0;
};

// A barrier the LeadershipTracker asked for; owned by the request until it
// completes.
struct Cluster::Barrier {
  Server* server = nullptr;
  uint64_t generation = 0;
  uint64_t term = 0;
  absl::Duration proposed_at;
};

Result<std::unique_ptr<Cluster>> Cluster::create(ClusterOptions options, AppliedHook on_applied) {
  const auto n = static_cast<unsigned>(options.stores.size());
  CHRONOS_CHECK(n >= 1 && n <= SF_MAX_SERVERS)
      << "a fixture holds 1.." << SF_MAX_SERVERS << " servers";
  CHRONOS_CHECK(options.clock != nullptr) << "the cluster needs the processes' clock";
  std::unique_ptr<Cluster> c(new Cluster());
  c->on_applied_ = std::move(on_applied);
  c->clock_ = options.clock;
  c->election_timeout_ms_ = options.election_timeout_ms;
  c->fixture_ = sf_create();
  if (c->fixture_ == nullptr) return Error::internal("raft_fixture_initialize: out of memory");
  c->trace_ = std::move(options.trace);
  sf_set_trace(
      c->fixture_,
      [](void* data, unsigned i, const char* message) {
        auto* self = static_cast<Cluster*>(data);
        if (self->trace_) self->trace_(i, message);
      },
      c.get());
  int rv = 0;

  for (unsigned i = 0; i < n; ++i) {
    auto s = std::make_unique<Server>();
    s->cluster = c.get();
    s->index = i;
    s->store = std::move(options.stores[i]);
    CHRONOS_CHECK(s->store != nullptr && s->store->applied_index() == 0)
        << "server " << i << " needs an empty store";
    Cluster* cluster = c.get();
    s->state_machine = std::make_unique<raft::StateMachine>(
        s->store.get(),
        [cluster, i](const model::CommandBatch& batch, const store::ApplyOutcome& outcome) {
          if (cluster->on_applied_) cluster->on_applied_(i, batch, outcome);
        });
    // A small queue, so that both a store lagging libraft and a full queue
    // (applied in place here, where raft_node's loop would wait) happen.
    s->applier = std::make_unique<raft::Applier>(s->state_machine.get(),
                                                 raft::Applier::Limits{8, 1u << 20});
    s->leadership =
        std::make_unique<raft::LeadershipTracker>(absl::Milliseconds(options.election_timeout_ms));
    s->fsm = cr_fsm{s.get(), &Cluster::fsm_apply, &Cluster::fsm_snapshot, nullptr,
                    &Cluster::fsm_snapshot_finalize, &Cluster::fsm_restore, nullptr};
    rv = sf_grow(c->fixture_, &s->fsm);
    if (rv != 0) return Error::internal(str_cat("raft_fixture_grow: ", cr_strerror(rv)));
    sf_configure(c->fixture_, i,
                 i < options.heartbeat_timeout_ms.size() ? options.heartbeat_timeout_ms[i] : 100,
                 options.election_timeout_ms, options.snapshot_threshold,
                 options.snapshot_trailing);
    sf_set_randomized_election_timeout(c->fixture_, i,
                                       i < options.first_election_timeout_ms.size()
                                           ? options.first_election_timeout_ms[i]
                                           : options.election_timeout_ms);
    c->servers_.push_back(std::move(s));
    c->sides_.push_back(0);
  }

  rv = sf_bootstrap(c->fixture_);
  if (rv != 0) return Error::internal(str_cat("bootstrap: ", cr_strerror(rv)));
  rv = sf_start(c->fixture_);
  if (rv != 0) return Error::internal(str_cat("raft_fixture_start: ", cr_strerror(rv)));
  return c;
}

Cluster::~Cluster() {
  // raft_fixture_close completes pending requests with errors; nobody is
  // left to hear about them.
  closing_ = true;
  if (fixture_ != nullptr) sf_destroy(fixture_);
  servers_.clear();
}

uint64_t Cluster::now_ms() const { return sf_time(fixture_); }

// The applier runs one item per step on every live server, so the store
// lags what libraft counts as applied, as raft_node's applier thread may.
void Cluster::step() {
  sf_step(fixture_);
  for (auto& s : servers_) {
    if (alive(s->index)) s->applier->run_one();
  }
}

void Cluster::drain(Server& s) {
  while (s.applier->run_one()) {
  }
}

store::Store& Cluster::store(unsigned i) { return *servers_[i]->store; }

int Cluster::state(unsigned i) { return sf_state(fixture_, i); }
uint64_t Cluster::last_index(unsigned i) { return sf_last_index(fixture_, i); }
uint64_t Cluster::commit_index(unsigned i) { return sf_commit_index(fixture_, i); }
uint64_t Cluster::last_applied(unsigned i) {
  // As raft_node's status: libraft's count once the applier is idle.
  const raft::Applier& applier = *servers_[i]->applier;
  return applier.idle() ? sf_last_applied(fixture_, i) : applier.last_applied();
}

bool Cluster::alive(unsigned i) const { return sf_alive(fixture_, i); }

bool Cluster::is_leader(unsigned i) { return state(i) == CR_LEADER; }

uint64_t Cluster::term(unsigned i) { return sf_term(fixture_, i); }

bool Cluster::caught_up(unsigned i) {
  return is_leader(i) && servers_[i]->leadership->caught_up(term(i));
}

absl::Duration Cluster::lease_until(unsigned i) {
  return servers_[i]->leadership->lease_until(term(i));
}

void Cluster::want_lease_until(unsigned i, absl::Duration until) {
  servers_[i]->lease_wanted_until = until;
}

void Cluster::refresh(unsigned i) {
  Server& s = *servers_[i];
  const absl::Duration now = clock_->monotonic();
  if (!s.leadership->want_barrier(is_leader(i), term(i), false, now, s.lease_wanted_until)) {
    return;
  }
  auto* b = new Barrier;
  b->server = &s;
  b->generation = s.generation;
  b->term = term(i);
  b->proposed_at = now;
  if (sf_barrier(fixture_, i, b, &Cluster::on_barrier_done) != 0) {
    delete b;
    s.leadership->barrier_done(term(i), now, false);  // asked for again on the next refresh
  }
}

// As raft_node: a committed barrier completes once the applier reaches it.
void Cluster::on_barrier_done(void* data, int status) {
  std::shared_ptr<Barrier> b(static_cast<Barrier*>(data));
  Server& s = *b->server;
  if (s.cluster->closing_ || b->generation != s.generation) return;
  if (status != 0) {
    s.leadership->barrier_done(b->term, b->proposed_at, false);
    return;
  }
  s.applier->push_marker([b] {
    Server& s = *b->server;
    if (s.cluster->closing_ || b->generation != s.generation) return;
    s.leadership->barrier_done(b->term, b->proposed_at, true);
  });
}

void Cluster::kill(unsigned i) {
  sf_kill(fixture_, i);
  apply_links();
}

void Cluster::revive(unsigned i) {
  sf_revive(fixture_, i);
  apply_links();
}

void Cluster::restart_process(unsigned i) {
  Server& s = *servers_[i];
  ++s.generation;
  // The entries queued to its applier are committed: a restarted node
  // replays them from its log; here libraft survives, so they are applied
  // (after the generation moved: the dead process hears of none of them).
  drain(s);
  s.lease_wanted_until = -absl::InfiniteDuration();
  s.leadership =
      std::make_unique<raft::LeadershipTracker>(absl::Milliseconds(election_timeout_ms_));
}

void Cluster::set_side(unsigned i, int side) {
  sides_[i] = side;
  apply_links();
}

// kill/revive touch every link of a server; the sides are laid over them
// again after each change, so a revive does not heal a partition.
void Cluster::apply_links() {
  for (unsigned i = 0; i < size(); ++i) {
    for (unsigned j = 0; j < size(); ++j) {
      if (i == j) continue;
      bool up = alive(i) && alive(j) && sides_[i] == sides_[j];
      bool saturated = sf_saturated(fixture_, i, j);
      if (up && saturated) sf_desaturate(fixture_, i, j);
      if (!up && !saturated) sf_saturate(fixture_, i, j);
    }
  }
}

bool Cluster::in_majority(unsigned i) const {
  if (!alive(i)) return false;
  unsigned n = 0;
  for (unsigned j = 0; j < size(); ++j) n += alive(j) && sides_[j] == sides_[i];
  return n > size() / 2;
}

bool Cluster::majority_live() const {
  for (unsigned i = 0; i < size(); ++i) {
    if (in_majority(i)) return true;
  }
  return false;
}

void Cluster::set_network_latency(unsigned i, unsigned ms) {
  sf_set_network_latency(fixture_, i, ms);
}

void Cluster::set_randomized_election_timeout(unsigned i, unsigned ms) {
  sf_set_randomized_election_timeout(fixture_, i, ms);
}

uint64_t Cluster::next_timeout(unsigned i) { return sf_next_timeout(fixture_, i); }

void Cluster::propose(unsigned i, const model::CommandBatch& batch, ProposeCallback cb,
                      bool bound_to_process) {
  Server& s = *servers_[i];
  std::string entry = model::encode_batch(batch);
  // As raft_node: an entry every replica would refuse never reaches the log.
  if (auto check = model::decode_batch(entry); !check.ok()) {
    cb(Error::internal(
        str_cat("refusing to propose an entry that does not decode: ", check.error().message)));
    return;
  }
  if (!alive(i) || !is_leader(i)) {
    cb(Error{ErrorCode::kNoLeader, "this node is not the leader", {}});
    return;
  }
  cr_buffer buf = raft::frame_entry(entry);
  CHRONOS_CHECK(buf.base != nullptr) << "out of memory framing an entry";
  auto p = std::make_unique<Proposal>();
  p->server = &s;
  p->generation = s.generation;
  p->bound = bound_to_process;
  p->cb = std::move(cb);
  p->proposed_at = clock_->monotonic();
  p->term = term(i);
  uint64_t index = 0;
  int rv = sf_apply(fixture_, i, buf.base, buf.len, p.get(), &Cluster::on_apply_done, &index);
  if (rv != 0) {
    cr_free(buf.base);
    p->cb(raft_error(rv, "raft_apply"));
    return;
  }
  Cluster* cluster = this;
  s.applier->await(index, [cluster, server = &s, generation = p->generation, bound = p->bound,
                           cb = p->cb, index](Result<store::ApplyOutcome> outcome) {
    if (cluster->closing_) return;
    if (bound && generation != server->generation) return;
    if (!outcome.ok()) return cb(std::move(outcome).error());
    if (outcome->skipped) {
      return cb(Error::internal(str_cat("entry ", index, " was skipped: the store is ahead")));
    }
    cb(std::move(outcome).value());
  });
  p.release();  // owned by the request until on_apply_done
}

// As raft_node: committed (the applier answers the proposer), or failed.
void Cluster::on_apply_done(void* data, uint64_t index, int status, void* /*result*/) {
  std::unique_ptr<Proposal> p(static_cast<Proposal*>(data));
  Server& s = *p->server;
  if (status == 0) {
    if (!s.cluster->closing_ && p->bound && p->generation == s.generation) {
      s.leadership->committed(p->term, p->proposed_at);
    }
    s.applier->confirm(index);
    return;
  }
  if (raft::Applier::Completion done = s.applier->abandon(index)) {
    done(raft_error(status, "proposal not applied"));
  }
}

int Cluster::fsm_apply(void* data, const void* base, size_t len, void** result) {
  Server& s = *static_cast<Server*>(data);
  // libraft applies in order and advances last_applied after every entry
  // (barriers included), so this entry is the one after it.
  const uint64_t index = sf_last_applied(s.cluster->fixture_, s.index) + 1;
  const std::string_view entry(static_cast<const char*>(base), len);
  *result = nullptr;  // proposers hear from the applier (Applier::await)
  while (!s.applier->try_push(index, entry)) s.applier->run_one();
  return 0;
}

int Cluster::fsm_snapshot(void* data, cr_buffer** bufs, unsigned* n) {
  Server& s = *static_cast<Server*>(data);
  s.cluster->drain(s);  // as raft_node's image waits for the applier
  auto image = s.store->serialize_snapshot();
  if (!image.ok()) return CR_IOERR;
  int rv = raft::image_to_snapshot_buffers(*image, bufs, n);
  if (rv == 0) ++s.snapshots;
  return rv;
}

int Cluster::fsm_snapshot_finalize(void*, cr_buffer* bufs, unsigned n) {
  raft::free_snapshot_buffers(bufs, n);
  return 0;
}

// raft_node's restore: on success the FSM owns base.
int Cluster::fsm_restore(void* data, void* base, size_t len) {
  Server& s = *static_cast<Server*>(data);
  s.cluster->drain(s);  // as raft_node: queued entries first
  std::string error;
  switch (s.state_machine->restore(std::string_view(static_cast<const char*>(base), len), &error)) {
    case raft::StateMachine::RestoreResult::kCorrupt:
      return CR_CORRUPT;
    case raft::StateMachine::RestoreResult::kFailed:
      return CR_IOERR;
    case raft::StateMachine::RestoreResult::kRestored:
      ++s.restores;
      s.applier->restored(s.store->applied_index());
      break;
    case raft::StateMachine::RestoreResult::kAlreadyHeld:
      break;
  }
  cr_free(base);
  return 0;
}

uint64_t Cluster::snapshots_taken() const {
  uint64_t n = 0;
  for (const auto& s : servers_) n += s->snapshots;
  return n;
}

uint64_t Cluster::snapshots_restored() const {
  uint64_t n = 0;
  for (const auto& s : servers_) n += s->restores;
  return n;
}

}  // namespace chronos::sim
