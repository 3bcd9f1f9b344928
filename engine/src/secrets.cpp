#include <drover/secrets.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace drover {

namespace {

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

// Calls on_stretch(begin, end) for each maximal stretch of `text` that occurrences of
// `secrets` (longest first) cover, in order. Overlapping occurrences of different secrets
// form one stretch, so that no part of either shows; adjacent ones stay separate.
template <class OnStretch>
void for_each_stretch(const std::vector<std::string>& secrets, std::string_view text,
                      OnStretch on_stretch) {
  constexpr auto none = std::string_view::npos;
  std::size_t begin = none;
  std::size_t end = 0;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    if (begin != none && pos >= end) {
      on_stretch(begin, end);
      begin = none;
    }
    for (const auto& s : secrets) {  // longest first: the first match reaches furthest
      if (s.size() > text.size() - pos || text.compare(pos, s.size(), s) != 0) continue;
      if (begin == none) begin = pos;
      end = std::max(end, pos + s.size());
      break;
    }
  }
  if (begin != none) on_stretch(begin, end);
}

}  // namespace

void secret_masker::add(std::string_view value) {
  const auto insert = [this](std::string_view v) {
    // A blank secret would mask every gap between words.
    if (blank(v)) return;
    if (std::find(secrets_.begin(), secrets_.end(), v) != secrets_.end()) return;
    secrets_.emplace_back(v);
    longest_ = std::max(longest_, v.size());
  };
  insert(value);
  // Logs are read line by line: each line of a multi-line secret is masked on its own too.
  if (value.find('\n') != std::string_view::npos) {
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find('\n', start);
      if (end == std::string_view::npos) end = value.size();
      auto line = value.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      insert(line);
      start = end + 1;
    }
  }
  // Longest first, so that a secret containing another is masked whole.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string secret_masker::mask(std::string_view text) const {
  std::string out{text};
  mask_in_place(out);
  return out;
}

bool secret_masker::mask_in_place(std::string& text) const {
  if (secrets_.empty() || text.empty()) return false;
  std::string out;
  bool changed = false;
  std::size_t copied = 0;  // text[0, copied) is in out
  for_each_stretch(secrets_, text, [&](std::size_t begin, std::size_t end) {
    if (!changed) out.reserve(text.size());
    changed = true;
    out.append(text, copied, begin - copied);
    out.append(replacement);
    copied = end;
  });
  if (!changed) return false;
  out.append(text, copied, std::string::npos);
  text = std::move(out);
  return true;
}

bool secret_masker::mask_in_place(boost::json::value& value) const {
  if (secrets_.empty()) return false;
  bool changed = false;
  switch (value.kind()) {
    case boost::json::kind::string: {
      auto& s = value.get_string();
      std::string text{s};
      if (mask_in_place(text)) {
        s = text;
        changed = true;
      }
      break;
    }
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: {
      // A numeric secret (a PIN, an account number) printed as a number: the masked text
      // cannot stay a number, so it becomes a string.
      std::string text = boost::json::serialize(value);
      if (mask_in_place(text)) {
        value = text;
        changed = true;
      }
      break;
    }
    case boost::json::kind::array:
      for (auto& element : value.get_array())
        changed |= mask_in_place(element);
      break;
    case boost::json::kind::object: {
      auto& object = value.get_object();
      bool key_masked = false;
      for (auto& member : object) {
        changed |= mask_in_place(member.value());
        std::string key{member.key()};
        key_masked = key_masked || mask_in_place(key);
      }
      if (key_masked) {
        boost::json::object rebuilt(object.storage());
        rebuilt.reserve(object.size());
        for (auto& member : object)
          rebuilt[mask(member.key())] = std::move(member.value());
        object = std::move(rebuilt);
        changed = true;
      }
      break;
    }
    default:
      break;
  }
  return changed;
}

std::size_t secret_masker::stream_cut(std::string_view text, std::size_t at) const {
  std::size_t cut = std::min(at, text.size());
  for_each_stretch(secrets_, text, [&](std::size_t begin, std::size_t end) {
    if (begin < cut && cut < end) cut = end;
  });
  return cut;
}

}  // namespace drover
