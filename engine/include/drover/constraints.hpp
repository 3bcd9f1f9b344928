#pragma once
// Where, and beside what, a module may run: capabilities, pinning, mutual exclusion, resource
// claims and pools; and matrix expansion, which makes one module into one per target.
//
// Every constraint is decided by one dispatcher on the run's strand, so it holds for all
// workers together. docs/scheduling.md explains the rules.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drover {

enum class claim_mode : std::uint8_t { read, write };

/// A claim on a named resource. `resource` is a '/'-separated path and may be a glob: `*` and
/// `?` match within one segment, `[a-z]` / `[!a-z]` are character classes, and a segment `**`
/// matches any number of segments (none included). Two claims conflict when at least one
/// writes and some path matches both globs: `db/*` conflicts with `db/users` and with
/// `*/users`, `a/*` does not conflict with `b/*`. Readers share.
struct resource_claim {
  std::string resource;
  claim_mode mode = claim_mode::write;
};

/// How a module shares workers with the rest of the run. Every default means "no constraint".
struct module_constraints {
  /// Labels a worker must all have (compared case-insensitively), e.g. {"linux", "docker"}.
  /// Every worker has its OS label ("linux", "windows" or "macos") plus the labels it is given.
  std::vector<std::string> required_capabilities;
  /// Runs only on the process that owns the run, never on a remote worker.
  bool pin_local = false;
  /// Never runs at the same time as another module that shares one of these keys.
  std::vector<std::string> not_in_parallel;
  /// Never runs at the same time as any other module (`not_in_parallel: true` in a file).
  bool run_alone = false;
  /// Taken all at once when the module starts, released when its attempt ends.
  std::vector<resource_claim> claims;
  /// A pool named in pipeline::pools, and how many of its slots one attempt holds.
  std::string pool;
  std::uint32_t pool_slots = 1;
};

/// One matrix axis, e.g. "os": ["linux", "windows"]. The list form `matrix: [...]` is a single
/// axis with an empty name.
struct matrix_axis {
  std::string name;
  std::vector<std::string> values;
};

/// Values for some axes, in order: {{"os", "linux"}, {"compiler", "gcc"}}.
using matrix_combination = std::vector<std::pair<std::string, std::string>>;

/// Expands one module into one instance per combination of axis values, as GitHub Actions'
/// strategy.matrix does:
/// - the combinations are the cross product of `axes`, in axis order;
/// - an `exclude` entry removes every combination that has all of its values;
/// - then each `include` entry is added to every combination whose values it does not
///   contradict on the original axes (adding its other keys); an entry that fits none
///   becomes a combination of its own.
/// Instance ids are `id[linux]` for the list form and `id[os=linux,compiler=gcc]` otherwise.
/// A dependency on `id` means every instance; a dependency may also name one instance.
struct matrix_spec {
  std::vector<matrix_axis> axes;
  std::vector<matrix_combination> include;
  std::vector<matrix_combination> exclude;
  /// Axes whose value an instance requires as a worker capability. Unset: the list form's
  /// axis (so `build[windows]` runs on a windows worker), and no axis for named axes.
  std::optional<std::vector<std::string>> requires_axes;
};

/// Which instance of a matrix a module is. Set by matrix expansion.
struct matrix_instance {
  std::string target;         ///< what is between the brackets: "linux" or "os=linux,compiler=gcc"
  matrix_combination values;  ///< one entry with an empty name for the list form
};

}  // namespace drover
