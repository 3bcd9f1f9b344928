#pragma once
// One fuzz target per parser that reads input from strangers (docs/reliability.md).
//
//     DROVER_FUZZ_TARGET(resource_glob) {          // data, size: one input
//       std::string_view text = as_text(data, size);
//       ...
//       drover::fuzz::check(cond, "what must hold");  // aborts: libFuzzer records a crash
//       return 0;
//     }
//
// Built two ways from the same file:
//  - with clang and DROVER_FUZZ (the `fuzz` preset), each target is its own libFuzzer binary
//    whose LLVMFuzzerTestOneInput calls the body;
//  - in every other build, all targets link into one `fuzz_replay` binary that runs each body
//    over the seed corpus and the regression inputs (test/fuzz/README.md), so a bug found once
//    stays found in the normal suite, with any compiler.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace drover::fuzz {

using target_function = int (*)(const std::uint8_t* data, std::size_t size);

/// Registers a target for the replay binary; called by DROVER_FUZZ_TARGET.
bool add_target(std::string_view name, target_function function);

/// Aborts with `what` on stderr when `condition` is false: a property the target checks.
void check(bool condition, std::string_view what);

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace drover::fuzz

#if defined(DROVER_LIBFUZZER)
#define DROVER_FUZZ_ENTRY(name)                                                       \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return drover_fuzz_##name(data, size);                                            \
  }
#else
#define DROVER_FUZZ_ENTRY(name)                                 \
  [[maybe_unused]] static const bool drover_fuzz_added_##name = \
      ::drover::fuzz::add_target(#name, &drover_fuzz_##name);
#endif

#define DROVER_FUZZ_TARGET(name)                                             \
  static int drover_fuzz_##name(const std::uint8_t* data, std::size_t size); \
  DROVER_FUZZ_ENTRY(name)                                                    \
  static int drover_fuzz_##name([[maybe_unused]] const std::uint8_t* data,   \
                                [[maybe_unused]] std::size_t size)
