// Fuzz target: the pipeline file reader (app/pipeline_file.hpp): JSON with comments and
// trailing commas, every field checked, matrices expanded, the graph and constraints checked.
// Every problem must point inside the text (or say it has no place), and be printable.

#include "fuzz_target.hpp"

#include "pipeline_file.hpp"

#include <drover/modules/registry.hpp>

#include <algorithm>
#include <string_view>

DROVER_FUZZ_TARGET(pipeline_file) {
  static const drover::modules::registry kinds = drover::modules::builtin_registry();
  const std::string_view text = drover::fuzz::as_text(data, size);
  const auto loaded = drover::app::parse_pipeline(text, kinds, "fuzz");

  const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const auto* list : {&loaded.problems, &loaded.warnings}) {
    for (const auto& problem : *list) {
      const auto& at = problem.position;
      drover::fuzz::check(at.line <= lines, "a problem's line is within the text");
      drover::fuzz::check((at.line == 0) == (at.column == 0),
                          "a problem has both a line and a column, or neither");
      drover::fuzz::check(!problem.message.empty(), "a problem says what is wrong");
      drover::fuzz::check(!drover::app::format_problem("fuzz.json", problem).empty(),
                          "a problem formats");
    }
  }
  return 0;
}
