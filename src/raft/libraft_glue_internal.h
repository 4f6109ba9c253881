/* For C glue that drives libraft itself (tests/sim's raft_fixture): the
 * pieces of libraft_glue.c that work on libraft's own types. C only: it
 * includes raft.h. */
#ifndef CHRONOS_RAFT_LIBRAFT_GLUE_INTERNAL_H
#define CHRONOS_RAFT_LIBRAFT_GLUE_INTERNAL_H

#include <raft.h>

#include "raft/libraft_glue.h"

/* Fills `fsm` (FSM `version` 2 or 3) so that libraft's calls reach `user`
 * (which must outlive it), converting buffers as cr_fsm describes. */
void cr_fsm_bind(struct raft_fsm *fsm, int version, const struct cr_fsm *user);

/* cr_apply and cr_barrier on any struct raft. */
int cr_raft_apply(struct raft *r, void *base, size_t len, void *data,
                  void (*cb)(void *data, uint64_t index, int status, void *result),
                  uint64_t *index);
int cr_raft_barrier(struct raft *r, void *data, void (*cb)(void *data, int status));

#endif /* CHRONOS_RAFT_LIBRAFT_GLUE_INTERNAL_H */
