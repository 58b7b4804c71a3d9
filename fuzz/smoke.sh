#!/usr/bin/env bash
# Fuzz smoke run for CI: builds every fuzz target once, runs each for a bounded time and
# fails if any of them crashes (panic, abort, hang past -timeout, or RSS past the limit).
# Safe on a fresh machine: installs cargo-fuzz (and a C++ compiler for libFuzzer) if missing.
#
#   bash fuzz/smoke.sh                      # every target, 20 s each
#   FUZZ_SECONDS=300 bash fuzz/smoke.sh token config
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 20)
#   FUZZ_BUILD_FLAGS  flags for `cargo fuzz build/run` (default: no sanitizer, 16 codegen
#                     units: builds in about half the time; gatehouse is safe Rust, and a
#                     panic is caught without ASan). Set to "" for cargo-fuzz's defaults (ASan).
#   FUZZ_TOOLCHAIN    e.g. "nightly" to build with `cargo +nightly`; by default the active
#                     (stable) toolchain with RUSTC_BOOTSTRAP=1, which cargo-fuzz needs for
#                     its -Z flags.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS---sanitizer none --codegen-units 16}"
cargo=(cargo)
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
  cargo=(cargo "+$FUZZ_TOOLCHAIN")
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(json_bodies headers token config http_request access webauthn_json resp_frame store_entry oidc_code)
fi

start=$(date +%s)
stamp() { echo "[fuzz $(($(date +%s) - start)) s] $*"; }

if ! command -v c++ >/dev/null 2>&1; then
  stamp "installing a C++ compiler (libfuzzer-sys builds libFuzzer)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  stamp "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

stamp "building ${targets[*]}"
if [[ $# -eq 0 ]]; then
  # All at once, so that cargo compiles and links the targets in parallel.
  RUSTC_BOOTSTRAP=1 "${cargo[@]}" fuzz build "${build_flags[@]}"
else
  for target in "${targets[@]}"; do
    RUSTC_BOOTSTRAP=1 "${cargo[@]}" fuzz build "${build_flags[@]}" "$target"
  done
fi

# The http_request target keeps its data dir under TMPDIR; keep all of it in one place.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch

failed=()
for target in "${targets[@]}"; do
  corpus=corpus/$target
  mkdir -p "$corpus"
  seeds=()
  if [[ -d seeds/$target ]]; then
    seeds=("seeds/$target")
  fi
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1)
  if [[ $target == http_request ]]; then
    args+=(-timeout=10)
  fi
  stamp "running $target for $seconds s"
  # New inputs go to the first corpus dir (git-ignored); seeds are read only.
  if ! RUSTC_BOOTSTRAP=1 "${cargo[@]}" fuzz run "${build_flags[@]}" "$target" \
    "$corpus" "${seeds[@]}" -- "${args[@]}" 2>"$scratch/$target.log"; then
    failed+=("$target")
    # libFuzzer's report: the crash, its stack and the reproducer path.
    tail -n 80 "$scratch/$target.log"
  else
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$scratch/$target.log" || true
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  stamp "FAILED: ${failed[*]}; crashing inputs are in fuzz/artifacts/<target>/ (see fuzz/README.md)"
  exit 1
fi
stamp "all fuzz targets ran without a crash"
