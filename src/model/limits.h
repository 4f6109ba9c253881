#pragma once

// Nesting-depth limits for JSON that crosses the model, and how they relate.
// nlohmann's parser, serialisers and destructor recurse, so every layer that
// takes nested JSON caps its depth; the caps must agree so that anything an
// outer layer accepts the inner layers can still carry:
//
//   API request body  --job_from_request-->  Job  --encode_batch-->  log entry
//   (depth <= kMaxRequestJsonDepth)                 (decode_batch: depth <=
//                                                    kMaxBatchDecodeDepth)
//
// Depth counts objects and arrays, the outermost one being level 1; scalars
// add nothing (as model::internal::depth_within and the API's json_depth
// count).
namespace chronos::model {

// The API refuses request bodies nested deeper than this before parsing them.
inline constexpr int kMaxRequestJsonDepth = 64;

// A dispatch `payload` (the only free-form JSON in a job) nests at most this
// deep, the payload itself being level 1 (validate_job refuses deeper).
inline constexpr int kMaxPayloadDepth = 32;

// A merge patch (PATCH body) is refused deeper than this before merging.
inline constexpr int kMaxMergePatchDepth = 48;

// decode_batch refuses a command payload nested deeper than this.
inline constexpr int kMaxBatchDecodeDepth = 65;

// Levels around a payload in a job's JSON form: job object, dispatch object.
inline constexpr int kPayloadWrapperDepth = 2;
// Deepest fixed part of a job's JSON form (job > webhook > auth or
// success_codes; job > dispatch > tls, sasl, brokers, ...).
inline constexpr int kJobShapeDepth = 3;
// Levels the batch codec adds around a job: the command object {job, ...}.
inline constexpr int kBatchWrapperDepth = 1;

// A request can carry a payload of the maximum depth, directly or by PATCH.
static_assert(kMaxRequestJsonDepth >= kPayloadWrapperDepth + kMaxPayloadDepth);
static_assert(kMaxMergePatchDepth >= kPayloadWrapperDepth + kMaxPayloadDepth);
// Any body the API accepts becomes a job whose JSON form is no deeper than
// the body (payloads are copied as is; normalisation and defaults only add
// fixed-shape levels, at most kJobShapeDepth), and the batch adds its
// wrapper: decode_batch must take that, even before validate_job's payload
// cap is counted.
static_assert(kMaxRequestJsonDepth >= kJobShapeDepth);
static_assert(kMaxBatchDecodeDepth >= kMaxRequestJsonDepth + kBatchWrapperDepth);
// So in particular the deepest valid job decodes.
static_assert(kMaxBatchDecodeDepth >= kBatchWrapperDepth + kPayloadWrapperDepth + kMaxPayloadDepth);

}  // namespace chronos::model
