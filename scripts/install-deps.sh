#!/usr/bin/env bash
# Installs the Debian packages drover needs to build and test, and does nothing when they are
# all there. Usage: scripts/install-deps.sh
set -euo pipefail

required=(
  g++
  cmake
  ninja-build
  libboost1.81-dev
  libboost-json1.81-dev
  libboost-program-options1.81-dev
  libboost-test1.81-dev
  libssl-dev
  python3-prometheus-client
  libhiredis-dev
  redis-server
  # The asan preset (CI's second stage): clang and its libFuzzer and sanitizer runtimes.
  clang
  libclang-rt-14-dev
)
# Only the benchmarks use TBB, only the drover binary's speed depends on tcmalloc
# (app/CMakeLists.txt), and only the dashboard test drives Chromium (it is skipped, saying so,
# without it); a machine without them still builds and tests drover.
optional=(
  libtbb-dev
  libgoogle-perftools-dev
  chromium
)

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]
}

missing_required=()
for package in "${required[@]}"; do
  is_installed "$package" || missing_required+=("$package")
done
missing_optional=()
for package in "${optional[@]}"; do
  is_installed "$package" || missing_optional+=("$package")
done

if ((${#missing_required[@]} == 0 && ${#missing_optional[@]} == 0)); then
  echo "install-deps: all dependencies are installed"
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "install-deps: missing packages: ${missing_required[*]} ${missing_optional[*]}" >&2
  echo "install-deps: run this script as root, or install sudo" >&2
  exit 1
fi

apt_get() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}

echo "install-deps: updating the package lists"
apt_get update -q

if ((${#missing_required[@]} > 0)); then
  # Boost 1.81 conflicts with Debian's default Boost (1.74, libboost-dev), so apt replaces
  # that one if it is installed: the build must never see two Boost versions.
  echo "install-deps: installing ${missing_required[*]}"
  if ! apt_get install -y -q --no-install-recommends "${missing_required[@]}"; then
    echo "install-deps: could not install ${missing_required[*]}" >&2
    exit 1
  fi
fi

if ((${#missing_optional[@]} > 0)); then
  echo "install-deps: installing optional ${missing_optional[*]} (benchmarks and the dashboard test)"
  if ! apt_get install -y -q --no-install-recommends "${missing_optional[@]}"; then
    echo "install-deps: could not install ${missing_optional[*]}; the benchmarks and tests" \
      "that need it will be left out or skipped" >&2
  fi
fi

echo "install-deps: done"
