#!/usr/bin/env python3
"""tifffile side of the petri-io benchmark (examples/bench_io.rs runs it; see docs/benchmarks/io.md).

    bench_peer.py read FILE REPEATS      -> prints "read <best seconds> <max RSS bytes>
        <RSS bytes before the first read (Python, numpy, tifffile loaded)> <shape> <dtype>"
    bench_peer.py write IN OUT COMP REPEATS [fsync] -> prints "write <best seconds>" (IN is read first,
        untimed; with "fsync" the file is fsynced after writing, inside the timing, to compare with
        Petri's atomic save)

COMP is none, lzw or deflate; files are written as ImageJ hyperstacks like Petri's io.save_tiff.
"""
import os
import resource
import sys
import time

import tifffile


def rss_now():
    """The current resident set in bytes (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    if sys.argv[1] == "read":
        path, repeats = sys.argv[2], int(sys.argv[3])
        best = float("inf")
        before = rss_now()
        for _ in range(repeats):
            t0 = time.perf_counter()
            a = tifffile.imread(path)
            best = min(best, time.perf_counter() - t0)
            shape, dtype = a.shape, a.dtype
            del a
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"read {best:.6f} {rss} {before} {'x'.join(map(str, shape))} {dtype}")
    else:
        src, out, comp, repeats = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        fsync = len(sys.argv) > 6 and sys.argv[6] == "fsync"
        a = tifffile.imread(src)
        axes = "ZYX" if a.ndim == 3 else "YX"
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            tifffile.imwrite(out, a, imagej=True, metadata={"axes": axes},
                             compression=None if comp == "none" else comp)
            if fsync:
                with open(out, "rb+") as f:
                    os.fsync(f.fileno())
            best = min(best, time.perf_counter() - t0)
        print(f"write {best:.6f}")


if __name__ == "__main__":
    main()
