#!/usr/bin/env bash
# Builds the release artifact the operator's user data downloads: one static-enough binary,
# target/release/plinth-ingest (or $CARGO_TARGET_DIR/release/plinth-ingest), plus its
# SHA-256 beside it. Usage: webapp/build-artifact.sh [output-dir]
# With an output dir the binary is copied there as plinth-ingest-<version>-<arch>.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

cargo build --locked --release -p plinth-ingest --bin plinth-ingest
binary="$target_dir/release/plinth-ingest"
"$binary" --version >/dev/null

version="$(cargo pkgid -p plinth-ingest | sed 's/.*[#@]//')"
arch="$(uname -m)"
(cd "$(dirname "$binary")" && sha256sum plinth-ingest > plinth-ingest.sha256)
echo "built $binary (version $version, $arch)"

if [[ $# -ge 1 ]]; then
    mkdir -p "$1"
    name="plinth-ingest-$version-$arch"
    cp "$binary" "$1/$name"
    (cd "$1" && sha256sum "$name" > "$name.sha256")
    echo "copied to $1/$name"
fi
