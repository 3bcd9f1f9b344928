#include "detail/params.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>

namespace drover::modules::detail {

namespace {

std::string known_list(std::initializer_list<std::string_view> known) {
  if (known.size() == 0) return "none";
  std::string out;
  for (auto name : known) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

std::string describe_json(const boost::json::value& v) {
  constexpr std::size_t max_chars = 60;
  std::string text = boost::json::serialize(v);
  if (text.size() > max_chars) {
    text.resize(max_chars);
    text += "...";
  }
  return text;
}

void reject_nul(std::string_view field, std::string_view what, std::string_view s) {
  if (s.find('\0') != std::string_view::npos)
    throw params_error(std::string(field), std::string(what) + " must not contain NUL characters");
}

param_reader::param_reader(std::string_view kind, const boost::json::value& params,
                           std::initializer_list<std::string_view> known) {
  if (params.is_null()) return;
  object_ = params.if_object();
  if (!object_) {
    throw params_error("params", "params of kind '" + std::string(kind) +
                                     "' must be an object, got " + describe_json(params));
  }
  for (const auto& entry : *object_) {
    bool is_known = false;
    for (auto name : known)
      is_known = is_known || name == entry.key();
    if (!is_known) {
      throw params_error("params." + std::string(entry.key()),
                         "unknown param '" + std::string(entry.key()) + "' for kind '" +
                             std::string(kind) + "' (known params: " + known_list(known) + ")");
    }
  }
}

const boost::json::value* param_reader::find(std::string_view name) const {
  if (!object_) return nullptr;
  const auto* v = object_->if_contains(name);
  return v && !v->is_null() ? v : nullptr;
}

std::optional<std::string> param_reader::string(std::string_view name) const {
  const auto* v = find(name);
  if (!v) return std::nullopt;
  if (!v->is_string())
    fail(name, "'" + std::string(name) + "' must be a string, got " + describe_json(*v));
  return std::string(v->get_string());
}

std::optional<bool> param_reader::boolean(std::string_view name) const {
  const auto* v = find(name);
  if (!v) return std::nullopt;
  if (!v->is_bool())
    fail(name, "'" + std::string(name) + "' must be true or false, got " + describe_json(*v));
  return v->get_bool();
}

std::optional<std::int64_t> param_reader::integer(std::string_view name, std::int64_t min,
                                                  std::int64_t max) const {
  const auto* v = find(name);
  if (!v) return std::nullopt;
  auto out_of_range = [&] {
    fail(name, "'" + std::string(name) + "' must be an integer from " + std::to_string(min) +
                   " to " + std::to_string(max) + ", got " + describe_json(*v));
  };
  std::int64_t n = 0;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64()) {
    if (v->get_uint64() > static_cast<std::uint64_t>(max)) out_of_range();
    n = static_cast<std::int64_t>(v->get_uint64());
  } else if (v->is_double() && std::trunc(v->get_double()) == v->get_double() &&
             std::abs(v->get_double()) < 9e15) {
    n = static_cast<std::int64_t>(v->get_double());
  } else {
    out_of_range();
  }
  if (n < min || n > max) out_of_range();
  return n;
}

void param_reader::fail(std::string_view name, const std::string& message) const {
  throw params_error("params." + std::string(name), message);
}

}  // namespace drover::modules::detail
