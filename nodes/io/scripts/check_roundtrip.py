#!/usr/bin/env python3
"""Reads every TIFF listed in DIR/expected.json with tifffile and checks what Petri meant to write:
ImageJ or OME flavour, axes, shape, dtype, the pixels (SHA-256 of the stack in Petri's canonical
T, C, Z, Y, X order), ImageJ calibration (resolution, spacing, unit, finterval) or OME physical
sizes and channel names, BigTIFF. Prints one line per file; exit status 1 if anything is wrong."""
import hashlib
import json
import pathlib
import sys

import numpy as np
import tifffile

CANON = "TCZYX"


def canonical(arr, axes):
    axes = axes.replace("S", "C").replace("I", "Z").replace("Q", "Z")
    for a in CANON:
        if a not in axes:
            arr = arr[np.newaxis]
            axes = a + axes
    return np.ascontiguousarray(np.transpose(arr, [axes.index(a) for a in CANON]))


def close(a, b):
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


def check(d, e):
    errs = []
    with tifffile.TiffFile(d / e["file"]) as t:
        s = t.series[0]
        arr = s.asarray()
        if e["format"] == "imagej" and not t.is_imagej:
            errs.append("not recognised as ImageJ")
        if e["format"] == "ome" and not t.is_ome:
            errs.append("not recognised as OME-TIFF")
        if t.is_bigtiff != e["bigtiff"]:
            errs.append(f"bigtiff={t.is_bigtiff}")
        if s.axes != e["axes"]:
            errs.append(f"axes {s.axes} != {e['axes']}")
        if list(arr.shape) != e["shape"]:
            errs.append(f"shape {arr.shape} != {e['shape']}")
        if arr.dtype.name != e["dtype"]:
            errs.append(f"dtype {arr.dtype} != {e['dtype']}")
        digest = hashlib.sha256(canonical(arr.astype(arr.dtype.newbyteorder("<")), s.axes).tobytes()).hexdigest()
        if digest != e["sha256"]:
            errs.append("pixels differ")
        z, y, x = e["voxel_zyx"]
        if e["format"] == "imagej":
            ij = t.imagej_metadata or {}
            page = t.pages[0]
            xr = page.tags["XResolution"].value
            yr = page.tags["YResolution"].value
            if e["unit"] != "pixel":
                if ij.get("unit") != e["unit"]:
                    errs.append(f"unit {ij.get('unit')!r}")
                if not (close(xr[1] / xr[0], x) and close(yr[1] / yr[0], y)):
                    errs.append(f"resolution {xr} {yr}")
                if "Z" in e["axes"] and not close(ij.get("spacing", 1.0), z):
                    errs.append(f"spacing {ij.get('spacing')}")
            if e.get("finterval") is not None and not close(ij.get("finterval", 0), e["finterval"]):
                errs.append(f"finterval {ij.get('finterval')}")
        else:
            px = tifffile.xml2dict(t.ome_metadata)["OME"]["Image"]
            px = (px[0] if isinstance(px, list) else px)["Pixels"]
            if e["unit"] != "pixel":
                if not (close(px["PhysicalSizeX"], x) and close(px["PhysicalSizeY"], y)):
                    errs.append(f"physical size {px.get('PhysicalSizeX')} {px.get('PhysicalSizeY')}")
                if "Z" in e["axes"] and not close(px["PhysicalSizeZ"], z):
                    errs.append(f"physical size Z {px.get('PhysicalSizeZ')}")
            ch = px.get("Channel", [])
            ch = ch if isinstance(ch, list) else [ch]
            names = [c.get("Name", "") for c in ch]
            if e["channels"] and names != e["channels"]:
                errs.append(f"channel names {names}")
    return errs


def main():
    d = pathlib.Path(sys.argv[1])
    expected = json.loads((d / "expected.json").read_text())
    bad = 0
    for e in expected:
        errs = check(d, e)
        print(("ok   " if not errs else "FAIL ") + e["file"] + ("" if not errs else ": " + "; ".join(errs)))
        bad += bool(errs)
    print(f"tifffile {tifffile.__version__}: {len(expected) - bad}/{len(expected)} files ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
