#pragma once
// A module: one unit of work with an id, dependencies, a body and its policies.

#include <drover/boxed.hpp>
#include <drover/constraints.hpp>
#include <drover/status.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace drover {

class module_context;

/// Thrown by a body (or a kind such as exec) that enforces a time limit of its own: the
/// attempt ends timed_out instead of failed, and is retried like an engine timeout.
class timeout_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A module's work: a coroutine that returns the module's value. It runs on a worker's
/// strand and must not block the thread (wait asynchronously instead). Throwing fails the
/// attempt with the exception's message. Cancellation (a timeout, fail_fast, a cancelled run)
/// arrives through the coroutine's cancellation state, as for any Asio operation.
///
///     spec.body = [](drover::module_context& ctx) -> boost::asio::awaitable<boost::json::value> {
///       co_return ctx.result<int>("compile") + 1;
///     };
///
/// The context lives until the body finishes; do not keep references to it afterwards.
using module_body = std::function<boost::asio::awaitable<boost::json::value>(module_context&)>;

/// Decides, when a module's dependencies are done, whether to skip it. Returns the reason to
/// skip (shown in reports) or nothing to run it. Called on the run's strand: keep it quick.
using skip_condition = std::function<std::optional<std::string>()>;

/// Delay before retry k (k = 1 for the first retry):
/// min(max, initial * multiplier^(k-1)) scaled by a random factor in [1 - jitter, 1 + jitter].
struct backoff_policy {
  std::chrono::milliseconds initial{100};
  double multiplier{2.0};
  std::chrono::milliseconds max{std::chrono::seconds{30}};
  double jitter{0.2};  ///< 0 = exact delays, 1 = anywhere in [0, 2 * delay]
};

/// What a module reads and writes besides its dependencies' values. The fingerprint cache
/// and the journal use it to tell whether a module would compute the same result again, and
/// work directories use it to promote the files a module produced. See docs/caching.md.
struct module_io {
  /// Globs of files, relative to the workspace ('*' within a path segment, '**' across
  /// segments), whose content the module's result depends on. Being only read, they may name
  /// files outside the workspace: an absolute glob ("/opt/sdk/include/**"), or one starting
  /// with '..' segments ("../src/*.cc").
  std::vector<std::string> inputs;
  /// Names of environment variables whose values the module's result depends on.
  std::vector<std::string> input_env;
  /// Globs of files relative to the workspace: where the module's files land. A module makes
  /// them in its work directory at the same relative paths; when the attempt succeeds they are
  /// moved into the workspace, each with one rename, and when it fails none of them appear.
  /// An attempt that writes in the workspace itself (module_context::writes_in_workspace)
  /// has them checked there instead, and nothing moves.
  std::vector<std::string> outputs;
  /// false: the cache neither supplies nor stores this module's result (deployments, clocks).
  bool cacheable = true;
  /// Part of the fingerprint. A module with a C++ body has no kind and params to fingerprint:
  /// bump this when the body changes. Such a module is cached only when it sets a version.
  std::string version;
};

/// Declarative description of a module. Unset optional policies take the pipeline's defaults.
struct module_spec {
  std::string id;
  std::vector<std::string> deps;

  /// Either a body, or a kind and params that a registry (drover::modules) turns into a body.
  /// The kind and params are kept so that other processes can resolve them too.
  module_body body;
  std::string kind;
  boost::json::value params;

  std::optional<int> retries;                        ///< extra attempts after a failure or timeout
  std::optional<backoff_policy> backoff;             ///< delays between attempts
  std::optional<std::chrono::milliseconds> timeout;  ///< per attempt; unset = no limit

  bool always_run = false;  ///< runs even when dependencies failed or fail_fast cancelled the run
  bool ignore_failure = false;  ///< a failure ends as ignored_failure and dependents still run
  skip_condition skip_if;       ///< evaluated once the module is ready
  std::vector<std::string> tags;
  int priority = 0;  ///< among ready modules, higher runs first

  // Rarely set, so kept out of line (see boxed): a module without them pays a pointer each.
  boxed<module_constraints> constraints;  ///< capabilities, exclusion, claims, pool
  boxed<matrix_spec> matrix;              ///< expand into one instance per combination
  boxed<matrix_instance> instance;        ///< set on the instances matrix expansion made
  boxed<module_io> io;                    ///< inputs, outputs and cache settings
};

}  // namespace drover
