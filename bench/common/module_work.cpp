#include "common/module_work.hpp"

#include <algorithm>

namespace drover::bench {

module_work::module_work(const shape& s, bool concurrent)
    : stamps_(s.size(), not_run), concurrent_(concurrent), busy_(s.busy_bodies()) {}

void module_work::reset() {
  std::fill(stamps_.begin(), stamps_.end(), not_run);
  shared_next_.store(0, std::memory_order_relaxed);
  local_next_ = 0;
}

std::string module_work::check(const shape& s) const {
  const std::size_t n = s.size();
  if (executed() != n) {
    return "ran " + std::to_string(executed()) + " module bodies for " + std::to_string(n) +
           " modules";
  }
  // n stamps from n bodies with none left unset: every module ran exactly once.
  for (node i = 0; i < n; ++i) {
    if (stamps_[i] == not_run) return "module " + std::to_string(i) + " never ran";
  }
  for (node i = 0; i < n; ++i) {
    for (node dep : s.predecessors(i)) {
      if (stamps_[dep] >= stamps_[i]) {
        return "module " + std::to_string(i) + " ran before its dependency " + std::to_string(dep);
      }
    }
  }
  return {};
}

}  // namespace drover::bench
