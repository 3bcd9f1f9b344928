#pragma once
// `drover simulate`: a master and thousands of simulated workers in one process, with faults
// injected from a seed. docs/cli.md documents the options and the output.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace drover::app {

/// `drover simulate ARGS...` (`args` without the command name). Exit codes: 0 when every
/// invariant held and the run succeeded, 1 when it held but the run did not succeed under its
/// faults, 2 for usage errors, 3 when a run broke an invariant (with --seeds: any seed).
int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// The command that replays one seed of a sweep run with `args`: "drover simulate", the same
/// arguments without --seeds, --jobs, --seed and --trace, then "--seed SEED".
std::string simulate_replay_command(const std::vector<std::string>& args, std::uint64_t seed);

}  // namespace drover::app
