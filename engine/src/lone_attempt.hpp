#pragma once
// What an attempt outside a run is made of (drover/attempt.hpp): the runner's shared settings
// and the attempt itself, which its module_context reads instead of a run's state.

#include <drover/attempt.hpp>
#include <drover/detail/attempt_scope.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <string_view>

namespace drover::detail {

/// What every attempt of one attempt_runner shares. Immutable once made.
struct attempt_host {
  attempt_host(boost::asio::any_io_executor executor, attempt_settings settings);

  boost::asio::any_io_executor executor;
  /// Where every body runs and every attempt's state lives: one strand per runner (the
  /// executor itself when it is a strand), as a run without a thread pool has one strand for
  /// all its workers.
  boost::asio::any_io_executor strand;
  attempt_settings settings;
  run_environment environment;  ///< from settings, the workspace made absolute
};

/// One attempt's module and the dependency results it was given: what its module_context
/// reads. Lives until the body returned (an abandoned body keeps it alive too).
struct lone_attempt final : dependency_results {
  module_spec spec;
  std::vector<dependency_outcome> dependencies;

  std::optional<entry> find(std::uint32_t module, std::string_view id) const override;
  std::vector<std::string_view> ids(std::uint32_t module) const override;
};

}  // namespace drover::detail
