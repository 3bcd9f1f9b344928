#include "common/machine.hpp"

#include "common/contender.hpp"

#include <boost/version.hpp>

#include <algorithm>
#include <fstream>
#include <thread>

#include <sys/utsname.h>

namespace drover::bench {

namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string{} : line.substr(start);
  }
  return "unknown";
}

std::string kernel() {
  utsname names{};
  if (::uname(&names) != 0) return "unknown";
  return std::string(names.sysname) + " " + names.release + " " + names.version + " " +
         names.machine;
}

}  // namespace

machine_info describe_machine() {
  machine_info m;
  m.cpu_model = cpu_model();
  m.cores = std::thread::hardware_concurrency();
  m.kernel = kernel();
#if defined(__clang__)
  m.compiler = "clang " __VERSION__;
#elif defined(__GNUC__)
  m.compiler = "g++ " __VERSION__;
#else
  m.compiler = "unknown";
#endif
  m.boost_version = BOOST_LIB_VERSION;
  std::replace(m.boost_version.begin(), m.boost_version.end(), '_', '.');
  m.tbb_version = tbb_version();
  m.build_type = DROVER_BENCH_BUILD_TYPE;
  if (m.build_type.empty()) m.build_type = "none";
#ifdef __OPTIMIZE__
  m.optimized = true;
#endif
  return m;
}

boost::json::object to_json(const machine_info& m) {
  boost::json::object o;
  o["cpu_model"] = m.cpu_model;
  o["cores"] = m.cores;
  o["kernel"] = m.kernel;
  o["compiler"] = m.compiler;
  o["boost_version"] = m.boost_version;
  if (m.tbb_version.empty()) {
    o["tbb_version"] = nullptr;
  } else {
    o["tbb_version"] = m.tbb_version;
  }
  o["build_type"] = m.build_type;
  o["optimized"] = m.optimized;
  return o;
}

}  // namespace drover::bench
