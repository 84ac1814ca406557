#!/usr/bin/env bash
# Checks with tifffile that the TIFFs Petri wrote read back right (called by the Rust test
# `tifffile_reads_what_petri_writes`; usable by hand):
#
#   nodes/io/scripts/check_roundtrip.sh DIR VENV
#
# DIR holds the files and expected.json; VENV is where a private virtual environment with
# numpy + tifffile is created on first use (the test puts it under target/).
# Exit 0: all good; 1: a check failed; 77: skipped (no usable Python 3 or no network for pip).
set -u
dir="$1"
venv="$2"
py="$(command -v python3 || command -v python || true)"
if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
  echo "SKIP: no Python 3.9+ found"
  exit 77
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tifffile, numpy, imagecodecs' 2>/dev/null; then
  rm -rf "$venv"
  if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
    echo "SKIP: cannot create a virtual environment (python3-venv missing?)"
    exit 77
  fi
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "numpy>=1.24" "tifffile>=2023.1" imagecodecs >"$venv.log" 2>&1; then
    echo "SKIP: pip could not install tifffile (offline?); see $venv.log"
    exit 77
  fi
fi
exec "$venv/bin/python" "$(dirname "$0")/check_roundtrip.py" "$dir"
