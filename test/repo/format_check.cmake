# Fails when a C++ source of the project is not formatted as .clang-format says.
# Usage: cmake -DCLANG_FORMAT=<path> -DSOURCE_DIR=<repo> -P format_check.cmake

set(folders app bench coord engine examples modules test)
set(files)
foreach(folder IN LISTS folders)
  file(GLOB_RECURSE found "${SOURCE_DIR}/${folder}/*.cpp" "${SOURCE_DIR}/${folder}/*.hpp")
  list(APPEND files ${found})
endforeach()
list(LENGTH files count)
execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror ${files}
                RESULT_VARIABLE result ERROR_VARIABLE errors)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "not clang-formatted (run clang-format -i on these):\n${errors}")
endif()
message(STATUS "${count} files are clang-formatted")
