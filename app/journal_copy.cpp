#include "journal_copy.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace drover::app {

namespace {

class copying_store final : public journal_store {
 public:
  copying_store(std::shared_ptr<journal_store> primary, std::filesystem::path copy, durability mode,
                std::ostream& warnings)
      : primary_(std::move(primary)), copy_(std::move(copy)), mode_(mode), warnings_(warnings) {}

  ~copying_store() override {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string name() const override {
    return primary_->name() + " (a copy in " + copy_.string() + ")";
  }

  std::string load() override {
    std::string lines = primary_->load();
    write_copy(lines);
    return lines;
  }

  std::optional<std::string> append(std::string_view lines) override {
    if (auto failed = primary_->append(lines)) return failed;
    write_copy(lines);
    return std::nullopt;
  }

 private:
  // Opens the copy, replacing what an earlier run left there, on first use.
  void open_copy() {
    opened_ = true;
    std::error_code ignored;
    if (copy_.has_parent_path()) std::filesystem::create_directories(copy_.parent_path(), ignored);
    fd_ = ::open(copy_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) give_up("cannot open it: " + std::string(std::strerror(errno)));
  }

  void write_copy(std::string_view lines) {
    if (!opened_) open_copy();
    if (fd_ < 0) return;
    for (std::size_t done = 0; done < lines.size();) {
      const ssize_t put = ::write(fd_, lines.data() + done, lines.size() - done);
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return give_up("cannot write it: " + std::string(std::strerror(errno)));
      done += static_cast<std::size_t>(put);
    }
    if (mode_ == durability::fsync && ::fdatasync(fd_) != 0) {
      give_up("cannot sync it: " + std::string(std::strerror(errno)));
    }
  }

  void give_up(const std::string& why) {
    warnings_ << "drover run: the journal's copy in " << copy_.string() << " stops here, " << why
              << " (the journal in Redis is unaffected)\n";
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::shared_ptr<journal_store> primary_;
  std::filesystem::path copy_;
  durability mode_;
  std::ostream& warnings_;
  bool opened_ = false;
  int fd_ = -1;
};

}  // namespace

std::shared_ptr<journal_store> with_file_copy(std::shared_ptr<journal_store> primary,
                                              std::filesystem::path copy, durability mode,
                                              std::ostream& warnings) {
  return std::make_shared<copying_store>(std::move(primary), std::move(copy), mode, warnings);
}

}  // namespace drover::app
