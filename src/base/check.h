#pragma once

#include <sstream>

// CHRONOS_CHECK(cond) << "message": a broken invariant crashes loudly, also in
// release builds (TigerBeetle's rule: assertions stay on in production).
// Use it for programming errors only; expected failures are Result values.

namespace chronos::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return out_; }

 private:
  std::ostringstream out_;
};

// Lets `CHRONOS_CHECK(c) << x` compile to a void expression.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace chronos::internal

#define CHRONOS_CHECK(cond)                  \
  (cond) ? (void)0                           \
         : ::chronos::internal::Voidify() &  \
               ::chronos::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()
