#!/usr/bin/env bash
# Scores a CTC tracking result against CTC tracking ground truth with py-ctcmetrics (the Cell
# Tracking Challenge's Python metrics, from PyPI), installed into a private venv.
#   score_ctc.sh RESULT_DIR GT_TRA_DIR [VENV_DIR]
# RESULT_DIR holds maskNNN.tif + res_track.txt; GT_TRA_DIR holds man_trackNNN.tif + man_track.txt.
# Prints one JSON object: {"TRA": .., "DET": .., "LNK": .., "valid": ..}. Needs python3 and, the
# first time, network access to PyPI.
set -euo pipefail
res=$(realpath "$1")
tra=$(realpath "$2")
venv=${3:-$HOME/.cache/petri-testdata/venv-ctcmetrics}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import ctc_metrics" 2>/dev/null; then
    "$venv/bin/pip" install -q "py-ctcmetrics==1.3.3" >&2
fi
# py-ctcmetrics expects <gt>/TRA/man_track*.tif.
gt=$(mktemp -d); trap 'rm -rf "$gt"' EXIT
ln -s "$tra" "$gt/TRA"
"$venv/bin/python" - "$res" "$gt" <<'PY'
import json, sys, warnings
warnings.simplefilter("ignore")
from ctc_metrics.scripts.evaluate import evaluate_sequence
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    r = evaluate_sequence(sys.argv[1], sys.argv[2], ["TRA", "DET", "LNK", "Valid"])
print(json.dumps({k: (float(v) if v is not None else None) for k, v in r.items()}))
PY
