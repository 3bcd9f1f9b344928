#pragma once
// The `exec` kind: runs a command as a child process, asynchronously, in its own process group.
//
// In a pipeline file:
//
//     {"id": "build", "kind": "exec",
//      "params": {"argv": ["make", "-j4"], "cwd": "src", "timeout_ms": 600000}}
//     {"id": "version", "kind": "exec",
//      "params": {"shell": "git describe | jq -R .", "json_output": true}}
//
// In C++, without a registry:
//
//     drover::modules::exec_options make;
//     make.argv = {"make", "-j4"};
//     p.add("build", drover::modules::exec_body(std::move(make)));
//
// Params (every one optional except argv or shell; unknown params are an error):
//   argv           non-empty array of strings: the program and its arguments; a program name
//                  without '/' is looked up in PATH (the PATH of `env` when it sets one)
//   shell          string: a command line run as `/bin/sh -c <shell>`; exactly one of argv and
//                  shell must be given
//   env            object: variables set on top of the inherited environment. Each value is
//                  a string, or {"secret_from_env": "NAME"}: a secret, the value of variable
//                  NAME in the environment of the process that runs the attempt (drover run,
//                  or the drover worker it runs on), read when the attempt starts
//   cwd            string: working directory, relative to the run's workspace
//                  (module_context::workspace()); default: the attempt's own work directory
//                  (module_context::work_dir()), whose declared outputs are promoted. With
//                  cwd the command writes in the workspace (module_context::
//                  writes_in_workspace): declared outputs, still relative to the workspace,
//                  are checked there and not moved
//   timeout_ms     integer > 0: exec's own time limit per attempt; on expiry the process group
//                  is stopped and the attempt ends timed_out
//   kill_grace_ms  integer >= 0, default 2000: how long after SIGTERM to the process group it
//                  gets SIGKILL if the child is still alive
//   json_output    bool, default false: parse the last non-empty stdout line as JSON and put it
//                  in the result as "output"
//
// Behaviour:
// - The child runs in `cwd` or in the attempt's work directory, with DROVER_WORKSPACE and
//   DROVER_WORK_DIR (both absolute), DROVER_DEPS and, for a matrix instance,
//   DROVER_MATRIX_TARGET (module_context::matrix_target) added to its environment unless `env`
//   sets them. DROVER_DEPS is the path of `<work dir>.deps.json`, beside the work directory:
//   {"<dep id>": {"status": "<status>", "value": <value>}, ...} for every dependency
//   (interpolation.hpp, dependency_document), written for each attempt and removed when it
//   ends unless work directories are kept.
// - Made through a registry, exec's params may hold `${{ ... }}` expressions (interpolation.hpp);
//   exec_body() takes options as they are.
// - The child has stdin from /dev/null, default signal dispositions and an empty signal mask.
//   Its stdout and stderr are read asynchronously and appended, line by line, to
//   exec_log_path(ctx.log_dir(), ctx.id()) under a `== drover: attempt N ==` header; no file is
//   written when the run has no log directory.
// - The result is {"exit_code": 0} (plus "output" with json_output). A non-zero exit fails the
//   attempt with the message `exit code N` (or `killed by signal N`), then a newline and the
//   last (at most 20) lines of combined output.
// - Secrets (the env values from secret_from_env, plus ctx.secrets(), the run's) are replaced
//   by "***" in the log file, the output lines of a failure message, json_output and every
//   error message. A secret_from_env variable that is unset or empty fails the attempt with a
//   message naming it. The child itself sees the real value.
// - When the child exits, whatever it left running in its process group (`sleep 100 &`) is
//   killed with SIGKILL.
// - On cancellation (the engine's timeout, fail_fast, a cancelled run) or timeout_ms: SIGTERM
//   to the process group, SIGKILL after kill_grace_ms, then the child is reaped before the body
//   finishes. Keep kill_grace_ms below the run's cancel_grace, or the engine stops waiting for
//   the body first (the group is still killed when the grace ends).

#include <drover/module.hpp>
#include <drover/modules/registry.hpp>
#include <drover/pipeline.hpp>
#include <drover/secrets.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover::modules {

/// What an exec module runs and how. Mirrors the JSON params one for one.
struct exec_options {
  std::vector<std::string> argv;           ///< program and arguments (or use `shell`)
  std::string shell;                       ///< command line for /bin/sh -c (or use `argv`)
  std::map<std::string, std::string> env;  ///< set on top of the inherited environment
  std::filesystem::path cwd;  ///< relative to the workspace; empty: the attempt's work dir
  std::optional<std::chrono::milliseconds> timeout;  ///< exec's own limit per attempt
  std::chrono::milliseconds kill_grace{2000};        ///< SIGTERM to SIGKILL
  bool json_output = false;  ///< last non-empty stdout line becomes the result's "output"
  /// Secret variables (`{"secret_from_env": ...}` in params): name -> the variable whose value
  /// it takes, read from the environment of the process running each attempt and masked in
  /// everything exec writes. A name must not also be in `env`.
  std::map<std::string, std::string> secret_env;
};

/// Parses and validates exec params (the JSON form above). Throws params_error naming the
/// field ("params.argv", ...).
exec_options parse_exec_params(const boost::json::value& params);

/// A body that runs `options`. Throws params_error when the options are inconsistent (neither
/// or both of argv and shell, an empty program name, a non-positive timeout, ...).
module_body exec_body(exec_options options);

/// The values that the exec modules of `p` (those given as kind and params) take from the
/// environment with secret_from_env, as this process's environment has them, for
/// run_options::secrets: the run then masks them in values, reasons, events and reports too.
/// Variables that are not set here are left out (a remote worker may still have them, and
/// masks them itself). Null when there is nothing to mask.
///
///     options.secrets = drover::modules::secrets_from_environment(p);
std::shared_ptr<const secret_masker> secrets_from_environment(const pipeline& p);

/// Whether `m` is an exec module (given as kind and params) whose command runs in the
/// workspace, because its params set `cwd`, rather than in its own work directory. Such a
/// command can read any file there, which its fingerprint sees only if the module declares it
/// in module_io::inputs; a pipeline file therefore does not cache such a module without inputs
/// unless it says "cache": true (docs/caching.md).
bool runs_in_workspace(const module_spec& m);

/// The log file of module `module_id` in `log_dir`: `<log_dir>/<name>.log`, where `name` is
/// the id when it has 1 to 200 bytes, all letters, digits, '.', '_' or '-'; otherwise its first
/// 200 bytes with every other byte replaced by '_', then '-' and 8 hex digits of a hash of the
/// whole id. So different ids practically never share a file, and no id leaves `log_dir`.
std::filesystem::path exec_log_path(const std::filesystem::path& log_dir,
                                    std::string_view module_id);

}  // namespace drover::modules
