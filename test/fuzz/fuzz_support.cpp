// drover::fuzz::check, shared by the libFuzzer binaries and the replay binary.

#include "fuzz_target.hpp"

#include <cstdio>
#include <cstdlib>

namespace drover::fuzz {

void check(bool condition, std::string_view what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace drover::fuzz
