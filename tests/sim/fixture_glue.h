/* libraft's raft_fixture (in-memory log, disk and network, one fake clock)
 * behind a C interface, for the same reason as src/raft/libraft_glue.h: no
 * C++ file includes raft.h. Single-threaded; callbacks run inside sf_step
 * or the call that made them. */
#ifndef CHRONOS_SIM_FIXTURE_GLUE_H
#define CHRONOS_SIM_FIXTURE_GLUE_H

#include "raft/libraft_glue.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_cluster sf_cluster;

enum { SF_MAX_SERVERS = 8 };

/* NULL when out of memory. At most one cluster exists at a time (a second
 * sf_create before sf_destroy aborts). */
sf_cluster *sf_create(void);
/* Completes pending requests with errors, then frees everything. */
void sf_destroy(sf_cluster *c);

/* Adds server number sf_size(c) with this state machine (FSM version 2:
 * synchronous snapshots; `fsm` must outlive the cluster). */
int sf_grow(sf_cluster *c, const struct cr_fsm *fsm);
unsigned sf_size(sf_cluster *c);
/* libraft's diagnostics (error to info) go to `fn`, or nowhere when NULL. */
void sf_set_trace(sf_cluster *c, void (*fn)(void *data, unsigned server, const char *message),
                  void *data);
void sf_configure(sf_cluster *c, unsigned i, unsigned heartbeat_ms, unsigned election_ms,
                  unsigned snapshot_threshold, unsigned snapshot_trailing);
/* Every server a voter. */
int sf_bootstrap(sf_cluster *c);
int sf_start(sf_cluster *c);

uint64_t sf_time(sf_cluster *c);
void sf_step(sf_cluster *c);

bool sf_alive(sf_cluster *c, unsigned i);
void sf_kill(sf_cluster *c, unsigned i);
void sf_revive(sf_cluster *c, unsigned i);
bool sf_saturated(sf_cluster *c, unsigned from, unsigned to);
void sf_saturate(sf_cluster *c, unsigned from, unsigned to);
void sf_desaturate(sf_cluster *c, unsigned from, unsigned to);
void sf_set_network_latency(sf_cluster *c, unsigned i, unsigned ms);
/* The election timeout server i draws at its next timer reset, in
 * [election, 2 x election] ms. The fixture reseeds libraft's generator at
 * every step so that the next draw is this value: without a new value each
 * reset draws the same one. */
void sf_set_randomized_election_timeout(sf_cluster *c, unsigned i, unsigned ms);
/* When server i's next timeout fires (fixture time, ms): it moves when the
 * timer is reset. */
uint64_t sf_next_timeout(sf_cluster *c, unsigned i);

int sf_state(sf_cluster *c, unsigned i);
uint64_t sf_term(sf_cluster *c, unsigned i);
uint64_t sf_last_applied(sf_cluster *c, unsigned i);
uint64_t sf_last_index(sf_cluster *c, unsigned i);
uint64_t sf_commit_index(sf_cluster *c, unsigned i);

/* cr_apply / cr_barrier on server i. */
int sf_apply(sf_cluster *c, unsigned i, void *base, size_t len, void *data,
             void (*cb)(void *data, uint64_t index, int status, void *result), uint64_t *index);
int sf_barrier(sf_cluster *c, unsigned i, void *data, void (*cb)(void *data, int status));

#ifdef __cplusplus
}
#endif

#endif /* CHRONOS_SIM_FIXTURE_GLUE_H */
