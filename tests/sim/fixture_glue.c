#include "sim/fixture_glue.h"

#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>

#include "raft/libraft_glue_internal.h"

_Static_assert(SF_MAX_SERVERS == RAFT_FIXTURE_MAX_SERVERS, "fixture size");

/* libraft 0.22's fixture io truncates its persisted-entries array as if
 * the array always started at index 1. After a snapshot put with no
 * trailing entries (every snapshot a follower installs) it starts later, and
 * a truncate then copies past the array's end (ASan: heap-buffer-overflow in
 * ioMethodTruncate, fixture.c:666; without ASan a double free later; seed
 * 40 of 300). The array is read only by io->load at start, which a
 * simulation never repeats, so once a server has put such a snapshot its
 * truncates are dropped (the fixture's own truncate to 1 inside that put
 * still runs). libraft's own log is not touched. */
struct hooks {
  struct raft_io *io;
  int (*truncate)(struct raft_io *, raft_index);
  int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                      const struct raft_snapshot *, raft_io_snapshot_put_cb);
  bool compacted;
};

struct tracer {
  struct raft_tracer tracer;
  struct sf_cluster *cluster;
  unsigned server;
};

struct sf_cluster {
  struct raft_fixture fixture;
  struct raft_fsm fsms[RAFT_FIXTURE_MAX_SERVERS];
  struct hooks hooks[RAFT_FIXTURE_MAX_SERVERS];
  struct tracer tracers[RAFT_FIXTURE_MAX_SERVERS];
  void (*trace)(void *data, unsigned server, const char *message);
  void *trace_data;
  unsigned n;
};

/* libraft's diagnostics up to info (the fixture's own tracer prints them
 * all to stderr: a gigabyte per two thousand seeds). */
static void emit_trace(struct raft_tracer *t, int type, const void *data) {
  struct tracer *tr = t->impl;
  const struct raft_tracer_info *info = data;
  if (type != RAFT_TRACER_DIAGNOSTIC || info->diagnostic.level > 3) return;
  if (tr->cluster->trace != NULL) {
    tr->cluster->trace(tr->cluster->trace_data, tr->server, info->diagnostic.message);
  }
}

/* The one cluster (sf_create): the fixture gives an io no user data, so its
 * hooks are found through it. */
static sf_cluster *clusters_by_io_owner;

static struct hooks *hooks_of(struct raft_io *io) {
  sf_cluster *c = clusters_by_io_owner;
  for (unsigned i = 0; c != NULL && i < c->n; ++i) {
    if (c->hooks[i].io == io) return &c->hooks[i];
  }
  abort(); /* an io the glue did not hook */
}

static int io_truncate(struct raft_io *io, raft_index index) {
  struct hooks *h = hooks_of(io);
  if (getenv("SF_KEEP_TRUNCATES") == NULL && h->compacted && index != 1) return 0;
  return h->truncate(io, index);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb) {
  struct hooks *h = hooks_of(io);
  if (trailing == 0) h->compacted = true;
  return h->snapshot_put(io, trailing, req, snapshot, cb);
}

sf_cluster *sf_create(void) {
  if (clusters_by_io_owner != NULL) abort(); /* one at a time */
  sf_cluster *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (raft_fixture_initialize(&c->fixture) != 0) {
    free(c);
    return NULL;
  }
  clusters_by_io_owner = c;
  return c;
}

void sf_destroy(sf_cluster *c) {
  raft_fixture_close(&c->fixture);
  if (clusters_by_io_owner == c) clusters_by_io_owner = NULL;
  free(c);
}

int sf_grow(sf_cluster *c, const struct cr_fsm *fsm) {
  if (c->n >= RAFT_FIXTURE_MAX_SERVERS) return RAFT_TOOMANY;
  /* The fixture's io has no async_work: version 2, snapshots cut in
   * fsm->snapshot. */
  cr_fsm_bind(&c->fsms[c->n], 2, fsm);
  int rv = raft_fixture_grow(&c->fixture, &c->fsms[c->n]);
  if (rv != 0) return rv;
  struct hooks *h = &c->hooks[c->n];
  h->io = raft_fixture_get(&c->fixture, c->n)->io;
  h->truncate = h->io->truncate;
  h->snapshot_put = h->io->snapshot_put;
  h->io->truncate = io_truncate;
  h->io->snapshot_put = io_snapshot_put;
  struct tracer *tr = &c->tracers[c->n];
  tr->cluster = c;
  tr->server = c->n;
  tr->tracer.impl = tr;
  tr->tracer.version = 2;
  tr->tracer.emit = emit_trace;
  raft_fixture_get(&c->fixture, c->n)->tracer = &tr->tracer;
  ++c->n;
  return 0;
}

unsigned sf_size(sf_cluster *c) { return c->n; }

void sf_set_trace(sf_cluster *c, void (*fn)(void *data, unsigned server, const char *message),
                  void *data) {
  c->trace = fn;
  c->trace_data = data;
}

static struct raft *server(sf_cluster *c, unsigned i) { return raft_fixture_get(&c->fixture, i); }

void sf_configure(sf_cluster *c, unsigned i, unsigned heartbeat_ms, unsigned election_ms,
                  unsigned snapshot_threshold, unsigned snapshot_trailing) {
  struct raft *r = server(c, i);
  raft_set_heartbeat_timeout(r, heartbeat_ms);
  raft_set_election_timeout(r, election_ms);
  raft_set_snapshot_threshold(r, snapshot_threshold);
  raft_set_snapshot_trailing(r, snapshot_trailing);
  raft_set_pre_vote(r, true);
}

int sf_bootstrap(sf_cluster *c) {
  struct raft_configuration conf;
  int rv = raft_fixture_configuration(&c->fixture, c->n, &conf);
  if (rv != 0) return rv;
  rv = raft_fixture_bootstrap(&c->fixture, &conf);
  raft_configuration_close(&conf);
  return rv;
}

int sf_start(sf_cluster *c) { return raft_fixture_start(&c->fixture); }

uint64_t sf_time(sf_cluster *c) { return c->fixture.time; }
void sf_step(sf_cluster *c) { raft_fixture_step(&c->fixture); }

bool sf_alive(sf_cluster *c, unsigned i) { return raft_fixture_alive(&c->fixture, i); }
void sf_kill(sf_cluster *c, unsigned i) { raft_fixture_kill(&c->fixture, i); }
void sf_revive(sf_cluster *c, unsigned i) { raft_fixture_revive(&c->fixture, i); }
bool sf_saturated(sf_cluster *c, unsigned from, unsigned to) {
  return raft_fixture_saturated(&c->fixture, from, to);
}
void sf_saturate(sf_cluster *c, unsigned from, unsigned to) {
  raft_fixture_saturate(&c->fixture, from, to);
}
void sf_desaturate(sf_cluster *c, unsigned from, unsigned to) {
  raft_fixture_desaturate(&c->fixture, from, to);
}
void sf_set_network_latency(sf_cluster *c, unsigned i, unsigned ms) {
  raft_fixture_set_network_latency(&c->fixture, i, ms);
}
void sf_set_randomized_election_timeout(sf_cluster *c, unsigned i, unsigned ms) {
  raft_fixture_set_randomized_election_timeout(&c->fixture, i, ms);
}

int sf_state(sf_cluster *c, unsigned i) { return (int)raft_state(server(c, i)); }
uint64_t sf_term(sf_cluster *c, unsigned i) { return raft_current_term(server(c, i)); }
uint64_t sf_last_applied(sf_cluster *c, unsigned i) { return raft_last_applied(server(c, i)); }
uint64_t sf_last_index(sf_cluster *c, unsigned i) { return raft_last_index(server(c, i)); }
uint64_t sf_commit_index(sf_cluster *c, unsigned i) { return raft_commit_index(server(c, i)); }
uint64_t sf_next_timeout(sf_cluster *c, unsigned i) { return raft_timeout(server(c, i)); }

int sf_apply(sf_cluster *c, unsigned i, void *base, size_t len, void *data,
             void (*cb)(void *data, uint64_t index, int status, void *result), uint64_t *index) {
  return cr_raft_apply(server(c, i), base, len, data, cb, index);
}

int sf_barrier(sf_cluster *c, unsigned i, void *data, void (*cb)(void *data, int status)) {
  return cr_raft_barrier(server(c, i), data, cb);
}
