# cmake -P script: builds and runs the consumer project against drover in one of two modes.
#   DROVER_MODE=find_package      installs DROVER_BINARY_DIR into a fresh prefix and points
#                                 CMAKE_PREFIX_PATH at it
#   DROVER_MODE=add_subdirectory  the consumer adds DROVER_SOURCE_DIR as a subdirectory
# Everything happens under DROVER_WORK_DIR, which is emptied first so that no earlier run
# can make this one pass.

cmake_minimum_required(VERSION 3.25)

foreach(required DROVER_MODE DROVER_WORK_DIR DROVER_CONSUMER_SOURCE_DIR DROVER_GENERATOR
                 DROVER_CXX_COMPILER DROVER_BOOST_DIR)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${required} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${DROVER_WORK_DIR}")
file(MAKE_DIRECTORY "${DROVER_WORK_DIR}")
set(consumer_build_dir "${DROVER_WORK_DIR}/build")

set(configure_args
  -S "${DROVER_CONSUMER_SOURCE_DIR}"
  -B "${consumer_build_dir}"
  -G "${DROVER_GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${DROVER_CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${DROVER_BUILD_TYPE}"
  "-DCMAKE_CXX_FLAGS=${DROVER_CXX_FLAGS}"
  "-DBoost_DIR=${DROVER_BOOST_DIR}")
if(DROVER_MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${DROVER_MAKE_PROGRAM}")
endif()

if(DROVER_MODE STREQUAL "find_package")
  set(prefix "${DROVER_WORK_DIR}/prefix")
  message(STATUS "Installing ${DROVER_BINARY_DIR} into ${prefix}")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" --install "${DROVER_BINARY_DIR}" --prefix "${prefix}"
    COMMAND_ERROR_IS_FATAL ANY)
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}")
elseif(DROVER_MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args
    "-DDROVER_SOURCE_DIR=${DROVER_SOURCE_DIR}"
    "-DDROVER_SANITIZE=${DROVER_SANITIZE}")
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown DROVER_MODE '${DROVER_MODE}'")
endif()

message(STATUS "Configuring the consumer (${DROVER_MODE})")
execute_process(COMMAND "${CMAKE_COMMAND}" ${configure_args} COMMAND_ERROR_IS_FATAL ANY)

message(STATUS "Building the consumer")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${consumer_build_dir}" --parallel 2
  COMMAND_ERROR_IS_FATAL ANY)

message(STATUS "Running the consumer")
execute_process(
  COMMAND "${consumer_build_dir}/drover_consumer"
  WORKING_DIRECTORY "${DROVER_WORK_DIR}"
  COMMAND_ERROR_IS_FATAL ANY)
