#pragma once
// What the drover contenders share with the benchmarks that run the engine on a shape with
// other run_options (drover-bench --journal): the same pipeline and the same end-of-run check.

#include "common/module_work.hpp"
#include "common/shape.hpp"

#include <drover/engine.hpp>

#include <cstddef>

namespace drover::bench {

/// The pipeline the drover contenders run for `s`: module i is "m<i>", depends on "m<d>" for
/// every predecessor d, and its body calls work(i) (a noop besides the stamp, or ~1 us of spin
/// for independent_busy). `constrained` gives every module a pool slot and two claims.
/// `work` must outlive every run of the pipeline.
pipeline make_drover_pipeline(const shape& s, module_work& work, bool constrained);

/// Throws std::runtime_error, saying how the run ended, unless it succeeded with all `modules`
/// modules succeeded.
void require_all_succeeded(const run_report& report, std::size_t modules);

}  // namespace drover::bench
