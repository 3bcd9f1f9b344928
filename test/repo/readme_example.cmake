# Checks that the README's opening program is examples/hello_pipeline.cpp, which the test suite
# builds and runs, so the README cannot show code that no longer compiles or behaves.
# Usage: cmake -DREADME=<README.md> -DEXAMPLE=<hello_pipeline.cpp> -P readme_example.cmake

file(READ "${README}" readme)
string(FIND "${readme}" "```cpp\n" start)
if(start EQUAL -1)
  message(FATAL_ERROR "${README}: no ```cpp block")
endif()
math(EXPR start "${start} + 7")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} shown)

file(READ "${EXAMPLE}" example)
# The example file opens with a one-line comment that the README replaces with prose.
string(REGEX REPLACE "^//[^\n]*\n" "" example "${example}")

if(NOT shown STREQUAL example)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_shown.cpp" "${shown}")
  message(FATAL_ERROR "The README's first ```cpp block differs from ${EXAMPLE}; "
                      "compare with ${CMAKE_CURRENT_BINARY_DIR}/readme_shown.cpp")
endif()
message(STATUS "README example matches ${EXAMPLE}")
