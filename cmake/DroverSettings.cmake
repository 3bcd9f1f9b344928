# Compiler settings every project target links. Kept as INTERFACE targets (not global flags)
# so that a parent project that adds drover with add_subdirectory keeps its own flags.

add_library(drover_warnings INTERFACE)
target_compile_options(drover_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic>
  # g++ 12 reports a false -Wrestrict inside std::string's operator+ at -O2 and above
  # (GCC bug 105651); -Werror would turn every "literal" + std::string into a build failure.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>
  $<$<AND:$<CXX_COMPILER_ID:GNU,Clang>,$<BOOL:${DROVER_WERROR}>>:-Werror>)

add_library(drover_sanitizers INTERFACE)
if(DROVER_SANITIZE)
  target_compile_options(drover_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    # clang 14 cannot emit -fsanitize=function's checks in a coroutine with debug info ("Cannot
    # represent a difference across sections"); g++ has no such check. Only the indirect-call
    # signature check is lost.
    $<$<CXX_COMPILER_ID:Clang>:-fno-sanitize=function>)
  target_link_options(drover_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
if(DROVER_TSAN)
  # The tsan preset turns DROVER_WERROR off: with -fsanitize=thread at -O1, g++ 12 warns
  # about Asio's std::atomic_thread_fence (-Wtsan: TSan does not model fences), about an
  # awaitable frame's sized operator delete (-Wmismatched-new-delete) and about optionals it
  # cannot follow (-Wmaybe-uninitialized), none of which the other builds report.
  target_compile_options(drover_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(drover_sanitizers INTERFACE -fsanitize=thread)
endif()
if(DROVER_FUZZ)
  # Coverage for libFuzzer in every project target; only the fuzz binaries link its main.
  target_compile_options(drover_sanitizers INTERFACE -fsanitize=fuzzer-no-link)
endif()

# Links the project's private build settings into a target.
function(drover_project_settings target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:drover_warnings>
                                          $<BUILD_INTERFACE:drover_sanitizers>)
endfunction()
