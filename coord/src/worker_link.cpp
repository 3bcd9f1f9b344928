#include "worker_link.hpp"

#include <drover/coord/protocol.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <mutex>
#include <utility>

namespace drover::coord::detail {
namespace {

namespace asio = boost::asio;

/// The run's handle on one connection. The run calls it on its own strand; everything it
/// is given is copied (an assign: encoded into the outbox) and handed to the session's strand,
/// never touched in place.
class worker_link final : public remote_worker {
 public:
  worker_link(std::weak_ptr<session_core> session, asio::any_io_executor strand, std::string run_id,
              std::shared_ptr<assign_outbox> outbox, std::size_t max_line_bytes)
      : session_(std::move(session)),
        strand_(std::move(strand)),
        run_id_(std::move(run_id)),
        outbox_(std::move(outbox)),
        max_line_bytes_(max_line_bytes) {}

  void assign(const assignment& a) override {
    assign_view m;
    m.run = run_id_;
    m.epoch = a.epoch;
    m.module = a.id;
    m.attempt = a.attempt;
    m.kind = a.kind;
    m.params = a.params;
    if (a.timeout)
      m.timeout_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(a.timeout->count(), 1));
    m.deps = a.deps;
    m.results = a.new_results;
    if (!a.matrix_target.empty()) m.matrix_target = a.matrix_target;
    m.outputs = a.outputs;

    std::unique_lock lock(outbox_->mutex);
    const std::size_t bytes = encode_to(outbox_->lines, m);
    if (bytes - 1 > max_line_bytes_) {
      outbox_->lines.resize(outbox_->lines.size() - bytes);
      lock.unlock();
      on_session([module = std::string(a.id), index = a.module, attempt = a.attempt,
                  epoch = a.epoch, bytes](session_core& s) mutable {
        s.refuse_oversized_assign(std::move(module), index, attempt, epoch, bytes - 1);
      });
      return;
    }
    outbox_->entries.push_back({std::string(a.id), a.module, a.attempt});
    if (outbox_->flush_posted) return;
    outbox_->flush_posted = true;
    lock.unlock();
    on_session([](session_core& s) { s.flush_assigns(); });
  }

  void cancel(std::uint32_t, std::string_view id, std::uint32_t attempt,
              std::string_view reason) override {
    on_session(
        [id = std::string(id), attempt, reason = std::string(reason)](session_core& s) mutable {
          s.send_cancel(std::move(id), attempt, std::move(reason));
        });
  }

  void rejected(std::string_view id, std::uint32_t attempt, std::string_view code,
                std::string_view reason) override {
    on_session([id = std::string(id), attempt, code = std::string(code),
                reason = std::string(reason)](session_core& s) mutable {
      s.send_rejected(std::move(id), attempt, std::move(code), std::move(reason));
    });
  }

  void run_finished(std::string_view reason) override {
    on_session([reason = std::string(reason)](session_core& s) mutable {
      s.send_run_finished(std::move(reason));
    });
  }

  // Posted after every assign the run made for this worker, so the drain line follows them.
  void drain(std::string_view reason) override {
    on_session([reason = std::string(reason)](session_core& s) mutable {
      s.send_drain(std::move(reason));
    });
  }

 private:
  template <typename Call>
  void on_session(Call call) {
    asio::post(strand_, [session = session_, call = std::move(call)]() mutable {
      if (auto s = session.lock()) call(*s);
    });
  }

  std::weak_ptr<session_core> session_;
  asio::any_io_executor strand_;
  std::string run_id_;
  std::shared_ptr<assign_outbox> outbox_;
  std::size_t max_line_bytes_;
};

}  // namespace

std::shared_ptr<remote_worker> make_worker_link(std::weak_ptr<session_core> session,
                                                asio::any_io_executor strand, std::string run_id,
                                                std::shared_ptr<assign_outbox> outbox,
                                                std::size_t max_line_bytes) {
  return std::make_shared<worker_link>(std::move(session), std::move(strand), std::move(run_id),
                                       std::move(outbox), max_line_bytes);
}

}  // namespace drover::coord::detail
