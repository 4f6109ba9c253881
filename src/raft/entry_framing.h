#pragma once

#include <string>
#include <string_view>

extern "C" {
#include <raft.h>
}

namespace chronos::raft {

// Log entry framing: u32 little-endian payload length, the payload, zero
// padding to a multiple of 8 bytes. libraft 0.15's segment writer corrupts
// closed segments when an entry's length is not a multiple of 8 (seen as
// "entries count ... in preamble is too high" on the next start; upstream
// canonical/raft#304), so every entry is padded.
//
// The buffer is allocated with raft_malloc (libraft takes ownership when it
// is handed to raft_apply); base is nullptr when allocation failed.
struct raft_buffer frame_entry(std::string_view payload);

// The payload of a framed entry; an impossible length yields a view that
// fails to decode (the caller treats that as corruption).
std::string_view unframe_entry(std::string_view framed);
std::string_view unframe_entry(const struct raft_buffer& buf);

// FSM snapshot buffers (libraft's fsm.snapshot contract; the simulation's
// synchronous snapshots): one raft_malloc'd buffer holding a copy of `image`, in a raft_malloc'd
// array of one. Returns 0 or RAFT_NOMEM (nothing allocated then).
int image_to_snapshot_buffers(std::string_view image, struct raft_buffer* bufs[], unsigned* n_bufs);
// Frees what image_to_snapshot_buffers allocated (fsm.snapshot_finalize);
// leaves *bufs null and *n_bufs 0.
void free_snapshot_buffers(struct raft_buffer* bufs[], unsigned* n_bufs);

}  // namespace chronos::raft
