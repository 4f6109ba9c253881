#include "sim/cluster.h"

#include <cstring>

#include "base/check.h"
#include "base/strings.h"
#include "raft/entry_framing.h"

namespace chronos::sim {

namespace {

Error raft_error(int rv, std::string_view what) {
  if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST) {
    return Error{ErrorCode::kNoLeader, str_cat(what, ": ", raft_strerror(rv)), {}};
  }
  return Error{ErrorCode::kUnavailable, str_cat(what, ": ", raft_strerror(rv)), {}};
}

}  // namespace

// One raft_apply in flight; owned by libraft's request until on_apply_done.
struct Cluster::Proposal {
  struct raft_apply req {};
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
  struct raft_barrier req {};
  Server* server = nullptr;
  uint64_t generation = 0;
  uint64_t term = 0;
  absl::Duration proposed_at;
};

// One append handed to the fixture's io on behalf of libraft's request.
struct Cluster::Append {
  struct raft_io_append req {};
  struct raft_io_append* orig = nullptr;
  raft_io_append_cb orig_cb = nullptr;
  Server* server = nullptr;
  unsigned n = 0;
};

Result<std::unique_ptr<Cluster>> Cluster::create(ClusterOptions options, AppliedHook on_applied) {
  const auto n = static_cast<unsigned>(options.stores.size());
  CHRONOS_CHECK(n >= 1 && n <= RAFT_FIXTURE_MAX_SERVERS)
      << "a fixture holds 1.." << RAFT_FIXTURE_MAX_SERVERS << " servers";
  CHRONOS_CHECK(options.clock != nullptr) << "the cluster needs the processes' clock";
  std::unique_ptr<Cluster> c(new Cluster());
  c->on_applied_ = std::move(on_applied);
  c->clock_ = options.clock;
  c->election_timeout_ms_ = options.election_timeout_ms;
  // libraft 0.15 reads fields of the fixture before setting them.
  std::memset(&c->fixture_, 0, sizeof c->fixture_);
  int rv = raft_fixture_initialize(&c->fixture_);
  if (rv != 0) return Error::internal(str_cat("raft_fixture_initialize: ", raft_strerror(rv)));
  c->fixture_open_ = true;

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
    s->leadership =
        std::make_unique<raft::LeadershipTracker>(absl::Milliseconds(options.election_timeout_ms));
    s->fsm.version = 2;  // the fixture's io has no async_work, which version 3 needs
    s->fsm.data = s.get();
    s->fsm.apply = &Cluster::fsm_apply;
    s->fsm.snapshot = &Cluster::fsm_snapshot;
    s->fsm.snapshot_finalize = &Cluster::fsm_snapshot_finalize;
    s->fsm.restore = &Cluster::fsm_restore;
    rv = raft_fixture_grow(&c->fixture_, &s->fsm);
    if (rv != 0) return Error::internal(str_cat("raft_fixture_grow: ", raft_strerror(rv)));
    s->raft = raft_fixture_get(&c->fixture_, i);
    // libraft keeps its struct raft in io->data; ours goes in raft->data.
    s->raft->data = s.get();
    struct raft_io* io = &c->fixture_.servers[i].io;
    s->fixture_append = io->append;
    s->fixture_truncate = io->truncate;
    io->append = &Cluster::io_append;
    io->truncate = &Cluster::io_truncate;
    raft_set_heartbeat_timeout(
        s->raft, i < options.heartbeat_timeout_ms.size() ? options.heartbeat_timeout_ms[i] : 100);
    raft_set_election_timeout(s->raft, options.election_timeout_ms);
    raft_set_snapshot_threshold(s->raft, options.snapshot_threshold);
    raft_set_snapshot_trailing(s->raft, options.snapshot_trailing);
    raft_set_pre_vote(s->raft, true);
    c->servers_.push_back(std::move(s));
    c->sides_.push_back(0);
  }

  struct raft_configuration conf;
  rv = raft_fixture_configuration(&c->fixture_, n, &conf);
  if (rv == 0) rv = raft_fixture_bootstrap(&c->fixture_, &conf);
  raft_configuration_close(&conf);
  if (rv != 0) return Error::internal(str_cat("bootstrap: ", raft_strerror(rv)));
  for (auto& s : c->servers_) s->persisted = 1;  // the bootstrap configuration entry
  rv = raft_fixture_start(&c->fixture_);
  if (rv != 0) return Error::internal(str_cat("raft_fixture_start: ", raft_strerror(rv)));
  return c;
}

Cluster::~Cluster() {
  // raft_fixture_close completes pending requests with errors; nobody is
  // left to hear about them.
  closing_ = true;
  if (fixture_open_) raft_fixture_close(&fixture_);
  servers_.clear();
}

uint64_t Cluster::now_ms() const { return fixture_.time; }

void Cluster::step() { raft_fixture_step(&fixture_); }

struct raft* Cluster::raft(unsigned i) {
  return servers_[i]->raft;
}

store::Store& Cluster::store(unsigned i) { return *servers_[i]->store; }

bool Cluster::alive(unsigned i) const {
  return raft_fixture_alive(const_cast<struct raft_fixture*>(&fixture_), i);
}

bool Cluster::is_leader(unsigned i) { return raft_state(raft(i)) == RAFT_LEADER; }

uint64_t Cluster::term(unsigned i) { return raft(i)->current_term; }

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
  b->req.data = b;
  b->server = &s;
  b->generation = s.generation;
  b->term = term(i);
  b->proposed_at = now;
  if (raft_barrier(s.raft, &b->req, &Cluster::on_barrier_done) != 0) {
    delete b;
    s.leadership->barrier_done(term(i), now, false);  // asked for again on the next refresh
  }
}

void Cluster::on_barrier_done(struct raft_barrier* req, int status) {
  std::unique_ptr<Barrier> b(static_cast<Barrier*>(req->data));
  Server& s = *b->server;
  if (s.cluster->closing_ || b->generation != s.generation) return;
  s.leadership->barrier_done(b->term, b->proposed_at, status == 0);
}

void Cluster::kill(unsigned i) {
  raft_fixture_kill(&fixture_, i);
  apply_links();
}

void Cluster::revive(unsigned i) {
  raft_fixture_revive(&fixture_, i);
  apply_links();
}

void Cluster::restart_process(unsigned i) {
  Server& s = *servers_[i];
  ++s.generation;
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
      bool saturated = raft_fixture_saturated(&fixture_, i, j);
      if (up && saturated) raft_fixture_desaturate(&fixture_, i, j);
      if (!up && !saturated) raft_fixture_saturate(&fixture_, i, j);
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
  raft_fixture_set_network_latency(&fixture_, i, ms);
}

void Cluster::set_randomized_election_timeout(unsigned i, unsigned ms) {
  raft_fixture_set_randomized_election_timeout(&fixture_, i, ms);
}

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
  struct raft_buffer buf = raft::frame_entry(entry);
  CHRONOS_CHECK(buf.base != nullptr) << "out of memory framing an entry";
  auto p = std::make_unique<Proposal>();
  p->req.data = p.get();
  p->server = &s;
  p->generation = s.generation;
  p->bound = bound_to_process;
  p->cb = std::move(cb);
  p->proposed_at = clock_->monotonic();
  p->term = term(i);
  int rv = raft_apply(s.raft, &p->req, &buf, 1, &Cluster::on_apply_done);
  if (rv != 0) {
    raft_free(buf.base);
    p->cb(raft_error(rv, "raft_apply"));
    return;
  }
  s.awaited.insert(p->req.index);
  p.release();  // owned by the request until on_apply_done
}

Cluster::Server& Cluster::server_of(struct raft_io* io) {
  return *static_cast<Server*>(static_cast<struct raft*>(io->data)->data);
}

// libraft 0.15's in-memory io keeps persisted entries in an array and
// truncates it by length (index - 1), assuming every earlier append was
// flushed. A follower that gets a new leader's conflicting entries while
// its own append of the entries being replaced is still pending (within
// the disk latency) truncates beyond the array: the fixture copies past
// its end (ASan: heap-buffer-overflow in the io's truncate; without ASan a
// double free some steps later). The array is read only by io->load at
// start, which a simulation never repeats, so a truncate of entries not
// yet persisted is dropped; the appends wrapped below keep the array's
// length known.
int Cluster::io_truncate(struct raft_io* io, raft_index index) {
  Server& s = server_of(io);
  if (index - 1 > s.persisted) return 0;
  int rv = s.fixture_truncate(io, index);
  if (rv == 0) s.persisted = index - 1;
  return rv;
}

int Cluster::io_append(struct raft_io* io, struct raft_io_append* req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb) {
  Server& s = server_of(io);
  auto a = std::make_unique<Append>();
  a->req.data = a.get();
  a->orig = req;
  a->orig_cb = cb;
  a->server = &s;
  a->n = n;
  req->cb = cb;
  int rv = s.fixture_append(io, &a->req, entries, n, &Cluster::io_append_done);
  if (rv == 0) a.release();  // owned by the fixture's request until io_append_done
  return rv;
}

void Cluster::io_append_done(struct raft_io_append* req, int status) {
  std::unique_ptr<Append> a(static_cast<Append*>(req->data));
  if (status == 0) a->server->persisted += a->n;
  a->orig_cb(a->orig, status);
}

void Cluster::on_apply_done(struct raft_apply* req, int status, void* result) {
  std::unique_ptr<Proposal> p(static_cast<Proposal*>(req->data));
  std::unique_ptr<store::ApplyOutcome> outcome(static_cast<store::ApplyOutcome*>(result));
  Server& s = *p->server;
  s.awaited.erase(req->index);
  if (s.cluster->closing_) return;
  if (p->bound && p->generation != s.generation) return;
  if (status != 0) {
    p->cb(raft_error(status, "proposal not applied"));
    return;
  }
  CHRONOS_CHECK(outcome != nullptr) << "applied entry " << req->index << " has no outcome";
  if (outcome->skipped) {
    p->cb(Error::internal(str_cat("entry ", req->index, " was skipped: the store is ahead")));
    return;
  }
  if (p->bound) s.leadership->committed(p->term, p->proposed_at);
  p->cb(std::move(*outcome));
}

int Cluster::fsm_apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  Server& s = *static_cast<Server*>(fsm->data);
  // libraft applies in order and advances last_applied after every entry
  // (barriers included), so this entry is the one after it.
  const uint64_t index = raft_last_applied(s.raft) + 1;
  *result = s.state_machine
                ->apply(index, std::string_view(static_cast<const char*>(buf->base), buf->len),
                        s.awaited.count(index) != 0)
                .release();
  return 0;
}

int Cluster::fsm_snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  Server& s = *static_cast<Server*>(fsm->data);
  auto image = s.store->serialize_snapshot();
  if (!image.ok()) return RAFT_IOERR;
  int rv = raft::image_to_snapshot_buffers(*image, bufs, n_bufs);
  if (rv == 0) ++s.snapshots;
  return rv;
}

int Cluster::fsm_snapshot_finalize(struct raft_fsm*, struct raft_buffer* bufs[], unsigned* n_bufs) {
  raft::free_snapshot_buffers(bufs, n_bufs);
  return 0;
}

// raft_node's restore: on success the FSM owns buf->base.
int Cluster::fsm_restore(struct raft_fsm* fsm, struct raft_buffer* buf) {
  Server& s = *static_cast<Server*>(fsm->data);
  std::string error;
  switch (s.state_machine->restore(std::string_view(static_cast<const char*>(buf->base), buf->len),
                                   &error)) {
    case raft::StateMachine::RestoreResult::kCorrupt:
      return RAFT_CORRUPT;
    case raft::StateMachine::RestoreResult::kFailed:
      return RAFT_IOERR;
    case raft::StateMachine::RestoreResult::kRestored:
      ++s.restores;
      break;
    case raft::StateMachine::RestoreResult::kAlreadyHeld:
      break;
  }
  raft_free(buf->base);
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
