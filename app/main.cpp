#include "commands.hpp"

#include <exception>
#include <iostream>

int main(int argc, char* argv[]) {
  try {
    return drover::app::main_command(argc, argv, std::cout, std::cerr);
  } catch (const std::exception& e) {
    // Bad input is reported where it is found; this only catches the unforeseen (out of
    // memory, an unwritable terminal), which must still not end in a crash.
    std::cerr << "drover: error: " << e.what() << '\n';
    return drover::app::exit_usage;
  }
}
