/* The one place that includes libraft's headers (libraft_glue.c, C).
 *
 * libraft 0.22's raft.h checks its ABI with static_assert(sizeof(struct
 * {...}) ...), which C++ rejects (a type defined inside sizeof), so C++ code
 * reaches libraft only through this interface, which names no libraft type
 * and reads nothing of libraft's private layout. Everything here runs on the
 * node's libuv loop thread unless noted.
 *
 * Ownership: cr_open allocates a node; after cr_close's callback has run and
 * the loop has finished closing handles, cr_destroy frees it. Each request
 * (apply, barrier, change, transfer) is allocated by the glue and freed
 * after its callback; `data` is the caller's. */
#ifndef CHRONOS_RAFT_LIBRAFT_GLUE_H
#define CHRONOS_RAFT_LIBRAFT_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libraft's codes, re-exported (libraft_glue.c checks each is the same). */
enum {
  CR_NOMEM = 1,
  CR_BADID = 2,
  CR_DUPLICATEID = 3,
  CR_DUPLICATEADDRESS = 4,
  CR_NOTLEADER = 7,
  CR_LEADERSHIPLOST = 8,
  CR_SHUTDOWN = 9,
  CR_CANTBOOTSTRAP = 10,
  CR_CANTCHANGE = 11,
  CR_CORRUPT = 12,
  CR_CANCELED = 13,
  CR_NOCONNECTION = 16,
  CR_IOERR = 18,
  CR_NOTFOUND = 19,
};
enum { CR_UNAVAILABLE = 0, CR_FOLLOWER = 1, CR_CANDIDATE = 2, CR_LEADER = 3 };
enum { CR_STANDBY = 0, CR_VOTER = 1, CR_SPARE = 2 };

struct cr_buffer {
  void *base;
  size_t len;
};

/* The state machine, called by libraft (libraft's raft_fsm, version 3).
 * apply/snapshot/finalize/restore on the loop thread, snapshot_async on
 * libuv's thread pool. Buffer arrays handed out by snapshot and
 * snapshot_async are allocated with cr_malloc; the glue frees the arrays
 * (not what they point to: that is lent until snapshot_finalize). On
 * success restore owns `base` (free it with cr_free). */
struct cr_fsm {
  void *data;
  int (*apply)(void *data, const void *base, size_t len, void **result);
  int (*snapshot)(void *data, struct cr_buffer **bufs, unsigned *n);
  int (*snapshot_async)(void *data, struct cr_buffer **bufs, unsigned *n);
  int (*snapshot_finalize)(void *data, struct cr_buffer *bufs, unsigned n);
  int (*restore)(void *data, void *base, size_t len);
  /* Optional (NULL: always read). At start-up, before the most recent
   * snapshot's data is read: whether the state machine already holds the
   * state of the snapshot at `index`. If so the data is not read and
   * restore gets base NULL, len 0 for it (scripts/libraft-patches/0005). */
  bool (*snapshot_held)(void *data, uint64_t index);
};

typedef struct cr_node cr_node;

/* Opens the node's libuv I/O (Raft log and snapshots in `dir`, TCP at
 * `address`) and initialises libraft. Returns 0, or a code with a message in
 * errmsg (at least 256 bytes). *out is the node either way (NULL only when
 * out of memory); after a failure it is already closing: run the loop until
 * its handles are closed, then cr_destroy it. */
int cr_open(uv_loop_t *loop, const char *dir, uint64_t id, const char *address,
            const struct cr_fsm *fsm, cr_node **out, char *errmsg);
/* Closes libraft and its I/O; `cb` runs on the loop when libraft is closed.
 * The loop must then run until its handles are closed. */
void cr_close(cr_node *n, void (*cb)(void *data), void *data);
/* Frees a node that was closed (or whose cr_start was never called). */
void cr_destroy(cr_node *n);

void cr_set_timeouts(cr_node *n, unsigned heartbeat_ms, unsigned election_ms,
                     unsigned install_snapshot_ms);
void cr_set_install_snapshot_timeout(cr_node *n, unsigned ms);
void cr_set_snapshot_threshold(cr_node *n, unsigned entries);
void cr_set_snapshot_trailing(cr_node *n, unsigned entries);
void cr_set_pre_vote(cr_node *n, bool enabled);
/* A promotion to voter that does not catch up within `rounds` rounds of at
 * most `round_ms` each fails (libraft gives the change up itself). */
void cr_set_catch_up(cr_node *n, unsigned rounds, unsigned round_ms);

/* Bootstraps an empty log with these voters; CR_CANTBOOTSTRAP when the log
 * is not empty (the normal restart). */
int cr_bootstrap(cr_node *n, unsigned count, const uint64_t *ids, const char *const *addresses);
int cr_start(cr_node *n);

/* `base` (cr_malloc'd) goes to libraft when this returns 0; *index is the
 * entry's log index. */
int cr_apply(cr_node *n, void *base, size_t len, void *data,
             void (*cb)(void *data, uint64_t index, int status, void *result),
             uint64_t *index);
int cr_barrier(cr_node *n, void *data, void (*cb)(void *data, int status));
int cr_add(cr_node *n, uint64_t id, const char *address, void *data,
           void (*cb)(void *data, int status));
int cr_assign(cr_node *n, uint64_t id, int role, void *data, void (*cb)(void *data, int status));
int cr_remove(cr_node *n, uint64_t id, void *data, void (*cb)(void *data, int status));
/* id 0: libraft picks the most up-to-date voter. */
int cr_transfer(cr_node *n, uint64_t id, void *data, void (*cb)(void *data, int status));

int cr_state(cr_node *n);
uint64_t cr_current_term(cr_node *n);
uint64_t cr_commit_index(cr_node *n);
uint64_t cr_last_applied(cr_node *n);
uint64_t cr_last_index(cr_node *n);
/* *address is libraft's (valid until the next call into it), or NULL. */
void cr_leader(cr_node *n, uint64_t *id, const char **address);
uint64_t cr_transferee(cr_node *n);
const char *cr_errmsg(cr_node *n);

/* The current configuration, by position. */
unsigned cr_server_count(cr_node *n);
void cr_server(cr_node *n, unsigned i, uint64_t *id, const char **address, int *role);
/* The leader's match index of a server; false when not known (this node does
 * not lead, or no such server). */
bool cr_match_index(cr_node *n, uint64_t id, uint64_t *index);
/* Milliseconds since the last message from server `id` reached this node,
 * or -1 if none has. The glue stamps every message libraft receives (it
 * wraps the I/O's receive callback), which tells a leader which followers
 * answer and a follower when it last heard from the leader. */
int64_t cr_since_last_message_ms(cr_node *n, uint64_t id);

/* Any thread. */
const char *cr_strerror(int code);
void *cr_malloc(size_t size);
void cr_free(void *p);
uint64_t cr_digest(const char *text, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOS_RAFT_LIBRAFT_GLUE_H */
