#pragma once
// The selection flags of `drover run` and `drover plan`: --module, --tag and --skip-module.

#include <drover/pipeline.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace drover::app {

/// Which modules of a pipeline a run covers. With neither `modules` nor `tags`, all of them. An
/// id may name a matrix module of the file, which stands for all of its instances.
struct selection {
  std::vector<std::string> modules{};  ///< these ids plus their transitive dependencies
  std::vector<std::string> tags{};     ///< modules with any of these tags plus their dependencies
  std::vector<std::string>
      skip_modules{};  ///< kept but skipped, so their dependents are skipped too
};

/// The skip reason of a module named by --skip-module.
inline constexpr std::string_view skipped_by_flag = "skipped by --skip-module";

/// Whether `id`, given to --module or --skip-module, names `m`: its own id, or for an instance
/// of a matrix (`build[linux]`) the id of the matrix module in the file (`build`).
bool selection_names(const module_view& m, std::string_view id);

/// Applies `chosen` to the valid pipeline `p`: removes the modules it does not select and makes
/// the skipped ones skip with the reason `skipped by --skip-module`. Returns one message per
/// unknown id or tag (e.g. `--module 'biuld': no module has this id (did you mean 'build'?)`),
/// in which case `p` is left unchanged.
std::vector<std::string> apply_selection(pipeline& p, const selection& chosen);

}  // namespace drover::app
