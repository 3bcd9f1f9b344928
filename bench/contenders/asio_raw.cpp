// asio_raw: the floor. No engine: each ready module is one boost::asio::post of a handler on a
// single io_context run by `threads` threads, and a finished module releases its successors by
// decrementing hand-written dependency counters. What scheduling costs with nothing on top.
//
// build: allocating and filling the counters. run: from posting the sources until the last
// module finished.

#include "common/contender.hpp"

#include <boost/asio/post.hpp>

#include <atomic>
#include <memory>
#include <type_traits>

namespace drover::bench {

namespace {

// On one thread the counters are plain integers: the floor should not pay for atomics that
// nothing needs.
template <bool concurrent>
class counted_run {
 public:
  using counter = std::conditional_t<concurrent, std::atomic<std::uint32_t>, std::uint32_t>;

  counted_run(boost::asio::io_context& io, const shape& s, module_work& work)
      : io_(io),
        shape_(s),
        work_(work),
        pending_(new counter[s.size()]),
        remaining_(static_cast<std::uint32_t>(s.size())) {
    for (node i = 0; i < s.size(); ++i)
      set(pending_[i], s.in_degree(i));
  }

  void start(io_work_guard& guard) {
    guard_ = &guard;
    for (node i : shape_.sources())
      post_module(i);
  }

  bench_clock::time_point finished_at() const noexcept { return finished_; }

 private:
  static void set(counter& c, std::uint32_t value) noexcept {
    if constexpr (concurrent) {
      c.store(value, std::memory_order_relaxed);
    } else {
      c = value;
    }
  }
  // True when this was the last reference.
  static bool release(counter& c) noexcept {
    if constexpr (concurrent) {
      return c.fetch_sub(1, std::memory_order_acq_rel) == 1;
    } else {
      return --c == 0;
    }
  }

  void post_module(node i) {
    boost::asio::post(io_, [this, i] { execute(i); });
  }

  void execute(node i) {
    work_(i);
    for (node next : shape_.successors(i)) {
      if (release(pending_[next])) post_module(next);
    }
    if (release(remaining_)) {
      finished_ = bench_clock::now();
      guard_->reset();
    }
  }

  boost::asio::io_context& io_;
  const shape& shape_;
  module_work& work_;
  std::unique_ptr<counter[]> pending_;
  counter remaining_;
  io_work_guard* guard_ = nullptr;
  bench_clock::time_point finished_;
};

template <bool concurrent>
round_figures run_counted(const shape& s, module_work& work, std::size_t threads) {
  boost::asio::io_context io{static_cast<int>(threads)};
  round_figures figures;
  const auto before_build = bench_clock::now();
  counted_run<concurrent> run{io, s, work};
  figures.build_ns = nanoseconds_between(before_build, bench_clock::now());

  bench_clock::time_point started;
  run_on_threads(io, threads, [&](io_work_guard& guard) {
    started = bench_clock::now();
    run.start(guard);
  });
  figures.run_ns = nanoseconds_between(started, run.finished_at());
  return figures;
}

}  // namespace

round_figures run_asio_raw(const shape& s, module_work& work, std::size_t threads) {
  return threads > 1 ? run_counted<true>(s, work, threads) : run_counted<false>(s, work, threads);
}

}  // namespace drover::bench
