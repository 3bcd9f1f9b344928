#pragma once
// The run's handle on one master connection: the remote_worker a session attaches to the hub.

#include <drover/coord/detail/master_session.hpp>
#include <drover/remote.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace drover::coord::detail {

/// Made by the session when its worker's handshake completes. The run calls it on its own
/// strand; everything it is given is copied (an assign: encoded into `outbox`) and handed to
/// the session's strand. Once the session is gone, calls do nothing.
std::shared_ptr<remote_worker> make_worker_link(std::weak_ptr<session_core> session,
                                                boost::asio::any_io_executor strand,
                                                std::string run_id,
                                                std::shared_ptr<assign_outbox> outbox,
                                                std::size_t max_line_bytes);

}  // namespace drover::coord::detail
