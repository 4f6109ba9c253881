// libFuzzer target for the Raft command batch codec (model/command.h).
//
// Input: raw bytes of a log entry. decode_batch must never crash on them
// (a corrupted entry is an error value), and whatever decodes must survive
// encode_batch -> decode_batch unchanged, with a stable encoding.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "base/result.h"
#include "model/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  chronos::Result<chronos::model::CommandBatch> batch = chronos::model::decode_batch(bytes);
  if (!batch.ok()) {
    CHRONOS_CHECK(batch.error().code == chronos::ErrorCode::kInternal)
        << "decode error with code " << chronos::error_code_name(batch.error().code);
    CHRONOS_CHECK(!batch.error().message.empty()) << "decode error without a message";
    return 0;
  }

  std::string encoded = chronos::model::encode_batch(*batch);
  chronos::Result<chronos::model::CommandBatch> again = chronos::model::decode_batch(encoded);
  CHRONOS_CHECK(again.ok()) << "re-encoded batch of " << batch->commands.size()
                            << " commands does not decode: " << again.error().message;
  CHRONOS_CHECK(*again == *batch) << "batch changed through encode/decode ("
                                  << batch->commands.size() << " commands)";
  CHRONOS_CHECK(chronos::model::encode_batch(*again) == encoded) << "encoding is not stable";
  return 0;
}
