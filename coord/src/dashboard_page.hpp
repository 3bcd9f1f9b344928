#pragma once

#include <string_view>

namespace drover::coord::detail {

/// The dashboard `drover serve` answers at `/`: one self-contained HTML page over the JSON API.
std::string_view dashboard_page() noexcept;

}  // namespace drover::coord::detail
