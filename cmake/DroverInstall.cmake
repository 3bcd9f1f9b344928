# Install rules and the exported package, so that a consumer can write
#
#     find_package(drover CONFIG REQUIRED)
#     target_link_libraries(app PRIVATE drover::engine drover::modules)
#
# Included from the top-level CMakeLists.txt after every target exists.

include(CMakePackageConfigHelpers)

set(DROVER_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/drover"
    CACHE STRING "Where the drover package configuration files are installed")

install(TARGETS drover_engine drover_modules drover_coord
  EXPORT drover-targets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

if(TARGET drover)
  install(TARGETS drover EXPORT drover-targets RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
endif()

install(DIRECTORY "${PROJECT_SOURCE_DIR}/engine/include/drover"
                  "${PROJECT_SOURCE_DIR}/modules/include/drover"
                  "${PROJECT_SOURCE_DIR}/coord/include/drover"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  FILES_MATCHING PATTERN "*.hpp" PATTERN "*.ipp")
# version.hpp is generated from version.hpp.in into the engine's binary directory.
install(FILES "${PROJECT_BINARY_DIR}/engine/include/drover/version.hpp"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/drover")

install(EXPORT drover-targets
  NAMESPACE drover::
  FILE drover-targets.cmake
  DESTINATION "${DROVER_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/drover-config.cmake.in"
  "${PROJECT_BINARY_DIR}/drover-config.cmake"
  INSTALL_DESTINATION "${DROVER_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/drover-config-version.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/drover-config.cmake"
              "${PROJECT_BINARY_DIR}/drover-config-version.cmake"
  DESTINATION "${DROVER_INSTALL_CMAKEDIR}")
