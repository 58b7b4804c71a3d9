#!/usr/bin/env bash
# Builds the Debian package for a target: the release binary (`cargo build --release --locked`,
# reusing target/), then `cargo deb --no-build`. For the host, plain `cargo deb` does the same;
# every packaged file (config, man page, completions) is committed under packaging/ and kept
# current by tests/packaging.rs. Usage:
#   packaging/build-deb.sh [--target TRIPLE] [other cargo-deb options]
# Prints the path of the .deb as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

target_args=()
if [ "${1:-}" = --target ]; then
  target_args=(--target "$2")
  shift 2
fi
cargo build --release --locked "${target_args[@]}" >&2
cargo deb --no-build "${target_args[@]}" "$@"
