#pragma once
// What every test suite shares: printing drover's enums in Boost.Test's failure messages, and
// the worker counts that concurrency tests run at.

#include <drover/event.hpp>
#include <drover/status.hpp>

#include <cstddef>
#include <ostream>

namespace drover {

inline std::ostream& operator<<(std::ostream& os, module_status s) {
  return os << to_string(s);
}
inline std::ostream& operator<<(std::ostream& os, run_status s) {
  return os << to_string(s);
}
inline std::ostream& operator<<(std::ostream& os, event_type t) {
  return os << to_string(t);
}

namespace testing {
/// run_options::workers values every concurrency test runs at.
inline constexpr std::size_t worker_counts[] = {1, 2, 8};
}  // namespace testing

}  // namespace drover
