#pragma once
// What the figures were measured on, recorded with every run.

#include <boost/json/object.hpp>

#include <string>

namespace drover::bench {

struct machine_info {
  std::string cpu_model;  ///< "model name" from /proc/cpuinfo
  unsigned cores = 0;     ///< std::thread::hardware_concurrency
  std::string kernel;     ///< uname: sysname release version machine
  std::string compiler;   ///< __VERSION__
  std::string boost_version;
  std::string tbb_version;  ///< empty when drover-bench was built without TBB
  std::string build_type;   ///< CMAKE_BUILD_TYPE of drover-bench
  bool optimized = false;   ///< compiled with optimization (__OPTIMIZE__)
};

machine_info describe_machine();

boost::json::object to_json(const machine_info& m);

}  // namespace drover::bench
