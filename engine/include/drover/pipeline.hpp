#pragma once
// A pipeline: modules plus the defaults and the execution mode that apply to all of them.

#include <drover/module.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace drover {

/// What happens to the rest of the run after a module fails.
enum class execution_mode : std::uint8_t {
  fail_fast,  ///< cancel running modules, mark unstarted ones cancelled (always_run ones still run)
  keep_going,  ///< finish every branch that does not depend on the failure
};

/// Policies a module inherits when it does not set its own.
struct module_defaults {
  int retries = 0;
  backoff_policy backoff;
  std::optional<std::chrono::milliseconds> timeout;
};

struct pipeline {
  std::string name;
  module_defaults defaults;
  execution_mode mode = execution_mode::fail_fast;
  std::vector<module_spec> modules;
  /// Named pools and their slots: at most that many slots are in use at once, across all
  /// workers. Modules take slots with module_constraints::pool and pool_slots.
  std::map<std::string, std::uint32_t> pools;

  /// Appends a module with a body and returns it for further settings:
  ///
  ///     p.add("test", test_body, {"build"}).retries = 2;
  module_spec& add(std::string id, module_body body, std::vector<std::string> deps = {});
};

}  // namespace drover
