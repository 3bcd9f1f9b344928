#!/usr/bin/env bash
# Fuzzes one libFuzzer target for a bounded time, starting from its seeds and regression inputs.
# A crash, a leak, an input slower than 10 s or a process over 2 GiB fails (libFuzzer exits
# non-zero); the input that did it is kept in WORK/artifacts/ and printed, to be added to
# test/fuzz/regressions/NAME/ once the bug is fixed.
#
#   run_fuzzer.sh BINARY NAME SECONDS SOURCE_DIR WORK_DIR
set -euo pipefail
binary=$1 name=$2 seconds=$3 source_dir=$4 work=$5
mkdir -p "$work/corpus" "$work/artifacts"
inputs=("$work/corpus" "$source_dir/corpus/$name")
if [ -d "$source_dir/regressions/$name" ]; then inputs+=("$source_dir/regressions/$name"); fi
# New inputs go to the first directory (the build's), never into the source tree.
exec "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${inputs[@]}"
