#!/usr/bin/env bash
# Build, test and demo dependencies of lockwatch on Debian 12 (bookworm).
# Source this file, then call lw_install_deps. apt runs only when a package is missing, so a warm machine
# skips the network entirely.

LW_DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format clang-tidy git
  libpqxx-dev libpq-dev prometheus-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libyaml-cpp-dev libpg-query-dev libcpp-httplib-dev libssl-dev zlib1g-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  postgresql-15 postgresql-client-15 prometheus prometheus-alertmanager curl openssl tmux procps
  systemd python3 python3-yaml dpkg-dev file man-db psmisc
  clang-14 libclang-rt-14-dev chromium
)

# Prints the packages of LW_DEB_PACKAGES that are not installed, one per line.
lw_missing_deps() {
  # One dpkg-query for all packages; unknown packages print nothing and count as missing.
  local installed
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${LW_DEB_PACKAGES[@]}" 2>/dev/null |
    awk '$2 ~ /^ii/ {print $1}' || true)"
  local pkg
  for pkg in "${LW_DEB_PACKAGES[@]}"; do
    if ! grep -qxF "${pkg}" <<<"${installed}"; then
      echo "${pkg}"
    fi
  done
}

# Installs whatever is missing. Needs root (or sudo) only when something is missing.
lw_install_deps() {
  local missing
  mapfile -t missing < <(lw_missing_deps)
  if ((${#missing[@]} == 0)); then
    echo "deps: all ${#LW_DEB_PACKAGES[@]} packages already installed"
    return 0
  fi
  echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps: missing packages and not root (no sudo): ${missing[*]}" >&2
      return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  mapfile -t missing < <(lw_missing_deps)
  if ((${#missing[@]} != 0)); then
    echo "deps: still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi
}

# Configures the build directory $1 the way the test command and the demo share it: Ninja, warnings as errors,
# build type LOCKWATCH_BUILD_TYPE (default Release, which the top-level CMakeLists.txt defines as -O2 without
# debug info).
lw_configure() {
  local build_dir=$1
  if [[ -f "${build_dir}/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "${build_dir}/CMakeCache.txt"; then
    echo "${build_dir} was configured with another generator; reconfiguring from scratch"
    rm -rf -- "${build_dir}"
  fi
  cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE="${LOCKWATCH_BUILD_TYPE:-Release}" \
    -DLOCKWATCH_WERROR=ON
}
