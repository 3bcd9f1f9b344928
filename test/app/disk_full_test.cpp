// A full disk under the journal, the log directory and the workspace of `drover run`: each gets
// a clear message, nothing is lost that was reported durable, and nothing hangs. The disk is a
// small tmpfs the test mounts; where this process may not mount one (not root, or no
// CAP_SYS_ADMIN), the cases are skipped with a message saying why.

#define BOOST_TEST_MODULE disk_full
#include "app_test_support.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using namespace drover::app_test;
namespace json = boost::json;
namespace utf = boost::unit_test;

/// A tmpfs of `size` (as mount's "size=" takes it) on a fresh directory, unmounted when done.
class small_disk {
 public:
  explicit small_disk(const std::string& size) {
    const std::string options = "size=" + size;
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      why_not_ = std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~small_disk() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;

  bool mounted() const noexcept { return mounted_; }
  const std::string& why_not() const noexcept { return why_not_; }
  const fs::path& path() const noexcept { return dir_.path(); }

  /// Writes a filler file until the disk is full, then frees `keep` bytes of it.
  void fill(std::size_t keep = 0) {
    const auto filler = dir_.path() / "filler";
    {
      std::ofstream out{filler, std::ios::binary};
      const std::string block(4096, 'x');
      while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) {
      }
    }
    const auto size = fs::file_size(filler);
    fs::resize_file(filler, size > keep ? size - keep : 0);
  }

 private:
  scratch_dir dir_;
  bool mounted_ = false;
  std::string why_not_;
};

/// Whether this process can mount a tmpfs; says why not in the log when it cannot.
struct can_mount {
  boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
    small_disk probe{"64k"};
    if (probe.mounted()) return true;
    boost::test_tools::assertion_result skipped(false);
    skipped.message() << "skipped: cannot mount a tmpfs: " << probe.why_not();
    return skipped;
  }
};

/// `count` independent noop modules; each journal record is about 110 bytes.
std::string noops(int count) {
  std::string text = R"({"name": "disk", "modules": [)";
  for (int i = 0; i < count; ++i) {
    if (i > 0) text += ",";
    text += R"({"id": "m)" + std::to_string(i) + R"(", "kind": "noop"})";
  }
  return text + "]}";
}

json::object read_report(const fs::path& file) {
  return json::parse(read_file(file)).as_object();
}

bool notes_mention(const json::object& report, std::string_view text) {
  const auto* notes = report.if_contains("notes");
  if (notes == nullptr) return false;
  for (const auto& note : notes->as_array()) {
    if (std::string_view(note.as_string()).find(text) != std::string_view::npos) return true;
  }
  return false;
}

std::size_t count_status(const json::object& report, std::string_view status) {
  std::size_t n = 0;
  for (const auto& m : report.at("modules").as_array())
    n += m.as_object().at("status").as_string() == status ? 1 : 0;
  return n;
}

/// Complete module records in a journal's text: a torn last line is not one.
std::size_t complete_module_records(const std::string& journal) {
  std::size_t n = 0;
  std::istringstream lines{journal};
  std::string line;
  while (std::getline(lines, line)) {
    if (lines.eof()) break;  // no '\n' after it: torn
    n += line.find(R"("type":"module")") != std::string::npos ? 1 : 0;
  }
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(disk_full, *utf::precondition(can_mount{}))

BOOST_AUTO_TEST_CASE(a_full_journal_disk_is_a_note_and_what_was_written_is_kept,
                     *utf::timeout(120)) {
  scratch_dir dir;
  small_disk disk{"16k"};
  dir.write("p.json", noops(400));  // about 44 KB of records for a 16 KB disk
  const auto journal = disk.path() / "run.journal";
  const auto first = run_drover({"run", "p.json", "--journal", journal.string(), "--report",
                                 "first.json", "--progress", "never"},
                                dir.path());
  BOOST_TEST(first.exit_code == 0, first.err);  // the journal never fails the run
  const std::string expected = "cannot write journal '" + journal.string() + "'";
  BOOST_TEST(first.out.find(expected) != std::string::npos, first.out);
  BOOST_TEST(first.out.find("No space left on device") != std::string::npos, first.out);
  const auto report = read_report(dir / "first.json");
  BOOST_TEST(notes_mention(report, "No space left on device"));
  BOOST_TEST(count_status(report, "succeeded") == 400u);

  // What the journal holds was durable; a resume from it (moved to a disk with room) reuses
  // every module it recorded whole and reruns only the rest.
  const std::string kept = read_file(journal);
  const std::size_t recorded = complete_module_records(kept);
  BOOST_TEST_MESSAGE(recorded << " of 400 module records fit on the disk");
  BOOST_TEST(recorded > 0u);
  BOOST_TEST(recorded < 400u);
  fs::copy_file(journal, dir / "moved.journal");
  const auto second = run_drover({"run", "p.json", "--journal", "moved.journal", "--resume",
                                  "--report", "second.json", "--progress", "never"},
                                 dir.path());
  BOOST_TEST(second.exit_code == 0, second.err);
  const auto resumed = read_report(dir / "second.json");
  BOOST_TEST(count_status(resumed, "cached") == recorded);
  BOOST_TEST(count_status(resumed, "succeeded") == 400u - recorded);
}

BOOST_AUTO_TEST_CASE(a_full_log_disk_is_a_note_and_the_module_still_succeeds, *utf::timeout(120)) {
  scratch_dir dir;
  small_disk disk{"16k"};
  const auto logs = disk.path() / "logs";
  fs::create_directories(logs);
  disk.fill();
  dir.write("p.json", R"({"modules": [
    {"id": "chatty", "kind": "exec", "params": {"argv": ["seq", "1", "20000"]}}]})");
  const auto run = run_drover(
      {"run", "p.json", "--log-dir", logs.string(), "--report", "r.json", "--progress", "never"},
      dir.path());
  BOOST_TEST(run.exit_code == 0, run.err);
  const auto report = read_report(dir / "r.json");
  BOOST_TEST(count_status(report, "succeeded") == 1u);
  const std::string expected =
      "module 'chatty': log file '" + (logs / "chatty.log").string() + "' is incomplete: ";
  BOOST_TEST(notes_mention(report, expected + "No space left on device"));
  BOOST_TEST(run.out.find("note: " + expected) != std::string::npos, run.out);
}

BOOST_AUTO_TEST_CASE(a_full_workspace_fails_the_module_with_the_reason, *utf::timeout(120)) {
  scratch_dir dir;
  small_disk disk{"64k"};
  dir.write("p.json", R"({"modules": [
    {"id": "big", "kind": "exec",
     "params": {"argv": ["sh", "-c", "head -c 1000000 /dev/zero > big.out"], "cwd": "."},
     "outputs": ["big.out"]},
    {"id": "after", "kind": "noop", "deps": ["big"]}]})");
  const auto run =
      run_drover({"run", "p.json", "--workspace", disk.path().string(), "--log-dir",
                  (dir / "logs").string(), "--report", "r.json", "--progress", "never"},
                 dir.path());
  BOOST_TEST(run.exit_code == 1, run.err);
  const auto report = read_report(dir / "r.json");
  for (const auto& m : report.at("modules").as_array()) {
    const auto& module = m.as_object();
    if (module.at("id") == "big") {
      BOOST_TEST(module.at("status") == "failed");
      const std::string reason(module.at("reason").as_string());
      BOOST_TEST(reason.find("No space left on device") != std::string::npos, reason);
    } else {
      BOOST_TEST(module.at("status") == "skipped");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
