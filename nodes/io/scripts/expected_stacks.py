#!/usr/bin/env python3
"""Records what tifffile reads from the sample images, as the reference for petri-io's tests.

Run by hand (not by CI), from the repository root:

    python nodes/io/scripts/expected_stacks.py            # assets/samples -> tests/fixtures/io/samples_expected.json
    python nodes/io/scripts/expected_stacks.py --shared   # ../shared/data -> tests/fixtures/io/shared_expected.json

Needs numpy and tifffile. For every TIFF it stores the stack in Petri's canonical layout
(T, C, Z, Y, X; tifffile's series axes reordered, samples S as channels, signed integers and
float64 as float32), its dtype, the voxel size as ImageJ defines it (1 / XResolution,
`spacing=`, `unit=`), and the SHA-256 of the canonical little-endian pixel bytes.
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import tifffile

ROOT = pathlib.Path(__file__).resolve().parents[3]
CANON = "TCZYX"


def canonical(arr, axes):
    """Reorders a tifffile series array to T, C, Z, Y, X (absent axes of size 1)."""
    axes = axes.replace("S", "C").replace("I", "Z").replace("Q", "Z")
    assert len(set(axes)) == len(axes), axes
    for a in CANON:
        if a not in axes:
            arr = arr[np.newaxis]
            axes = a + axes
    return np.transpose(arr, [axes.index(a) for a in CANON])


def out_dtype(dt):
    if dt == np.uint8 or dt == bool:
        return "u8", np.dtype("<u1")
    if dt == np.uint16:
        return "u16", np.dtype("<u2")
    if dt == np.uint32:
        return "u32", np.dtype("<u4")
    return "f32", np.dtype("<f4")


def describe(path, rel):
    with tifffile.TiffFile(path) as t:
        s = t.series[0]
        arr = s.asarray()
        axes = s.axes
        ij = t.imagej_metadata or {}
        page = t.pages[0]
        voxel = [1.0, 1.0, 1.0]
        unit = "pixel"
        if ij.get("unit") and ij["unit"] not in ("pixel", "pixels", ""):
            u = ij["unit"]
            unit = "micron" if u in ("um", "\u00b5m", "micron", "microns") else u
            for i, tag in ((2, "XResolution"), (1, "YResolution")):
                if tag in page.tags:
                    n, d = page.tags[tag].value
                    voxel[i] = d / n
        if "spacing" in ij:
            voxel[0] = float(ij["spacing"])
    name, dt = out_dtype(arr.dtype)
    c = np.ascontiguousarray(canonical(arr.astype(dt), axes))
    present = "".join(a for a in CANON if a in axes.replace("S", "C").replace("I", "Z").replace("Q", "Z"))
    return {
        "file": rel,
        "axes": present,
        "dims": list(c.shape),
        "dtype": name,
        "voxel_zyx": voxel,
        "unit": unit,
        "sha256": hashlib.sha256(c.tobytes()).hexdigest(),
    }


def main():
    shared = "--shared" in sys.argv
    if shared:
        base = ROOT.parent / "shared" / "data"
        out = ROOT / "tests/fixtures/io/shared_expected.json"
        files = sorted(base.glob("*/*.tif"))
    else:
        base = ROOT / "assets/samples"
        out = ROOT / "tests/fixtures/io/samples_expected.json"
        files = sorted(base.glob("*.tif"))
    rows = [describe(f, str(f.relative_to(base))) for f in files]
    out.write_text(json.dumps({"tifffile": tifffile.__version__, "files": rows}, indent=1) + "\n")
    print(f"wrote {out} ({len(rows)} files)")


if __name__ == "__main__":
    main()
