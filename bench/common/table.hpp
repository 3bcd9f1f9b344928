#pragma once
// Tables for the reports: columns padded for a terminal, or a GitHub Markdown table to paste
// into the docs.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace drover::bench {

/// `value` with `decimals` digits after the point.
inline std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

/// `ns` nanoseconds as milliseconds with one decimal.
inline std::string milliseconds_text(std::int64_t ns) {
  return fixed(static_cast<double>(ns) / 1e6, 1);
}

/// `value` rounded to a whole number with thousands separated: 123456 -> "123,456".
inline std::string grouped(double value) {
  std::string digits = std::to_string(static_cast<long long>(value + 0.5));
  for (std::size_t i = digits.size(); i > 3; i -= 3)
    digits.insert(i - 3, ",");
  return digits;
}

/// Rows of cells under headers; numeric columns are right-aligned.
class table {
 public:
  struct column {
    std::string header;
    bool numeric;
  };

  explicit table(std::vector<column> columns) : columns_(std::move(columns)) {}

  /// Precondition: one cell per column.
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  void print(std::ostream& out, bool markdown) const {
    std::vector<std::size_t> widths(columns_.size());
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      widths[c] = columns_[c].header.size();
      for (const auto& row : rows_)
        widths[c] = std::max(widths[c], row[c].size());
    }
    auto print_row = [&](auto cell_text) {
      for (std::size_t c = 0; c < columns_.size(); ++c) {
        const std::string text = cell_text(c);
        const std::string pad(widths[c] - text.size(), ' ');
        out << (markdown ? "| " : c == 0 ? "" : "  ");
        out << (columns_[c].numeric ? pad + text : text + pad);
        if (markdown) out << ' ';
      }
      out << (markdown ? "|\n" : "\n");
    };
    print_row([&](std::size_t c) { return columns_[c].header; });
    if (markdown) {
      for (std::size_t c = 0; c < columns_.size(); ++c) {
        out << "| " << std::string(widths[c] - 1, '-') << (columns_[c].numeric ? ':' : '-') << ' ';
      }
      out << "|\n";
    } else {
      std::size_t total = 0;
      for (auto w : widths)
        total += w + 2;
      out << std::string(total - 2, '-') << '\n';
    }
    for (const auto& row : rows_)
      print_row([&](std::size_t c) { return row[c]; });
  }

 private:
  std::vector<column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace drover::bench
