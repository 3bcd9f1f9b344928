#include "sha256.hpp"

#include <openssl/evp.h>

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <system_error>

namespace drover::detail {

namespace {
// Fetched once: OpenSSL 3 would otherwise look the algorithm up again on every init.
const EVP_MD* sha256_algorithm() {
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return algorithm;
}
}  // namespace

sha256::sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || sha256_algorithm() == nullptr ||
      EVP_DigestInit_ex(ctx_, sha256_algorithm(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw std::runtime_error("cannot initialise SHA-256 (OpenSSL)");
  }
}

sha256::~sha256() {
  EVP_MD_CTX_free(ctx_);
}

void sha256::reset() {
  EVP_DigestInit_ex(ctx_, sha256_algorithm(), nullptr);
}

void sha256::update(std::string_view bytes) {
  if (!bytes.empty()) EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

void sha256::field(std::string_view bytes) {
  char length[24];
  const auto end = std::to_chars(length, length + sizeof length - 1, bytes.size()).ptr;
  *end = ':';
  update(std::string_view(length, static_cast<std::size_t>(end + 1 - length)));
  update(bytes);
}

std::string sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx_, digest, &size);
  reset();
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex(size * 2, '0');
  for (unsigned int i = 0; i < size; ++i) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0xf];
  }
  return hex;
}

std::string sha256_file_hex(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot read '" + file.string() + "'");
  }
  sha256 h;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      throw std::system_error(error, std::generic_category(),
                              "cannot read '" + file.string() + "'");
    }
    h.update(std::string_view(buffer, static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return h.hex_digest();
}

}  // namespace drover::detail
