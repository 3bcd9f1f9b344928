#include "arguments.hpp"

namespace drover::app {

namespace po = boost::program_options;

std::optional<po::variables_map> parse_arguments(const std::string& command,
                                                 const std::vector<std::string>& args,
                                                 const po::options_description& options,
                                                 const char* positional, std::ostream& err) {
  po::options_description all;
  all.add(options).add_options()(positional, po::value<std::string>());
  po::positional_options_description positions;
  positions.add(positional, 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positions).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err << "drover " << command << ": " << e.what() << "\nTry 'drover " << command << " --help'.\n";
    return std::nullopt;
  }
  return vm;
}

}  // namespace drover::app
