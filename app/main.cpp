#include "commands.hpp"
#include "service_command.hpp"
#include "simulate_command.hpp"
#include "worker_command.hpp"

#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char* argv[]) {
  try {
    if (argc > 1 && std::string_view{argv[1]} == "worker") {
      const std::vector<std::string> args(argv + 2, argv + argc);
      return drover::app::worker_command(args, std::cout, std::cerr);
    }
    if (argc > 1 && std::string_view{argv[1]} == "simulate") {
      const std::vector<std::string> args(argv + 2, argv + argc);
      return drover::app::simulate_command(args, std::cout, std::cerr);
    }
    if (argc > 1 && drover::app::is_service_command(argv[1])) {
      const std::vector<std::string> args(argv + 2, argv + argc);
      return drover::app::service_command(argv[1], args, std::cout, std::cerr);
    }
    return drover::app::main_command(argc, argv, std::cout, std::cerr);
  } catch (const std::exception& e) {
    // Bad input is reported where it is found; this only catches the unforeseen (out of
    // memory, an unwritable terminal), which must still not end in a crash.
    std::cerr << "drover: error: " << e.what() << '\n';
    return drover::app::exit_usage;
  }
}
