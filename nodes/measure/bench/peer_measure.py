#!/usr/bin/env python3
"""scikit-image side of Petri's measure benchmark (run by examples/bench_measure.rs).

Prepares the inputs (the same pipeline as Petri's shared reference.py: Gaussian, Otsu,
connected components, EDT, peak_local_max seeds, watershed) and writes them as TIFFs into
--out, then times the scikit-image / scipy operations that measure.regions and
measure.metrics replace, printing one JSON object per line: {"input", "op", "median_ms", "min_ms"}.
Median of --repeats runs after one warm-up, wall clock, like reference.py's bench.

The metric functions are copied from ../shared/peers/reference.py (Petri's reference script).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import tifffile
from scipy.optimize import linear_sum_assignment
from skimage import feature, filters, measure, metrics as skmetrics, segmentation

BASIC = ("label", "area", "centroid", "intensity_mean", "bbox")
FULL_2D = BASIC + ("equivalent_diameter_area", "axis_major_length", "axis_minor_length", "eccentricity",
                   "solidity", "intensity_min", "intensity_max")
FULL_3D = BASIC + ("equivalent_diameter_area", "axis_major_length", "axis_minor_length", "intensity_min",
                   "intensity_max")


def watershed_of(img, sigma, min_distance):
    g = filters.gaussian(img.astype(np.float64), sigma=sigma, mode="nearest", truncate=4.0, preserve_range=True)
    mask = g > filters.threshold_otsu(g)
    cc = measure.label(mask, connectivity=img.ndim)
    dist = ndi.distance_transform_edt(mask)
    coords = feature.peak_local_max(dist, min_distance=min_distance, labels=cc, exclude_border=False)
    markers = np.zeros(dist.shape, dtype=np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    return segmentation.watershed(-dist, markers, mask=mask, connectivity=1)


def contingency(gt, pred):
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    key = g * (int(p.max()) + 1) + p
    uk, cnt = np.unique(key, return_counts=True)
    gi = uk // (int(p.max()) + 1)
    pi = uk % (int(p.max()) + 1)
    gsz = dict(zip(*np.unique(g, return_counts=True)))
    psz = dict(zip(*np.unique(p, return_counts=True)))
    return gi, pi, cnt, gsz, psz


def ctc_seg(gt, pred):
    gi, pi, cnt, gsz, psz = contingency(gt, pred)
    scores = {int(g): 0.0 for g in gsz if g != 0}
    for g, p, c in zip(gi, pi, cnt):
        if g == 0 or p == 0:
            continue
        if c > 0.5 * gsz[g]:
            scores[int(g)] = c / (gsz[g] + psz[p] - c)
    return float(np.mean(list(scores.values())))


def instance_matching(gt, pred, thresh=0.5):
    gi, pi, cnt, gsz, psz = contingency(gt, pred)
    gids = sorted(int(g) for g in gsz if g != 0)
    pids = sorted(int(p) for p in psz if p != 0)
    gix = {g: i for i, g in enumerate(gids)}
    pix = {p: i for i, p in enumerate(pids)}
    iou = np.zeros((len(gids), len(pids)))
    for g, p, c in zip(gi, pi, cnt):
        if g and p:
            iou[gix[int(g)], pix[int(p)]] = c / (gsz[g] + psz[p] - c)
    r, c = linear_sum_assignment(-iou)
    return int((iou[r, c] >= thresh).sum())


def all_metrics(gt, ws):
    a, b = gt > 0, ws > 0
    np.logical_and(a, b).sum(), np.logical_or(a, b).sum()
    skmetrics.adapted_rand_error(gt.astype(np.int64), ws.astype(np.int64))
    ctc_seg(gt, ws)
    for t in (0.5, 0.75, 0.9):
        instance_matching(gt, ws, t)


def timeit(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="Petri's shared data folder (nuclei3d_cells3d/)")
    ap.add_argument("--ctc", required=True, help="CTC cache from fetch-ctc.sh (fluo_hela/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = {}
    img3 = tifffile.imread(Path(a.data) / "nuclei3d_cells3d/image.tif")
    gt3 = tifffile.imread(Path(a.data) / "nuclei3d_cells3d/labels.tif")
    inputs["cells3d"] = (img3, gt3, watershed_of(img3, 2.0, 10), FULL_3D)
    hela = Path(a.ctc) / "fluo_hela"
    if (hela / "Fluo_Hela_02_img.tif").exists():
        img2 = tifffile.imread(hela / "Fluo_Hela_02_img.tif")[0]
        gt2 = tifffile.imread(hela / "Fluo_Hela_02_ERR_SEG.tif")[0]
        inputs["hela_frame0"] = (img2, gt2, watershed_of(img2, 2.0, 5), FULL_2D)
    for name, (img, gt, ws, full) in inputs.items():
        for kind, arr in (("image", img), ("truth", gt), ("watershed", ws)):
            arr = np.ascontiguousarray(arr)
            if kind != "image":
                arr = arr.astype(np.uint16 if arr.max() < 65536 else np.uint32)
            tifffile.imwrite(out / f"{name}_{kind}.tif", arr, photometric="minisblack")
        ops = [
            ("regionprops basic (label, area, centroid, intensity_mean, bbox)",
             lambda: measure.regionprops_table(ws, intensity_image=img, properties=BASIC)),
            ("regionprops full (+ shape, intensity min/max)",
             lambda: measure.regionprops_table(ws, intensity_image=img, properties=full)),
            ("IoU+Dice (foreground)", lambda: (np.logical_and(gt > 0, ws > 0).sum(), np.logical_or(gt > 0, ws > 0).sum())),
            ("adapted_rand_error", lambda: skmetrics.adapted_rand_error(gt.astype(np.int64), ws.astype(np.int64))),
            ("CTC SEG", lambda: ctc_seg(gt, ws)),
            ("F1@0.5 (Hungarian matching)", lambda: instance_matching(gt, ws, 0.5)),
            ("all metrics (IoU, Dice, ARE, SEG, matching at 0.5/0.75/0.9)", lambda: all_metrics(gt, ws)),
        ]
        for op, fn in ops:
            med, mn = timeit(fn, a.repeats)
            print(json.dumps({"input": name, "shape": "x".join(map(str, img.shape)), "op": op,
                              "median_ms": med, "min_ms": mn}), flush=True)


if __name__ == "__main__":
    main()
