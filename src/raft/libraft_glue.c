/* libraft 0.22 behind a C interface (libraft_glue.h explains why). Only
 * libraft's public API and documented structs are used. */
#include "raft/libraft_glue.h"

#include "raft/libraft_glue_internal.h"

#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAME_AS_LIBRAFT(name) _Static_assert((int)CR_##name == (int)RAFT_##name, #name)
SAME_AS_LIBRAFT(NOMEM);
SAME_AS_LIBRAFT(BADID);
SAME_AS_LIBRAFT(DUPLICATEID);
SAME_AS_LIBRAFT(DUPLICATEADDRESS);
SAME_AS_LIBRAFT(NOTLEADER);
SAME_AS_LIBRAFT(LEADERSHIPLOST);
SAME_AS_LIBRAFT(SHUTDOWN);
SAME_AS_LIBRAFT(CANTBOOTSTRAP);
SAME_AS_LIBRAFT(CANTCHANGE);
SAME_AS_LIBRAFT(CORRUPT);
SAME_AS_LIBRAFT(CANCELED);
SAME_AS_LIBRAFT(NOCONNECTION);
SAME_AS_LIBRAFT(IOERR);
SAME_AS_LIBRAFT(NOTFOUND);
SAME_AS_LIBRAFT(UNAVAILABLE);
SAME_AS_LIBRAFT(FOLLOWER);
SAME_AS_LIBRAFT(CANDIDATE);
SAME_AS_LIBRAFT(LEADER);
SAME_AS_LIBRAFT(STANDBY);
SAME_AS_LIBRAFT(VOTER);
SAME_AS_LIBRAFT(SPARE);

/* Servers whose last message time is kept; a configuration larger than this
 * reuses the oldest slot (cr_since_last_message_ms then says -1 for it). */
#define CR_MAX_STAMPS 64

struct stamp {
  uint64_t id;
  uint64_t at_ms; /* uv_now */
};

struct cr_node {
  uv_loop_t *loop;
  struct raft raft;
  struct raft_io io;
  struct raft_uv_transport transport;
  struct raft_fsm fsm;
  struct cr_fsm user;
  /* raft_uv's start and the receive callback libraft gave it. */
  int (*io_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
  raft_io_recv_cb recv;
  struct stamp stamps[CR_MAX_STAMPS];
  unsigned n_stamps;
  unsigned next_stamp; /* slot reused when all are taken */
  void (*close_cb)(void *);
  void *close_data;
  /* raft_uv's snapshot_put, and the snapshot being cut on the thread pool
   * (io_snapshot_put): libraft takes one snapshot at a time. */
  int (*io_snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                         const struct raft_snapshot *, raft_io_snapshot_put_cb);
  bool cut_deferred; /* fsm_snapshot_deferred ran: the next put is ours to cut */
  struct {
    bool pending; /* from io_snapshot_put until raft_uv has the image */
    unsigned attempts;
    int status;
    uv_work_t work;
    unsigned trailing;
    struct raft_io_snapshot_put *outer; /* libraft's request */
    struct raft_snapshot snapshot;      /* libraft's, with the image's buffers */
    struct raft_io_snapshot_put inner;  /* ours, to raft_uv */
    struct cr_buffer *bufs;             /* from the user's snapshot_async */
    unsigned n_bufs;
  } cut;
  bool close_deferred; /* cr_close ran while a cut was pending */
};

#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- FSM ---------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result) {
  const struct cr_fsm *user = fsm->data;
  return user->apply(user->data, buf->base, buf->len, result);
}

/* A cr_buffer array from the user turned into the raft_buffer array libraft
 * wants (both cr_malloc'd); the user's array is freed. */
static int to_raft_buffers(int rv, struct cr_buffer *in, unsigned n, struct raft_buffer *out[],
                           unsigned *n_out) {
  if (rv != 0) return rv;
  struct raft_buffer *arr = raft_malloc(sizeof *arr * (n == 0 ? 1 : n));
  if (arr == NULL) {
    raft_free(in);
    return RAFT_NOMEM;
  }
  for (unsigned i = 0; i < n; ++i) {
    arr[i].base = in[i].base;
    arr[i].len = in[i].len;
  }
  raft_free(in);
  *out = arr;
  *n_out = n;
  return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs) {
  const struct cr_fsm *user = fsm->data;
  struct cr_buffer *in = NULL;
  unsigned count = 0;
  int rv = user->snapshot(user->data, &in, &count);
  if (rv == 0 && in == NULL) { /* nothing cut here: the async step does it */
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
  }
  return to_raft_buffers(rv, in, count, bufs, n_bufs);
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs) {
  const struct cr_fsm *user = fsm->data;
  struct cr_buffer *in = NULL;
  unsigned count = 0;
  int rv = user->snapshot_async(user->data, &in, &count);
  return to_raft_buffers(rv, in, count, bufs, n_bufs);
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs) {
  const struct cr_fsm *user = fsm->data;
  struct cr_buffer *copy = NULL;
  unsigned count = *bufs == NULL ? 0 : *n_bufs;
  if (count > 0) {
    copy = malloc(sizeof *copy * count);
    if (copy == NULL) return RAFT_NOMEM;
    for (unsigned i = 0; i < count; ++i) {
      copy[i].base = (*bufs)[i].base;
      copy[i].len = (*bufs)[i].len;
    }
  }
  int rv = user->snapshot_finalize(user->data, copy, count);
  free(copy);
  if (*bufs != NULL) raft_free(*bufs);
  *bufs = NULL;
  *n_bufs = 0;
  return rv;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf) {
  const struct cr_fsm *user = fsm->data;
  return user->restore(user->data, buf->base, buf->len);
}

void cr_fsm_bind(struct raft_fsm *fsm, int version, const struct cr_fsm *user) {
  memset(fsm, 0, sizeof *fsm);
  fsm->version = version;
  fsm->data = (void *)user;
  fsm->apply = fsm_apply;
  fsm->snapshot = fsm_snapshot;
  fsm->restore = fsm_restore;
  fsm->snapshot_finalize = fsm_snapshot_finalize;
  if (version >= 3) fsm->snapshot_async = fsm_snapshot_async;
}

/* ---- receive stamps ------------------------------------------------------- */

static void stamp(cr_node *n, uint64_t id) {
  uint64_t now = uv_now(n->loop);
  for (unsigned i = 0; i < n->n_stamps; ++i) {
    if (n->stamps[i].id == id) {
      n->stamps[i].at_ms = now;
      return;
    }
  }
  unsigned slot = n->n_stamps < CR_MAX_STAMPS ? n->n_stamps++ : n->next_stamp++ % CR_MAX_STAMPS;
  n->stamps[slot].id = id;
  n->stamps[slot].at_ms = now;
}

static void io_recv(struct raft_io *io, struct raft_message *msg) {
  cr_node *n = CONTAINER_OF(io, cr_node, io);
  stamp(n, msg->server_id);
  n->recv(io, msg);
}

/* raft_uv's clock is uv_now, the loop's time cached when the loop last
 * polled. raft_start reads it after loading the log and the snapshot,
 * which takes seconds on a large store while the loop does not run: the
 * election timer then started in the past, and every node of a cluster
 * restarted together became a candidate the moment it was up, colliding
 * with the candidate already waiting for it (split votes, ~1 s more to
 * elect at a million jobs). Reading a fresh time gives a node that just
 * started its full election timeout, as the Raft paper intends. */
static raft_time io_time(struct raft_io *io) {
  cr_node *n = CONTAINER_OF(io, cr_node, io);
  uv_update_time(n->loop);
  return uv_now(n->loop);
}

static bool snapshot_held(void *data, raft_index index) {
  cr_node *n = data;
  return n->user.snapshot_held(n->user.data, index);
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv) {
  cr_node *n = CONTAINER_OF(io, cr_node, io);
  n->recv = recv;
  return n->io_start(io, msecs, tick, io_recv);
}

/* ---- snapshots cut off the loop thread ------------------------------------ */

/* libraft 0.22's v0 path calls fsm->snapshot_async on the loop thread, right
 * after fsm->snapshot (legacy.c, legacyTakeSnapshot; 0.15 ran it on the
 * thread pool), and cutting a large store's image takes seconds: the node
 * would miss heartbeats and lose its leadership. So the glue's
 * snapshot_async only marks the snapshot as deferred, and the io's
 * snapshot_put (which libraft calls next, with the snapshot's metadata)
 * runs the user's snapshot_async on libuv's thread pool, then hands the
 * image to raft_uv's put. libraft sees one put that takes longer; the image
 * is still the user's until snapshot_finalize. The follower's install path
 * (a put of a received snapshot) passes through untouched. */
static int fsm_snapshot_deferred(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs) {
  cr_node *n = CONTAINER_OF(fsm, cr_node, fsm);
  n->cut_deferred = true;
  *bufs = NULL;
  *n_bufs = 0;
  return 0;
}

/* A cut that fails (an I/O error reading the store) is tried again after a
 * pause of 1, 2, ... 5 s; after this many attempts (about a minute) the
 * process ends with the reason: libraft has no way to abandon a snapshot
 * it started other than closing, and a store that cannot be read is not
 * one to keep serving from. */
#define CR_MAX_CUT_ATTEMPTS 15

static void cut_work(uv_work_t *work) {
  cr_node *n = work->data;
  if (n->cut.attempts > 0) {
    /* Retrying a failed cut (CR_MAX_CUT_ATTEMPTS). */
    unsigned s = n->cut.attempts < 5 ? n->cut.attempts : 5;
    struct timespec pause = {(time_t)s, 0};
    nanosleep(&pause, NULL);
  }
  n->cut.bufs = NULL;
  n->cut.n_bufs = 0;
  n->cut.status = n->user.snapshot_async(n->user.data, &n->cut.bufs, &n->cut.n_bufs);
}

static void on_raft_closed(struct raft *r);

/* libraft asserts that a put it started fails only while it is closing
 * (legacy.c, takeSnapshotCb), so a put that cannot go on, which only a
 * broken loop or no memory at all can cause, ends the process with a reason
 * rather than libraft's assertion. */
static void give_up_cut(const char *why) {
  fprintf(stderr, "raft: %s; a snapshot libraft started cannot be abandoned\n", why);
  abort();
}

static void cut_put_done(struct raft_io_snapshot_put *inner, int status) {
  cr_node *n = inner->data;
  struct raft_io_snapshot_put *outer = n->cut.outer;
  raft_free(n->cut.snapshot.bufs);
  n->cut.snapshot.bufs = NULL;
  n->cut.outer = NULL;
  outer->cb(outer, status);
}

static void cut_after_work(uv_work_t *work, int status) {
  cr_node *n = work->data;
  struct raft_io_snapshot_put *outer = n->cut.outer;
  int rv = status != 0 ? status : n->cut.status;
  struct raft_buffer *arr = NULL;
  unsigned count = 0;
  if (rv == 0) {
    rv = to_raft_buffers(0, n->cut.bufs, n->cut.n_bufs, &arr, &count);
  } else if (n->cut.bufs != NULL) {
    raft_free(n->cut.bufs);
  }
  n->cut.bufs = NULL;
  if (n->close_deferred) {
    /* libraft accepts a cancelled put only once it is closing. */
    raft_free(arr);
    n->cut.pending = false;
    n->cut.outer = NULL;
    raft_close(&n->raft, on_raft_closed);
    outer->cb(outer, RAFT_CANCELED);
    return;
  }
  if (rv != 0) {
    if (++n->cut.attempts >= CR_MAX_CUT_ATTEMPTS) give_up_cut("the snapshot image could not be cut");
    if (uv_queue_work(n->loop, &n->cut.work, cut_work, cut_after_work) == 0) return;
    give_up_cut("cannot queue the snapshot cut again");
  }
  n->cut.pending = false;
  n->cut.snapshot.bufs = arr;
  n->cut.snapshot.n_bufs = count;
  n->cut.inner.data = n;
  rv = n->io_snapshot_put(&n->io, n->cut.trailing, &n->cut.inner, &n->cut.snapshot, cut_put_done);
  if (rv != 0) give_up_cut("raft_uv refused the snapshot put");
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb) {
  cr_node *n = CONTAINER_OF(io, cr_node, io);
  if (!n->cut_deferred) return n->io_snapshot_put(io, trailing, req, snapshot, cb);
  n->cut_deferred = false;
  req->cb = cb;
  n->cut.pending = true;
  n->cut.attempts = 0;
  n->cut.trailing = trailing;
  n->cut.outer = req;
  n->cut.snapshot = *snapshot;
  n->cut.work.data = n;
  int rv = uv_queue_work(n->loop, &n->cut.work, cut_work, cut_after_work);
  if (rv != 0) {
    n->cut.pending = false;
    n->cut.outer = NULL;
    return RAFT_IOERR;
  }
  return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

int cr_open(uv_loop_t *loop, const char *dir, uint64_t id, const char *address,
            const struct cr_fsm *fsm, cr_node **out, char *errmsg) {
  cr_node *n = calloc(1, sizeof *n);
  *out = n;
  if (n == NULL) {
    snprintf(errmsg, 256, "out of memory");
    return RAFT_NOMEM;
  }
  n->loop = loop;
  n->user = *fsm;
  n->transport.version = 1; /* what raft_uv_tcp_init implements */
  int rv = raft_uv_tcp_init(&n->transport, loop);
  if (rv != 0) {
    snprintf(errmsg, 256, "raft_uv_tcp_init: %s (%.200s)", raft_strerror(rv),
             n->transport.errmsg);
    return rv;
  }
  rv = raft_uv_init(&n->io, loop, dir, &n->transport);
  if (rv != 0) {
    snprintf(errmsg, 256, "raft_uv_init: %s (%.200s)", raft_strerror(rv), n->io.errmsg);
    raft_uv_tcp_close(&n->transport);
    return rv;
  }
  n->io_start = n->io.start;
  n->io.start = io_start;
  n->io.time = io_time;
  n->io_snapshot_put = n->io.snapshot_put;
  n->io.snapshot_put = io_snapshot_put;
  /* 0.22's raft_uv writes snapshots uncompressed (its
   * raft_uv_set_snapshot_compression does nothing) and still reads the
   * LZ4-compressed files of earlier builds. */

  if (n->user.snapshot_held != NULL) raft_uv_set_snapshot_held(&n->io, snapshot_held, n);

  cr_fsm_bind(&n->fsm, 3, &n->user);
  n->fsm.snapshot_async = fsm_snapshot_deferred;
  rv = raft_init(&n->raft, &n->io, &n->fsm, id, address);
  if (rv != 0) {
    snprintf(errmsg, 256, "raft_init: %s (%.200s)", raft_strerror(rv), raft_errmsg(&n->raft));
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    return rv;
  }
  return 0;
}

static void on_raft_closed(struct raft *r) {
  cr_node *n = CONTAINER_OF(r, cr_node, raft);
  raft_uv_close(&n->io);
  raft_uv_tcp_close(&n->transport);
  if (n->close_cb != NULL) n->close_cb(n->close_data);
}

void cr_close(cr_node *n, void (*cb)(void *), void *data) {
  n->close_cb = cb;
  n->close_data = data;
  /* raft_uv's close does not know about a cut on the thread pool; the cut's
   * completion closes libraft instead (cut_after_work). */
  if (n->cut.pending) {
    n->close_deferred = true;
    return;
  }
  raft_close(&n->raft, on_raft_closed);
}

void cr_destroy(cr_node *n) { free(n); }

/* ---- settings ------------------------------------------------------------- */

void cr_set_timeouts(cr_node *n, unsigned heartbeat_ms, unsigned election_ms,
                     unsigned install_snapshot_ms) {
  raft_set_heartbeat_timeout(&n->raft, heartbeat_ms);
  raft_set_election_timeout(&n->raft, election_ms);
  raft_set_install_snapshot_timeout(&n->raft, install_snapshot_ms);
}

void cr_set_install_snapshot_timeout(cr_node *n, unsigned ms) {
  raft_set_install_snapshot_timeout(&n->raft, ms);
}

void cr_set_snapshot_threshold(cr_node *n, unsigned entries) {
  raft_set_snapshot_threshold(&n->raft, entries);
}

void cr_set_snapshot_trailing(cr_node *n, unsigned entries) {
  raft_set_snapshot_trailing(&n->raft, entries);
}

void cr_set_pre_vote(cr_node *n, bool enabled) { raft_set_pre_vote(&n->raft, enabled); }

void cr_set_catch_up(cr_node *n, unsigned rounds, unsigned round_ms) {
  raft_set_max_catch_up_rounds(&n->raft, rounds);
  raft_set_max_catch_up_round_duration(&n->raft, round_ms);
}

int cr_bootstrap(cr_node *n, unsigned count, const uint64_t *ids, const char *const *addresses) {
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  int rv = 0;
  for (unsigned i = 0; i < count && rv == 0; ++i) {
    rv = raft_configuration_add(&conf, ids[i], addresses[i], RAFT_VOTER);
  }
  if (rv == 0) rv = raft_bootstrap(&n->raft, &conf);
  raft_configuration_close(&conf);
  return rv;
}

int cr_start(cr_node *n) { return raft_start(&n->raft); }

/* ---- requests ------------------------------------------------------------- */

struct apply_req {
  struct raft_apply req;
  void *data;
  void (*cb)(void *, uint64_t, int, void *);
};

static void on_apply(struct raft_apply *req, int status, void *result) {
  struct apply_req *a = CONTAINER_OF(req, struct apply_req, req);
  void *data = a->data;
  void (*cb)(void *, uint64_t, int, void *) = a->cb;
  uint64_t index = req->index;
  free(a);
  cb(data, index, status, result);
}

int cr_apply(cr_node *n, void *base, size_t len, void *data,
             void (*cb)(void *data, uint64_t index, int status, void *result),
             uint64_t *index) {
  return cr_raft_apply(&n->raft, base, len, data, cb, index);
}

int cr_raft_apply(struct raft *r, void *base, size_t len, void *data,
                  void (*cb)(void *data, uint64_t index, int status, void *result),
                  uint64_t *index) {
  struct apply_req *a = calloc(1, sizeof *a);
  if (a == NULL) return RAFT_NOMEM;
  a->data = data;
  a->cb = cb;
  struct raft_buffer buf = {.base = base, .len = len};
  int rv = raft_apply(r, &a->req, &buf, 1, on_apply);
  if (rv != 0) {
    free(a);
    return rv;
  }
  *index = a->req.index;
  return 0;
}

struct barrier_req {
  struct raft_barrier req;
  void *data;
  void (*cb)(void *, int);
};

static void on_barrier(struct raft_barrier *req, int status) {
  struct barrier_req *b = CONTAINER_OF(req, struct barrier_req, req);
  void *data = b->data;
  void (*cb)(void *, int) = b->cb;
  free(b);
  cb(data, status);
}

int cr_barrier(cr_node *n, void *data, void (*cb)(void *data, int status)) {
  return cr_raft_barrier(&n->raft, data, cb);
}

int cr_raft_barrier(struct raft *r, void *data, void (*cb)(void *data, int status)) {
  struct barrier_req *b = calloc(1, sizeof *b);
  if (b == NULL) return RAFT_NOMEM;
  b->data = data;
  b->cb = cb;
  int rv = raft_barrier(r, &b->req, on_barrier);
  if (rv != 0) free(b);
  return rv;
}

struct change_req {
  struct raft_change req;
  void *data;
  void (*cb)(void *, int);
};

static void on_change(struct raft_change *req, int status) {
  struct change_req *c = CONTAINER_OF(req, struct change_req, req);
  void *data = c->data;
  void (*cb)(void *, int) = c->cb;
  free(c);
  cb(data, status);
}

static struct change_req *new_change(void *data, void (*cb)(void *, int)) {
  struct change_req *c = calloc(1, sizeof *c);
  if (c != NULL) {
    c->data = data;
    c->cb = cb;
  }
  return c;
}

int cr_add(cr_node *n, uint64_t id, const char *address, void *data,
           void (*cb)(void *data, int status)) {
  struct change_req *c = new_change(data, cb);
  if (c == NULL) return RAFT_NOMEM;
  int rv = raft_add(&n->raft, &c->req, id, address, on_change);
  if (rv != 0) free(c);
  return rv;
}

int cr_assign(cr_node *n, uint64_t id, int role, void *data, void (*cb)(void *data, int status)) {
  struct change_req *c = new_change(data, cb);
  if (c == NULL) return RAFT_NOMEM;
  int rv = raft_assign(&n->raft, &c->req, id, role, on_change);
  if (rv != 0) free(c);
  return rv;
}

int cr_remove(cr_node *n, uint64_t id, void *data, void (*cb)(void *data, int status)) {
  struct change_req *c = new_change(data, cb);
  if (c == NULL) return RAFT_NOMEM;
  int rv = raft_remove(&n->raft, &c->req, id, on_change);
  if (rv != 0) free(c);
  return rv;
}

struct transfer_req {
  struct raft_transfer req;
  void *data;
  void (*cb)(void *, int);
};

static void on_transfer(struct raft_transfer *req) {
  struct transfer_req *t = CONTAINER_OF(req, struct transfer_req, req);
  void *data = t->data;
  void (*cb)(void *, int) = t->cb;
  free(t);
  /* libraft reports no status: whether it worked shows in who leads. */
  cb(data, 0);
}

int cr_transfer(cr_node *n, uint64_t id, void *data, void (*cb)(void *data, int status)) {
  struct transfer_req *t = calloc(1, sizeof *t);
  if (t == NULL) return RAFT_NOMEM;
  t->data = data;
  t->cb = cb;
  int rv = raft_transfer(&n->raft, &t->req, id, on_transfer);
  if (rv != 0) free(t);
  return rv;
}

/* ---- reads ---------------------------------------------------------------- */

int cr_state(cr_node *n) { return (int)raft_state(&n->raft); }
uint64_t cr_current_term(cr_node *n) { return raft_current_term(&n->raft); }
uint64_t cr_commit_index(cr_node *n) { return raft_commit_index(&n->raft); }
uint64_t cr_last_applied(cr_node *n) { return raft_last_applied(&n->raft); }
uint64_t cr_last_index(cr_node *n) { return raft_last_index(&n->raft); }

void cr_leader(cr_node *n, uint64_t *id, const char **address) {
  raft_id leader = 0;
  raft_leader(&n->raft, &leader, address);
  *id = leader;
}

uint64_t cr_transferee(cr_node *n) { return raft_transferee(&n->raft); }
const char *cr_errmsg(cr_node *n) { return raft_errmsg(&n->raft); }

unsigned cr_server_count(cr_node *n) { return n->raft.configuration.n; }

void cr_server(cr_node *n, unsigned i, uint64_t *id, const char **address, int *role) {
  const struct raft_server *s = &n->raft.configuration.servers[i];
  *id = s->id;
  *address = s->address;
  *role = s->role;
}

bool cr_match_index(cr_node *n, uint64_t id, uint64_t *index) {
  raft_index match = 0;
  if (raft_match_index(&n->raft, id, &match) != 0) return false;
  *index = match;
  return true;
}

int64_t cr_since_last_message_ms(cr_node *n, uint64_t id) {
  for (unsigned i = 0; i < n->n_stamps; ++i) {
    if (n->stamps[i].id == id) return (int64_t)(uv_now(n->loop) - n->stamps[i].at_ms);
  }
  return -1;
}

const char *cr_strerror(int code) { return raft_strerror(code); }
void *cr_malloc(size_t size) { return raft_malloc(size); }
void cr_free(void *p) { raft_free(p); }
uint64_t cr_digest(const char *text, size_t len) { return raft_digest(text, len); }
