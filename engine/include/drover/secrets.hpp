#pragma once
// Secret values that must never appear in anything drover writes.

#include <boost/json/fwd.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

/// A set of secret values and the means to mask them. Every occurrence of a secret in a text
/// is replaced by "***", the way CI systems mask secrets in their logs. The run masks module
/// values, reasons, events and reports with run_options::secrets; the exec kind masks its own
/// log and output with the secrets it resolved.
///
///     auto secrets = std::make_shared<drover::secret_masker>();
///     secrets->add(std::getenv("CI_TOKEN"));
///     options.secrets = secrets;
///
/// Not thread-safe while secrets are being added; masking is const and may run on any thread.
class secret_masker {
 public:
  static constexpr std::string_view replacement = "***";

  /// Adds a secret. Empty or blank (whitespace only) values are ignored: masking them would
  /// mask every gap between words. A value with several lines also adds each non-blank line,
  /// since logs are read line by line.
  void add(std::string_view value);

  bool empty() const noexcept { return secrets_.empty(); }
  /// The length of the longest secret: a stream masker keeps that many bytes minus one back,
  /// so a secret split across two writes is still found.
  std::size_t longest() const noexcept { return longest_; }

  /// The text with every occurrence of every secret replaced. Occurrences of different secrets
  /// that overlap ("abc" and "cde" in "abcde") are replaced together by one "***".
  std::string mask(std::string_view text) const;
  /// Masks in place; returns whether anything was masked.
  bool mask_in_place(std::string& text) const;
  /// Masks every string in a JSON value, object keys included; returns whether anything was.
  /// A number whose JSON text contains a secret becomes a string with the secret masked.
  bool mask_in_place(boost::json::value& value) const;

  /// For masking a stream in pieces: where `text` may be cut, at `at` or just after it, so
  /// that masking the two pieces separately masks what masking `text` whole would. A stream
  /// masker keeps the last longest() - 1 bytes it has back (a secret may continue in the next
  /// piece) and cuts at stream_cut(pending, pending.size() - (longest() - 1)).
  std::size_t stream_cut(std::string_view text, std::size_t at) const;

 private:
  std::vector<std::string> secrets_;  // longest first
  std::size_t longest_ = 0;
};

}  // namespace drover
