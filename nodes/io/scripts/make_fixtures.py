#!/usr/bin/env python3
"""Generates the small TIFF fixtures of petri-io's reader tests, with the arrays tifffile reads.

Run by hand (not by CI), from the repository root, with numpy, tifffile and imagecodecs:

    python nodes/io/scripts/make_fixtures.py

Writes tests/fixtures/io/tiff/<name>.tif, <name>.bin (the expected stack in Petri's canonical
T, C, Z, Y, X order, little-endian, in Petri's pixel type) and manifest.json (shape, axes, dtype,
voxel size, channel names, series, tolerance). One file per codec x bit depth x layout:
strips/tiles, BigTIFF, planar configuration 2, big-endian, predictors, MinIsWhite, ImageJ
hyperstack TZCYX, OME-TIFF with physical sizes and channel names, multi-series OME and plain.
The expected arrays are what tifffile decodes, with two documented Petri conventions applied:
MinIsWhite is inverted (max - value) and signed/float16/float64 samples become float32.
"""
import json
import pathlib

import numpy as np
import tifffile

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "tests/fixtures/io/tiff"
CANON = "TCZYX"
rng = np.random.default_rng(12345)
manifest = []


def canonical(arr, axes):
    axes = axes.replace("S", "C").replace("I", "Z").replace("Q", "Z")
    for a in CANON:
        if a not in axes:
            arr = arr[np.newaxis]
            axes = a + axes
    return np.ascontiguousarray(np.transpose(arr, [axes.index(a) for a in CANON]))


def petri_dtype(dt):
    if dt == bool or dt == np.uint8:
        return "u8", np.dtype("<u1")
    if dt == np.uint16:
        return "u16", np.dtype("<u2")
    if dt == np.uint32:
        return "u32", np.dtype("<u4")
    return "f32", np.dtype("<f4")


def record(name, series=0, present=None, voxel=(1.0, 1.0, 1.0), unit="pixel", channels=(), tol=0.0, invert=False):
    """Reads the fixture back with tifffile and stores the expected canonical stack."""
    path = OUT / f"{name}.tif"
    with tifffile.TiffFile(path) as t:
        s = t.series[series]
        arr = s.asarray()
        axes = s.axes
    if invert:
        arr = (np.iinfo(arr.dtype).max - arr) if arr.dtype.kind == "u" else (1.0 - arr)
    dname, dt = petri_dtype(arr.dtype)
    c = canonical(arr.astype(dt), axes)
    (OUT / f"{name}.bin").write_bytes(c.tobytes())
    if present is None:
        present = "".join(a for a in CANON if c.shape[CANON.index(a)] > 1 or a in "YX")
    manifest.append({
        "file": f"{name}.tif",
        "bin": f"{name}.bin",
        "series": series,
        "dims": list(c.shape),
        "axes": present,
        "dtype": dname,
        "voxel_zyx": list(voxel),
        "unit": unit,
        "channels": list(channels),
        "tolerance": tol,
    })


def data(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == bool:
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    # Smooth-ish data so codecs and predictors have something to work on, plus extremes.
    a = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    a.flat[0] = info.min
    a.flat[-1] = info.max
    return a


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*"):
        f.unlink()
    shape = (3, 20, 17)

    # Codec x bit depth (strips of 4 rows, 3 pages).
    codecs = {"none": None, "lzw": "lzw", "deflate": "adobe_deflate", "zlib": "deflate",
              "packbits": "packbits", "zstd": "zstd"}
    for dt in ("uint8", "uint16", "float32"):
        for cname, comp in codecs.items():
            name = f"codec_{cname}_{dt}"
            tifffile.imwrite(OUT / f"{name}.tif", data(shape, dt), compression=comp, rowsperstrip=4,
                             photometric="minisblack", metadata=None)
            record(name)
    # Bit depths (LZW).
    for dt in ("uint32", "int8", "int16", "int32", "float16", "float64", "bool"):
        name = f"depth_{dt}"
        tifffile.imwrite(OUT / f"{name}.tif", data(shape, dt), compression="lzw" if dt != "bool" else None,
                         rowsperstrip=5, photometric="minisblack", metadata=None)
        record(name)
    # Predictors.
    tifffile.imwrite(OUT / "pred_horizontal_u16.tif", data(shape, "uint16"), compression="lzw",
                     predictor=True, photometric="minisblack", metadata=None)
    record("pred_horizontal_u16")
    tifffile.imwrite(OUT / "pred_horizontal_i16.tif", data(shape, "int16"), compression="deflate",
                     predictor=True, photometric="minisblack", metadata=None)
    record("pred_horizontal_i16")
    tifffile.imwrite(OUT / "pred_float_f32.tif", data(shape, "float32"), compression="deflate",
                     predictor=3, photometric="minisblack", metadata=None)
    record("pred_float_f32")
    # Tiles (with partial edge tiles), BigTIFF, big-endian.
    tifffile.imwrite(OUT / "tiles_u16_lzw.tif", data((2, 40, 35), "uint16"), tile=(16, 16),
                     compression="lzw", photometric="minisblack", metadata=None)
    record("tiles_u16_lzw")
    tifffile.imwrite(OUT / "tiles_f32.tif", data((2, 40, 35), "float32"), tile=(16, 16),
                     photometric="minisblack", metadata=None)
    record("tiles_f32")
    tifffile.imwrite(OUT / "bigtiff_u16.tif", data(shape, "uint16"), bigtiff=True, photometric="minisblack",
                     metadata=None)
    record("bigtiff_u16")
    tifffile.imwrite(OUT / "bigtiff_tiles_deflate_u8.tif", data((2, 40, 35), "uint8"), bigtiff=True, tile=(16, 16),
                     compression="deflate", photometric="minisblack", metadata=None)
    record("bigtiff_tiles_deflate_u8")
    tifffile.imwrite(OUT / "bigendian_u16.tif", data(shape, "uint16"), byteorder=">", photometric="minisblack",
                     metadata=None)
    record("bigendian_u16")
    tifffile.imwrite(OUT / "bigendian_f32_lzw.tif", data(shape, "float32"), byteorder=">", compression="lzw",
                     photometric="minisblack", metadata=None)
    record("bigendian_f32_lzw")
    # Samples per pixel: chunky RGB, planar configuration 2 (separate), tiled planar.
    tifffile.imwrite(OUT / "rgb_chunky_u8.tif", data((20, 17, 3), "uint8"), photometric="rgb", metadata=None)
    record("rgb_chunky_u8")
    tifffile.imwrite(OUT / "planar2_u16.tif", data((3, 20, 17), "uint16"), photometric="minisblack",
                     planarconfig="separate", metadata=None, compression="lzw")
    record("planar2_u16", present="CYX")
    tifffile.imwrite(OUT / "planar2_tiles_u8.tif", data((3, 40, 35), "uint8"), photometric="rgb",
                     planarconfig="separate", tile=(16, 16), metadata=None)
    record("planar2_tiles_u8")
    # MinIsWhite (Petri inverts).
    tifffile.imwrite(OUT / "miniswhite_u8.tif", data(shape, "uint8"), photometric="miniswhite", metadata=None)
    record("miniswhite_u8", invert=True)
    # JPEG (lossy: our decoder may differ from libjpeg-turbo by rounding).
    grad = (np.add.outer(np.arange(32), np.arange(40)) * 3).astype("uint8")
    tifffile.imwrite(OUT / "jpeg_u8.tif", grad, compression="jpeg", photometric="minisblack", metadata=None)
    record("jpeg_u8", tol=3.0)
    # ImageJ hyperstack TZCYX with calibration.
    hs = data((2, 3, 2, 10, 12), "uint16")
    tifffile.imwrite(OUT / "imagej_tzcyx_u16.tif", hs, imagej=True, resolution=(1 / 0.26, 1 / 0.26),
                     metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "um", "finterval": 2.0})
    record("imagej_tzcyx_u16", present="TCZYX", voxel=(0.5, 0.26, 0.26), unit="micron")
    tifffile.imwrite(OUT / "imagej_zyx_f32_lzw.tif", data((4, 10, 12), "float32"), imagej=True,
                     resolution=(1 / 0.1, 1 / 0.2), compression="lzw",
                     metadata={"axes": "ZYX", "spacing": 1.5, "unit": "micron"})
    record("imagej_zyx_f32_lzw", present="ZYX", voxel=(1.5, 0.2, 0.1), unit="micron")
    # OME-TIFF with physical sizes and channel names.
    om = data((2, 2, 3, 10, 12), "uint16")
    tifffile.imwrite(OUT / "ome_tczyx_u16.ome.tif", om, ome=True, compression="zlib", metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0,
        "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm",
        "TimeIncrement": 30.0, "TimeIncrementUnit": "s", "Channel": {"Name": ["DAPI", "GFP"]}})
    (OUT / "ome_tczyx_u16.ome.tif").rename(OUT / "ome_tczyx_u16.tif")
    record("ome_tczyx_u16", present="TCZYX", voxel=(2.0, 0.5, 0.25), unit="micron", channels=["DAPI", "GFP"])
    om2 = data((3, 10, 12), "uint8")
    tifffile.imwrite(OUT / "ome_nm_u8.tif", om2, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 100.0, "PhysicalSizeY": 100.0, "PhysicalSizeZ": 250.0,
        "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm", "PhysicalSizeZUnit": "nm"})
    record("ome_nm_u8", present="ZYX", voxel=(0.25, 0.1, 0.1), unit="micron")
    # Multi-series OME-TIFF: two images of different shapes.
    a, b = data((2, 10, 12), "uint16"), data((3, 8, 9), "uint16")
    with tifffile.TiffWriter(OUT / "ome_multiseries.tif", ome=True) as tw:
        tw.write(a, metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.0})
        tw.write(b, metadata={"axes": "TYX", "PhysicalSizeX": 0.6, "PhysicalSizeY": 0.6})
    record("ome_multiseries", series=0, present="ZYX", voxel=(1.0, 0.3, 0.3), unit="micron")
    manifest[-1]["bin"] = "ome_multiseries_s0.bin"
    (OUT / "ome_multiseries.bin").rename(OUT / "ome_multiseries_s0.bin")
    record("ome_multiseries", series=1, present="TYX", voxel=(1.0, 0.6, 0.6), unit="micron")
    manifest[-1]["bin"] = "ome_multiseries_s1.bin"
    (OUT / "ome_multiseries.bin").rename(OUT / "ome_multiseries_s1.bin")
    # Plain multi-series: pages of two sizes.
    with tifffile.TiffWriter(OUT / "plain_two_sizes.tif") as tw:
        tw.write(data((2, 10, 12), "uint8"), photometric="minisblack", metadata=None)
        tw.write(data((6, 7), "uint8"), photometric="minisblack", metadata=None)
    record("plain_two_sizes", series=0)
    manifest[-1]["bin"] = "plain_two_sizes_s0.bin"
    (OUT / "plain_two_sizes.bin").rename(OUT / "plain_two_sizes_s0.bin")
    record("plain_two_sizes", series=1)
    manifest[-1]["bin"] = "plain_two_sizes_s1.bin"
    (OUT / "plain_two_sizes.bin").rename(OUT / "plain_two_sizes_s1.bin")

    (OUT / "manifest.json").write_text(json.dumps(
        {"tifffile": tifffile.__version__, "files": manifest}, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(manifest)} fixtures, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
