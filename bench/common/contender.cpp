#include "common/contender.hpp"

#include <stdexcept>

namespace drover::bench {

std::string_view to_string(contender c) noexcept {
  switch (c) {
    case contender::drover:
      return "drover";
    case contender::drover_events:
      return "drover_events";
    case contender::drover_constrained:
      return "drover_constrained";
    case contender::asio_raw:
      return "asio_raw";
    case contender::tbb:
      return "tbb";
  }
  return "unknown";
}

std::optional<contender> parse_contender(std::string_view name) noexcept {
  for (contender c : all_contenders) {
    if (to_string(c) == name) return c;
  }
  return std::nullopt;
}

bool in_default_run(contender c) noexcept {
  return c != contender::drover_constrained;
}

#ifdef DROVER_BENCH_HAVE_TBB

bool is_built(contender) noexcept {
  return true;
}

#else

bool is_built(contender c) noexcept {
  return c != contender::tbb;
}

round_figures run_tbb(const shape&, module_work&, std::size_t) {
  throw std::runtime_error("the tbb contender was not built: CMake did not find TBB (libtbb-dev)");
}

std::string tbb_version() {
  return {};
}

#endif

}  // namespace drover::bench
