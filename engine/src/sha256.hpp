#pragma once
// SHA-256 through OpenSSL's EVP interface: fingerprints and the content-addressed cache.
// Internal to the engine.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace drover::detail {

/// Incremental SHA-256. Fields are fed with a length prefix (field()) so that ("ab", "c") and
/// ("a", "bc") hash differently.
class sha256 {
 public:
  sha256();
  ~sha256();
  sha256(const sha256&) = delete;
  sha256& operator=(const sha256&) = delete;

  /// Forgets everything fed so far.
  void reset();
  void update(std::string_view bytes);
  /// The length, then the bytes: an unambiguous field.
  void field(std::string_view bytes);
  /// The digest as 64 lower-case hex digits; the hasher starts afresh afterwards.
  std::string hex_digest();

 private:
  EVP_MD_CTX* ctx_;
};

/// The hex SHA-256 of a file's content; throws std::system_error naming the file.
std::string sha256_file_hex(const std::filesystem::path& file);

}  // namespace drover::detail
