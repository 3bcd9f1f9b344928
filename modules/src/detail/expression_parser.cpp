#include "detail/expression_parser.hpp"

#include <charconv>
#include <system_error>

namespace drover::modules::detail {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// Reads the text between `${{` and `}}`.
class expression_parser {
 public:
  explicit expression_parser(std::string_view inner) : text_(inner) {}

  expression parse() {
    while (!text_.empty() && is_space(text_.front()))
      text_.remove_prefix(1);
    while (!text_.empty() && is_space(text_.back()))
      text_.remove_suffix(1);
    if (text_.empty()) throw syntax_error{"the expression is empty"};
    expression e;
    const std::string head = name("deps or matrix");
    if (head == "deps") {
      e.name = selector("the id of a dependency, as deps.<id> or deps['<id>']");
      if (!eat('.')) throw syntax_error{"expected .value or .status after the dependency's id"};
      const std::string what = name(".value or .status");
      if (what == "value") {
        e.from = expression::source::dependency_value;
        steps(e.path);
      } else if (what == "status") {
        e.from = expression::source::dependency_status;
      } else {
        throw syntax_error{"expected .value or .status after the dependency's id, got ." + what};
      }
    } else if (head == "matrix") {
      const bool dotted = at('.');
      e.name = selector("matrix.target or matrix.<axis>");
      // matrix.target is the target; an axis named "target" is matrix['target'].
      e.from = dotted && e.name == "target" ? expression::source::matrix_target
                                            : expression::source::matrix_axis;
    } else {
      throw syntax_error{"unknown name " + in_quotes(head) +
                         ": an expression starts with deps or matrix"};
    }
    if (!text_.empty()) throw syntax_error{"unexpected " + in_quotes(text_) + " at the end"};
    return e;
  }

 private:
  bool at(char c) const { return !text_.empty() && text_.front() == c; }

  bool eat(char c) {
    if (!at(c)) return false;
    text_.remove_prefix(1);
    return true;
  }

  std::string name(std::string_view expected) {
    std::size_t n = 0;
    while (n < text_.size() && is_name_char(text_[n]))
      ++n;
    if (n == 0) {
      throw syntax_error{
          "expected " + std::string(expected) +
          (text_.empty() ? std::string(", got the end") : ", got " + in_quotes(text_))};
    }
    std::string out(text_.substr(0, n));
    text_.remove_prefix(n);
    return out;
  }

  // '...' with '' for a quote; the opening quote is next.
  std::string quoted_key() {
    text_.remove_prefix(1);
    std::string out;
    for (;;) {
      const auto quote = text_.find('\'');
      if (quote == std::string_view::npos) throw syntax_error{"a quoted key has no closing quote"};
      out += text_.substr(0, quote);
      text_.remove_prefix(quote + 1);
      if (!eat('\'')) break;
      out += '\'';
    }
    if (!eat(']')) throw syntax_error{"expected ] after the quoted key " + in_quotes(out)};
    return out;
  }

  // `.name` or `['key']`.
  std::string selector(std::string_view expected) {
    if (eat('.')) return name(expected);
    if (eat('[')) {
      if (!at('\'')) throw syntax_error{"expected a quoted key after [, as ['key']"};
      return quoted_key();
    }
    throw syntax_error{"expected " + std::string(expected)};
  }

  void steps(json_path& path) {
    for (;;) {
      if (eat('.')) {
        path.emplace_back(name("a key after ."));
      } else if (eat('[')) {
        if (at('\'')) {
          path.emplace_back(quoted_key());
          continue;
        }
        std::size_t n = 0;
        while (n < text_.size() && text_[n] >= '0' && text_[n] <= '9')
          ++n;
        std::size_t index = 0;
        const auto [end, ec] = std::from_chars(text_.data(), text_.data() + n, index);
        if (n == 0 || ec != std::errc{}) {
          throw syntax_error{"expected an index (a number) or a quoted key after ["};
        }
        text_.remove_prefix(static_cast<std::size_t>(end - text_.data()));
        if (!eat(']')) throw syntax_error{"expected ] after the index " + std::to_string(index)};
        path.emplace_back(index);
      } else {
        return;
      }
    }
  }

  std::string_view text_;
};

}  // namespace

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::size_t closing_braces(std::string_view s, std::size_t open) {
  bool quoted = false;
  for (std::size_t i = open + open_braces.size(); i < s.size(); ++i) {
    if (s[i] == '\'') {
      quoted = !quoted;  // a doubled quote leaves and re-enters: the same
    } else if (!quoted && s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
      return i;
    }
  }
  return std::string_view::npos;
}

expression parse_expression(std::string_view inner) {
  return expression_parser(inner).parse();
}

}  // namespace drover::modules::detail
