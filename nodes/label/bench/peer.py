#!/usr/bin/env python3
"""scikit-image / scipy side of the petri-label benchmark.

Prepares the inputs exactly like /work/shared/peers/reference.py (gaussian sigma=2, Otsu, then
connected components, EDT, peak_local_max seeds, watershed), saves them and the peer's outputs
under OUT/<input>/, and times every op (median of at least REPEATS runs, more for fast ops, after one warm-up, single process) into
OUT/<input>/timing.json. The Rust side (examples/bench.rs) reads the same files.

  peer.py --img3d cells3d.tif --img2d hela.tif [--frame2d 0] --out DIR [--repeats 5]
"""
import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import tifffile
from skimage import feature, filters, measure, morphology as morph, segmentation as seg

warnings.filterwarnings("ignore", category=FutureWarning)  # binary_* deprecated in 0.26


def timeit(fn, repeats):
    """Median wall-clock and process-CPU milliseconds after one warm-up: at least `repeats` runs,
    more (up to 100) until 0.3 s have been spent, so millisecond ops get a stable median. The
    Rust side (examples/bench.rs) uses the same rule."""
    fn()
    ts, cs = [], []
    while len(ts) < repeats or (sum(ts) < 0.3 and len(ts) < 100):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts) * 1e3, statistics.median(cs) * 1e3


def save(path, arr):
    arr = np.ascontiguousarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "i" or (arr.dtype.kind == "u" and arr.dtype.itemsize > 1):
        arr = arr.astype(np.uint32)
    tifffile.imwrite(path, arr, photometric="minisblack")


def run(name, img, md, out, repeats):
    d = Path(out) / name
    d.mkdir(parents=True, exist_ok=True)
    nd = img.ndim
    g = filters.gaussian(img.astype(np.float64), sigma=2.0, mode="nearest", truncate=4.0, preserve_range=True)
    mask = g > filters.threshold_otsu(g)
    cc = measure.label(mask, connectivity=nd)
    edt = ndi.distance_transform_edt(mask)
    coords = feature.peak_local_max(edt, min_distance=md, labels=cc, exclude_border=False)
    markers = np.zeros(edt.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    neg = -edt
    b2 = morph.disk(2) if nd == 2 else morph.ball(2)
    gaps = cc * 3
    ops = {
        # key: (label in the table, callable, saved result)
        "cc_full": (f"connected components conn={8 if nd == 2 else 26}", lambda: measure.label(mask, connectivity=nd)),
        "cc_face": (f"connected components conn={4 if nd == 2 else 6}", lambda: measure.label(mask, connectivity=1)),
        "edt": ("distance transform (EDT)", lambda: ndi.distance_transform_edt(mask)),
        "seeds": (f"seeds: peak_local_max md={md} per object", lambda: feature.peak_local_max(
            edt, min_distance=md, labels=cc, exclude_border=False)),
        "h_maxima": ("seeds: h_maxima h=1", lambda: morph.h_maxima(edt.astype(np.float32), 1.0)),
        "watershed": ("watershed (-edt, markers, mask, conn=1)", lambda: seg.watershed(neg, markers, mask=mask, connectivity=1)),
        "relabel": ("relabel sequential", lambda: seg.relabel_sequential(gaps)[0]),
        "boundaries": ("boundaries thick", lambda: seg.find_boundaries(cc, connectivity=1, mode="thick")),
        "expand": ("expand labels d=3", lambda: seg.expand_labels(cc, distance=3)),
        "clear_border": ("clear border", lambda: seg.clear_border(cc)),
        "erode": ("erode mask ball r=2", lambda: morph.binary_erosion(mask, b2)),
        "dilate": ("dilate mask ball r=2", lambda: morph.binary_dilation(mask, b2)),
        "open": ("open mask ball r=2", lambda: morph.binary_opening(mask, b2)),
        "close": ("close mask ball r=2", lambda: morph.binary_closing(mask, b2)),
        "fill_holes": ("fill holes (mask)", lambda: ndi.binary_fill_holes(mask)),
        "remove_small_objects": ("remove small objects < 64", lambda: morph.remove_small_objects(mask, max_size=63)),
        "remove_small_holes": ("remove small holes < 64", lambda: morph.remove_small_holes(mask, max_size=63)),
    }
    save(d / "mask.tif", mask)
    save(d / "cc.tif", cc)
    save(d / "edt.tif", edt)
    save(d / "markers.tif", markers)
    timing = {}
    for key, (label, fn) in ops.items():
        res = fn()
        if key == "seeds":
            res = markers
        save(d / f"out_{key}.tif", res)
        ms, cpu = timeit(fn, repeats)
        timing[key] = {"label": label, "ms": ms, "cpu_ms": cpu}
        print(f"{name:10s} {label:45s} {ms:10.2f} ms  (cpu {cpu:.2f})", flush=True)
    meta = {"shape": list(img.shape), "dtype": str(img.dtype), "min_distance": md,
            "foreground": int(mask.sum()), "objects": int(cc.max()), "seeds": int(len(coords))}
    (d / "timing.json").write_text(json.dumps({"meta": meta, "ops": timing}, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--img3d", required=True)
    ap.add_argument("--img2d", required=True)
    ap.add_argument("--frame2d", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    img2 = tifffile.imread(a.img2d)
    if img2.ndim == 3:
        img2 = img2[a.frame2d]
    run("cells3d", tifffile.imread(a.img3d), 10, a.out, a.repeats)
    run("hela2d", img2, 5, a.out, a.repeats)


if __name__ == "__main__":
    main()
