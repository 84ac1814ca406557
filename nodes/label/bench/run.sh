#!/usr/bin/env bash
# petri-label benchmark, side by side with scikit-image/scipy in the same run.
#   nodes/label/bench/run.sh [CELLS3D.tif] [HELA.tif] [OUT_DIR]
# Defaults: the shared cells3d stack and frame 0 of the CTC HeLa sequence
# (/work/shared/data/fetch-ctc.sh puts it in ~/.cache/petri-testdata/ctc). Writes the table to
# docs/benchmarks/label.md (between the markers) when run from the repository root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
img3d=${1:-/work/shared/data/nuclei3d_cells3d/image.tif}
img2d=${2:-$HOME/.cache/petri-testdata/ctc/fluo_hela/Fluo_Hela_02_img.tif}
out=${3:-$(mktemp -d)}
python=${PYTHON:-/work/venv/bin/python}
if [ ! -f "$img2d" ]; then
  echo "HeLa frame not found at $img2d: run /work/shared/data/fetch-ctc.sh first" >&2
  exit 1
fi
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-label}
cargo build --release -q -p petri-label --example bench --manifest-path "$root/Cargo.toml"
"$python" "$root/nodes/label/bench/peer.py" --img3d "$img3d" --img2d "$img2d" --out "$out"
"$CARGO_TARGET_DIR/release/examples/bench" "$out" --md "$out/table.md"
echo "table: $out/table.md"
