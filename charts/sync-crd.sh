#!/usr/bin/env bash
# Copies the generated CRD (crds/dataplatform.yaml, written by
# `cargo run -p plinth-crds --bin crdgen`) into the chart, which installs it from its crds/ folder.
#
#   charts/sync-crd.sh          copy it
#   charts/sync-crd.sh --check  exit 1 when the chart's copy differs (CI: .ci/check-generated)
set -euo pipefail
cd "$(dirname "$0")/.."

src=crds/dataplatform.yaml
dst=charts/plinth-operator/crds/dataplatform.yaml

[[ -f $src ]] || {
	echo "sync-crd: $src is missing; generate it with: cargo run -p plinth-crds --bin crdgen" >&2
	exit 1
}

case "${1:-}" in
"")
	mkdir -p "$(dirname "$dst")"
	cp "$src" "$dst"
	echo "sync-crd: copied $src to $dst"
	;;
--check)
	if [[ ! -f $dst ]]; then
		echo "sync-crd: $dst is missing; run charts/sync-crd.sh" >&2
		exit 1
	fi
	if ! cmp -s "$src" "$dst"; then
		echo "sync-crd: $dst differs from $src; run charts/sync-crd.sh and commit the copy:" >&2
		diff -u "$dst" "$src" | head -n 40 >&2 || true
		exit 1
	fi
	;;
*)
	echo "usage: charts/sync-crd.sh [--check]" >&2
	exit 2
	;;
esac
