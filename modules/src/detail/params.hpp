#pragma once
// Reading a kind's params object with errors that name the offending field.

#include <drover/modules/registry.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace drover::modules::detail {

/// Wraps the params of one module of kind `kind`. The params must be null (no params) or an
/// object whose names are all in `known`; anything else throws params_error at construction.
class param_reader {
 public:
  param_reader(std::string_view kind, const boost::json::value& params,
               std::initializer_list<std::string_view> known);

  /// The param `name`, or nullptr when absent or null.
  const boost::json::value* find(std::string_view name) const;

  std::optional<std::string> string(std::string_view name) const;
  std::optional<bool> boolean(std::string_view name) const;
  /// An integer in [min, max]; a JSON number with a fractional part is rejected.
  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                      std::int64_t max) const;

  /// Throws params_error for field "params.<name>" with `message`.
  [[noreturn]] void fail(std::string_view name, const std::string& message) const;

 private:
  const boost::json::object* object_ = nullptr;
};

/// `v` serialized for an error message, shortened when long.
std::string describe_json(const boost::json::value& v);

/// Throws params_error for `field` when `s` contains a NUL character, which a C string (an
/// argument, an environment entry, a path) cannot carry.
void reject_nul(std::string_view field, std::string_view what, std::string_view s);

}  // namespace drover::modules::detail
