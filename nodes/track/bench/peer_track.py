#!/usr/bin/env python3
"""scikit-image + SciPy side of Petri's tracking benchmark (run by examples/bench_track.rs).

`frame_centroids`, `hungarian_link` and `track` are copied from Petri's shared reference
script (../shared/peers/reference.py), which produced tests/fixtures/reference/tracking and the
"track all N frames (regionprops+link)" timings: per-frame regionprops_table, then SciPy's
linear_sum_assignment on gated centroid distances. Median of --repeats runs after one warm-up.
Prints one JSON object per line.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from skimage import measure


def frame_centroids(labels):
    rows = []
    for t in range(labels.shape[0]):
        df = pd.DataFrame(measure.regionprops_table(labels[t], intensity_image=labels[t],
                                                    properties=("label", "area", "centroid", "intensity_mean", "bbox")))
        df.insert(0, "t", t)
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def hungarian_link(ca, cb, max_dist):
    if len(ca) == 0 or len(cb) == 0:
        return np.zeros((0, 2), int), np.zeros(0)
    d = cdist(ca, cb)
    cost = np.where(d <= max_dist, d, 1e9)
    r, c = linear_sum_assignment(cost)
    keep = d[r, c] <= max_dist
    return np.stack([r[keep], c[keep]], 1), d[r[keep], c[keep]]


def track(labels, max_dist):
    cents = frame_centroids(labels)
    ccols = [c for c in cents.columns if c.startswith("centroid-")]
    links = []
    for t in range(labels.shape[0] - 1):
        a = cents[cents.t == t]
        b = cents[cents.t == t + 1]
        pairs, dist = hungarian_link(a[ccols].to_numpy(), b[ccols].to_numpy(), max_dist)
        for (i, j), dd in zip(pairs, dist):
            links.append({"t": t, "label_t": int(a.label.iloc[i]), "label_t1": int(b.label.iloc[j]),
                          "distance": float(dd)})
    return cents, pd.DataFrame(links)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctc", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    ctc = Path(a.ctc)
    inputs = []
    tra = ctc / "fluo_sim_tra"
    if (tra / "man_track.txt").exists():
        inputs.append(("sim_ctc_tra_gt", np.stack([tifffile.imread(f) for f in sorted(tra.glob("man_track*.tif"))])))
    hela = ctc / "fluo_hela" / "Fluo_Hela_02_ERR_SEG.tif"
    if hela.exists():
        inputs.append(("hela_ctc_2dt", tifffile.imread(hela)))
    for name, labels in inputs:
        fn = lambda: track(labels, 30.0)
        fn()
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        print(json.dumps({"input": name, "shape": "x".join(map(str, labels.shape)),
                          "op": f"track all {labels.shape[0]} frames (regionprops+link)",
                          "median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3,
                          "links": int(len(fn()[1]))}), flush=True)


if __name__ == "__main__":
    main()
