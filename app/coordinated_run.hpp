#pragma once
// `drover run FILE --coordinator redis://HOST:PORT/DB --instance I --total N --run-key KEY`:
// one run over N identical instances (CI jobs) that can reach only a Redis (docs/redis.md).
//
// Each instance either holds the run's master lease and runs the pipeline as `drover run`
// does, with workers that join through Redis and a journal kept in Redis, or it works for the
// instance that does. An instance keeps trying for the lease while it works, so when the
// master dies another instance takes over with the next epoch, resumes from the journal in
// Redis, and finishes the run. The master publishes the outcome; every instance prints the
// same summary and exits with the run's exit code.

#include "commands.hpp"

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include <ostream>

namespace drover::app {

/// --coordinator, --run-key, --instance, --total, --coordinator-password-file,
/// --coordinator-timeout, --keep-for and --lease-ttl.
void add_coordinator_options(boost::program_options::options_description& options);

/// Reads those options into settings.coordinator; DROVER_COORDINATOR, DROVER_RUN_KEY,
/// DROVER_INSTANCE and DROVER_TOTAL stand in for the flags they name. Returns false after
/// saying on `err` what is wrong.
bool coordinator_from(const boost::program_options::variables_map& vm, run_settings& settings,
                      std::ostream& err);

/// Runs this process as instance settings.coordinator.instance of the run. Exit codes as for
/// `drover run`; 1 also when the coordinator cannot be reached within its timeout.
int coordinated_run_command(const run_settings& settings, std::ostream& out, std::ostream& err);

}  // namespace drover::app
