#!/usr/bin/env bash
# Builds the Debian package: the release binary (`cargo build --release --locked`, reusing
# target/), then the packaged default config, then `cargo deb --no-build`. Usage:
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

# The packaged /etc/gatehouse/config.toml: the project's documented config.toml (kept equal to
# the built-in defaults by a unit test) with the data dir the unit allows writes to.
mkdir -p target/packaging
out=target/packaging/config.toml
if ! grep -qx 'data_dir = "./data"' config.toml; then
  echo "build-deb.sh: config.toml has no line 'data_dir = \"./data\"' to rewrite" >&2
  exit 1
fi
{
  cat <<'HEADER'
# /etc/gatehouse/config.toml, as shipped by the gatehouse Debian package: the project's
# documented defaults, with data_dir = /var/lib/gatehouse. A conffile: your edits survive
# upgrades. gatehouse.service runs `gatehouse serve --config /etc/gatehouse/config.toml` as
# the user gatehouse, and may write only to /var/lib/gatehouse (ProtectSystem=strict), so keep
# data_dir there. The signing secret is /etc/gatehouse/jwt_secret (systemd credential
# "jwt_secret", mode 0600), not a key in this file. After editing: `gatehouse check-config
# --config /etc/gatehouse/config.toml`, then `systemctl restart gatehouse`.
#
HEADER
  sed -e 's|^data_dir = "./data"$|data_dir = "/var/lib/gatehouse"|' config.toml
} >"$out.tmp"
mv "$out.tmp" "$out"

cargo deb --no-build "${target_args[@]}" "$@"
