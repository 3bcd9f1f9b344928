#pragma once
// The options a chaos test takes after `--` on its command line: `--name N` pairs of integers
// (`chaos_test -- --seed 7 --rounds 1`).

#include <boost/test/unit_test.hpp>

#include <exception>
#include <map>
#include <string>

namespace drover::chaos {

/// Sets the int that `known` maps each given `--name` to; fails the test on a name it does not
/// know, a missing value or one that is not a number.
inline void read_test_options(const std::map<std::string, int*>& known) {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  std::string names;
  for (const auto& entry : known)
    names += ' ' + entry.first;
  for (int i = 1; i < suite.argc; i += 2) {
    const std::string name = suite.argv[i];
    const auto found = known.find(name);
    BOOST_REQUIRE_MESSAGE(
        found != known.end() && i + 1 < suite.argc,
        "unknown option or missing value: " << name << " (known:" << names << ")");
    try {
      *found->second = std::stoi(suite.argv[i + 1]);
    } catch (const std::exception&) {
      BOOST_FAIL(name << ": not a number: " << suite.argv[i + 1]);
    }
  }
}

}  // namespace drover::chaos
