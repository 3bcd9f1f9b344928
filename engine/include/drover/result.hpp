#pragma once
// What a run reports: one result per module plus run-level status and counts.

#include <drover/graph.hpp>
#include <drover/remote.hpp>
#include <drover/status.hpp>

#include <boost/json/value.hpp>

#include <array>
#include <chrono>
#include <compare>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

using wall_clock = std::chrono::system_clock;

/// The outcome of one module.
struct module_result {
  std::string id;
  module_status status = module_status::pending;
  boost::json::value value;    ///< the body's value when succeeded, else null
  std::uint16_t attempts = 0;  ///< attempts started (0 when skipped or cancelled before starting)
  std::int32_t worker = -1;    ///< index into run_report::workers of the last attempt, -1 if none
  wall_clock::time_point started_at{};   ///< start of the first attempt
  wall_clock::time_point finished_at{};  ///< when the module reached its terminal state
  std::string reason;  ///< why it failed, timed out, was skipped or cancelled; empty on success

  std::chrono::milliseconds duration() const {
    if (attempts == 0) return std::chrono::milliseconds{0};
    return std::chrono::duration_cast<std::chrono::milliseconds>(finished_at - started_at);
  }
};

namespace detail {
/// Where a run's report reads its modules from: the run's own tables, kept compact (a report
/// of a million modules costs no module_result each).
class result_source {
 public:
  virtual ~result_source() = default;
  virtual std::size_t size() const noexcept = 0;
  virtual module_result get(std::size_t i) const = 0;
};
}  // namespace detail

/// The modules of a report, in pipeline order. Each access makes the module_result (a copy of
/// its id, value and reason) from the run's tables, so hold a result rather than index twice:
///
///     for (const drover::module_result& m : report.modules) print(m.id, m.status);
///     const drover::module_result build = report.modules[2];
///
/// A report made by hand (tests, tools) stores its results: push_back() and resize() do that.
class module_results {
 public:
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = module_result;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = module_result;

    iterator() = default;
    iterator(const module_results* owner, std::size_t at) : owner_(owner), at_(at) {}
    module_result operator*() const { return (*owner_)[at_]; }
    module_result operator[](difference_type k) const {
      return (*owner_)[at_ + static_cast<std::size_t>(k)];
    }
    iterator& operator++() {
      ++at_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++at_;
      return old;
    }
    iterator& operator--() {
      --at_;
      return *this;
    }
    iterator operator--(int) {
      iterator old = *this;
      --at_;
      return old;
    }
    iterator& operator+=(difference_type k) {
      at_ = static_cast<std::size_t>(static_cast<difference_type>(at_) + k);
      return *this;
    }
    iterator& operator-=(difference_type k) { return *this += -k; }
    friend iterator operator+(iterator it, difference_type k) { return it += k; }
    friend iterator operator+(difference_type k, iterator it) { return it += k; }
    friend iterator operator-(iterator it, difference_type k) { return it -= k; }
    friend difference_type operator-(const iterator& a, const iterator& b) {
      return static_cast<difference_type>(a.at_) - static_cast<difference_type>(b.at_);
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.at_ == b.at_; }
    friend auto operator<=>(const iterator& a, const iterator& b) { return a.at_ <=> b.at_; }

   private:
    const module_results* owner_ = nullptr;
    std::size_t at_ = 0;
  };

  module_results() = default;
  /// Results stored by hand (tests, tools).
  module_results(std::initializer_list<module_result> results) : stored_(results) {}
  explicit module_results(std::vector<module_result> results) : stored_(std::move(results)) {}
  explicit module_results(std::shared_ptr<const detail::result_source> source)
      : source_(std::move(source)) {}

  std::size_t size() const noexcept { return source_ ? source_->size() : stored_.size(); }
  bool empty() const noexcept { return size() == 0; }
  module_result operator[](std::size_t i) const { return source_ ? source_->get(i) : stored_[i]; }
  module_result at(std::size_t i) const;
  module_result front() const { return (*this)[0]; }
  module_result back() const { return (*this)[size() - 1]; }
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, size()}; }

  /// For a report made by hand: stores `r` after the others.
  void push_back(module_result r);
  void resize(std::size_t n);
  void reserve(std::size_t n) { stored_.reserve(n); }

 private:
  void store();  // turns results read from a source into stored ones
  std::vector<module_result> stored_;
  std::shared_ptr<const detail::result_source> source_;
};

struct run_report {
  std::string pipeline;
  /// The run's id, as in every event of the run (run_options::run_id, or one drover made up).
  std::string run_id;
  run_status status = run_status::invalid;
  wall_clock::time_point started_at{}, finished_at{};
  module_results modules;                    ///< in pipeline order
  std::vector<std::string> workers;          ///< worker names, indexed by module_result::worker
  std::vector<validation_problem> problems;  ///< why the pipeline was invalid
  std::array<std::size_t, module_status_count> counts{};  ///< modules per module_status
  remote_stats remote;  ///< what happened with remote workers (all zero without them)
  /// The run's epoch: the worker hub's, else the journal's; 0 without either.
  std::uint64_t epoch = 0;
  std::size_t reused_from_journal = 0;  ///< modules cached because an earlier run recorded them
  std::size_t reused_from_cache = 0;    ///< modules cached from the fingerprint cache
  /// What the user should know that did not change the outcome: a torn journal line dropped,
  /// a result the cache could not store, a journal write that failed.
  std::vector<std::string> notes;

  std::size_t count(module_status s) const noexcept { return counts[static_cast<std::size_t>(s)]; }
  /// The module with this id, or nothing. Linear search: for reports, not hot loops.
  std::optional<module_result> find(std::string_view id) const;
  std::string_view worker_name(const module_result& r) const noexcept {
    return r.worker < 0 ? std::string_view{} : std::string_view{workers[r.worker]};
  }
  std::chrono::milliseconds duration() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(finished_at - started_at);
  }
};

}  // namespace drover
