#!/usr/bin/env python3
"""scikit-image peer for `cargo run --release -p petri-image --example bench`.

Times one operation on one image the way /work/shared/peers/reference.py does (1 warm-up, then
the median of N runs, time.perf_counter), writes the result as an uncompressed TIFF so the Rust
side can compare it with its own, and prints one JSON line: {"median_ms", "min_ms", "out"}.

  peer.py OP IMAGE OUT.tif [--repeats 5] [--frame0]

The parameters of every op are fixed here and must match OPS in examples/bench.rs.
"""
import argparse
import json
import statistics
import time

import numpy as np
import scipy.ndimage as ndi
import tifffile
from skimage import exposure, filters, morphology, restoration


def normalize(img, pmin=1.0, pmax=99.8):
    # csbdeep.utils.normalize(x, 1, 99.8) with dtype float32
    mi, ma = np.percentile(img, pmin), np.percentile(img, pmax)
    x = img.astype(np.float32)
    return (x - np.float32(mi)) / (np.float32(ma) - np.float32(mi) + np.float32(1e-20))


def box(k, nd):
    return np.ones((k,) * nd, dtype=bool)


OPS = {
    "gaussian_s2": lambda im: filters.gaussian(im.astype(np.float64), sigma=2.0, mode="nearest", truncate=4.0,
                                               preserve_range=True),
    "median_3": lambda im: filters.median(im, footprint=box(3, im.ndim), mode="nearest", behavior="ndimage"),
    "median_5": lambda im: filters.median(im, footprint=box(5, im.ndim), mode="nearest", behavior="ndimage"),
    "mean_3": lambda im: ndi.uniform_filter(im.astype(np.float64), 3, mode="nearest"),
    "clahe": lambda im: exposure.equalize_adapthist(im, clip_limit=0.01),
    "normalize": normalize,
    "unsharp_r2": lambda im: filters.unsharp_mask(im.astype(np.float64), radius=2.0, amount=1.0, preserve_range=True),
    "otsu": lambda im: im > filters.threshold_otsu(im),
    "li": lambda im: im > filters.threshold_li(im),
    "triangle": lambda im: im > filters.threshold_triangle(im),
    "local_b35": lambda im: im > filters.threshold_local(im, 35, method="gaussian"),
    "rolling_ball_r5": lambda im: restoration.rolling_ball(im, radius=5),
    "rolling_ball_r25": lambda im: restoration.rolling_ball(im, radius=25),
    "tophat_r3": lambda im: morphology.white_tophat(im, morphology.ball(3) if im.ndim == 3 else morphology.disk(3)),
    "tophat_r15": lambda im: morphology.white_tophat(im, morphology.ball(15) if im.ndim == 3 else morphology.disk(15)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("op", choices=sorted(OPS))
    ap.add_argument("image")
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frame0", action="store_true", help="use the first plane of a multi-page file")
    a = ap.parse_args()
    img = tifffile.imread(a.image)
    if a.frame0 and img.ndim == 3:
        img = img[0]
    fn = OPS[a.op]
    res = fn(img)  # warm-up
    ts = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        res = fn(img)
        ts.append(time.perf_counter() - t0)
    res = np.ascontiguousarray(res)
    if res.dtype == bool:
        res = res.astype(np.uint8)
    if res.dtype == np.float64:
        res = res.astype(np.float32)
    tifffile.imwrite(a.out, res, photometric="minisblack", compression=None)
    print(json.dumps({"median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3, "out": a.out}))


if __name__ == "__main__":
    main()
