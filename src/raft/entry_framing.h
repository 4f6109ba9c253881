#pragma once

#include <string>
#include <string_view>

#include "raft/libraft_glue.h"

namespace chronos::raft {

// Log entry framing: u32 little-endian payload length, the payload, zero
// padding to a multiple of 8 bytes. libraft's segment writer sizes a batch
// with each entry padded to 8 bytes but copies entries unpadded: 0.15
// corrupted closed segments when an entry's length was not a multiple of 8
// (seen as "entries count ... in preamble is too high" on the next start;
// upstream canonical/raft#304), and 0.22.1 still has the same code with an
// assertion added (uv_segment.c, uvSegmentBufferAppend: "entry->buf.len %
// sizeof(uint64_t) == 0"). So every entry is padded.
//
// The buffer is allocated with cr_malloc (libraft takes ownership when it
// is handed to raft_apply); base is nullptr when allocation failed.
cr_buffer frame_entry(std::string_view payload);

// The payload of a framed entry; an impossible length yields a view that
// fails to decode (the caller treats that as corruption).
std::string_view unframe_entry(std::string_view framed);
std::string_view unframe_entry(const cr_buffer& buf);

// FSM snapshot buffers (libraft's fsm.snapshot contract; the simulation's
// synchronous snapshots): one cr_malloc'd buffer holding a copy of `image`, in a cr_malloc'd
// array of one. Returns 0 or CR_NOMEM (nothing allocated then).
int image_to_snapshot_buffers(std::string_view image, cr_buffer* bufs[], unsigned* n_bufs);
// Frees the buffers image_to_snapshot_buffers allocated (cr_fsm's
// snapshot_finalize; the glue frees the array itself).
void free_snapshot_buffers(cr_buffer* bufs, unsigned n);

}  // namespace chronos::raft
