#include <drover/engine.hpp>

#include "run_driver.hpp"

#include <boost/asio/thread_pool.hpp>

namespace drover {

struct engine::thread_pool_holder {
  explicit thread_pool_holder(std::size_t threads) : pool(threads) {}
  boost::asio::thread_pool pool;
};

engine::engine(executor_type executor, engine_options options) : executor_(std::move(executor)) {
  if (options.worker_threads > 0)
    pool_ = std::make_unique<thread_pool_holder>(options.worker_threads);
}

engine::~engine() {
  if (pool_) pool_->pool.join();
}

void engine::start(pipeline p, run_options options,
                   boost::asio::any_completion_handler<run_signature> handler) {
  boost::asio::any_io_executor worker_pool;  // none: workers share the run's strand
  if (pool_) worker_pool = pool_->pool.get_executor();
  auto run = std::make_shared<detail::run_driver>(executor_, std::move(worker_pool), std::move(p),
                                                  std::move(options), std::move(handler));
  run->start();
}

void engine::start(prepared_pipeline p, run_options options,
                   boost::asio::any_completion_handler<run_signature> handler) {
  boost::asio::any_io_executor worker_pool;
  if (pool_) worker_pool = pool_->pool.get_executor();
  auto run = std::make_shared<detail::run_driver>(executor_, std::move(worker_pool), std::move(p),
                                                  std::move(options), std::move(handler));
  run->start();
}

}  // namespace drover
