#!/usr/bin/env python3
"""Speed of the Python package: anisoap_candle vs the original AniSOAP on the same ASE frames
(side by side, one run), and the Python call vs the CLI's compute time for the same work.

    python scripts/python_bench.py --ellipsoids ellipsoids.xyz --cli target/release/anisoap-candle \
        [--benzene results/data/benzene_n2048_s1_f1.xyz] [--repeats 5] \
        [--original-frames N] --output results/python/speed.json

Run it with an interpreter that has ase, numpy and anisoap_candle (and the original `anisoap`
for the side-by-side column; scripts/python_compare.sh sets this up).

Workloads:
* `ellipsoids`: upstream's notebooks/ellipsoids.xyz (6826 frames of 1-2 coarse-grained
  benzenes) with the hypers of upstream's example 2 (lmax 9, max_radial 6, GTO, cutoff 7.0,
  width 1.5, subtract_center_contribution, basis_rcond 1e-8, basis_tol 1e-3, rotation_key c_q)
  and c_diameter[1..3] = 4, 4, 0.5 set in Python, as the notebook does.
* `benzene`: the benzene-like disc system of `anisoap-candle bench` (lmax 6, cutoff 7, width
  1.5; results/data/cpu_l6.hypers.json).

Times: wall time of `power_spectrum(frames)` (ours: the whole call, reading the ASE arrays
included; best and median of --repeats after a warm-up); the CLI: its own "compute" time
(`Calculator::compute`, after reading the file), best of --repeats runs interleaved with ours.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

EXAMPLE2 = {
    "max_angular": 9,
    "max_radial": 6,
    "radial_basis_name": "gto",
    "subtract_center_contribution": True,
    "rotation_type": "quaternion",
    "rotation_key": "c_q",
    "cutoff_radius": 7.0,
    "radial_gaussian_width": 1.5,
    "basis_rcond": 1e-8,
    "basis_tol": 1e-3,
}


def read(path, diameters=None):
    import ase.io

    frames = ase.io.read(path, index=":")
    for frame in frames:
        for k in (1, 2, 3):
            if f"c_diameter{k}" in frame.arrays:
                frame.arrays[f"c_diameter[{k}]"] = frame.arrays.pop(f"c_diameter{k}")
            if diameters is not None:
                frame.arrays[f"c_diameter[{k}]"] = diameters[k - 1] * np.ones(len(frame))
    return frames


def write_for_cli(frames, path):
    """The frames as our XYZ input (positions, c_q, c_diameter[1..3], cell, pbc)."""
    import ase.io

    out = []
    for f in frames:
        g = f.copy()
        for key in list(g.arrays):
            if key not in ("numbers", "positions", "c_q") and not key.startswith("c_diameter["):
                del g.arrays[key]
        g.info = {}
        out.append(g)
    ase.io.write(path, out, format="extxyz")


def cli_compute_time(cli, xyz, hypers_path):
    out = subprocess.run(
        [cli, "compute", "--config", hypers_path, xyz, "-o",
         os.path.join(os.path.dirname(xyz), "cli.npy")],
        capture_output=True, text=True, check=True)
    match = re.search(r"(\d+) pairs, .* in ([0-9.]+) s", out.stderr)
    if not match:
        raise SystemExit(f"unexpected CLI output: {out.stderr}")
    return float(match.group(2)), int(match.group(1))


def column_error(a, b):
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    scale = np.abs(b).max(axis=0)
    scale[scale == 0] = 1.0
    return float((np.abs(a - b) / scale).max())


def bench(name, frames, hypers, args, tmp):
    import anisoap_candle
    from anisoap_candle import Systems

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = anisoap_candle.EllipsoidalDensityProjection(**hypers)
    xyz = os.path.join(tmp, f"{name}.xyz")
    hypers_path = os.path.join(tmp, f"{name}.json")
    write_for_cli(frames, xyz)
    with open(hypers_path, "w") as f:
        json.dump(hypers, f)
    result = {"workload": name, "n_frames": len(frames),
              "n_particles": int(sum(len(f) for f in frames)), "hypers": hypers}
    # Warm-up of both, then interleaved timed runs.
    x = ours.power_spectrum(frames)
    cli_compute_time(args.cli, xyz, hypers_path)
    py_times, cli_times, read_times, inner = [], [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours.power_spectrum(frames)
        py_times.append(time.perf_counter() - start)
        inner.append(ours._last_compute_s)
        t, n_pairs = cli_compute_time(args.cli, xyz, hypers_path)
        cli_times.append(t)
        start = time.perf_counter()
        Systems.from_ase(frames, hypers["rotation_key"], hypers["rotation_type"])
        read_times.append(time.perf_counter() - start)
    cli_values = np.load(os.path.join(tmp, "cli.npy"))
    result.update(
        n_pairs=n_pairs,
        features=list(np.shape(x)),
        anisoap_candle_s={"best": min(py_times), "median": statistics.median(py_times),
                          "all": py_times},
        cli_compute_s={"best": min(cli_times), "median": statistics.median(cli_times),
                       "all": cli_times},
        python_array_reading_s={"best": min(read_times), "median": statistics.median(read_times)},
        python_overhead_vs_cli={
            "best": min(py_times) / min(cli_times) - 1,
            "median": statistics.median(py_times) / statistics.median(cli_times) - 1,
        },
        # Same call, same moment: the whole power_spectrum() against the time spent inside
        # the library's Calculator::compute (the CLI's "compute" time), immune to the load
        # of a shared machine.
        python_call_overhead_same_call={
            "per_call": [t / c - 1 for t, c in zip(py_times, inner)],
            "max": max(t / c - 1 for t, c in zip(py_times, inner)),
            "seconds_max": max(t - c for t, c in zip(py_times, inner)),
        },
        cli_vs_python_max_column_error=column_error(np.atleast_2d(x), cli_values),
    )
    if args.no_original:
        result["original"] = "not run (--no-original)"
        return result
    try:
        from anisoap.representations import EllipsoidalDensityProjection as Original
    except ImportError as e:
        result["original"] = f"not importable: {e}"
        return result
    subset = frames if args.original_frames is None else frames[: args.original_frames]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = Original(**hypers)
        if args.original_warmup:
            original.power_spectrum(subset[: max(1, len(subset) // 20)])
        start = time.perf_counter()
        y = original.power_spectrum(subset)
        t_original = time.perf_counter() - start
    start = time.perf_counter()
    x_subset = ours.power_spectrum(subset)
    t_ours_subset = time.perf_counter() - start
    result["original"] = {
        "frames": len(subset),
        "time_s": t_original,
        "anisoap_candle_same_frames_s": t_ours_subset,
        "speedup": t_original / t_ours_subset,
        "max_error_over_column_scale": column_error(x_subset, y),
        "shape_equal": list(np.shape(x_subset)) == list(np.shape(y)),
    }
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ellipsoids", required=True)
    parser.add_argument("--benzene")
    parser.add_argument("--benzene-hypers", default="results/data/cpu_l6.hypers.json")
    parser.add_argument("--cli", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--original-frames", type=int)
    parser.add_argument("--original-warmup", action="store_true")
    parser.add_argument("--no-original", action="store_true",
                        help="time anisoap_candle and the CLI only")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    import anisoap_candle

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(bench("ellipsoids", read(args.ellipsoids, (4.0, 4.0, 0.5)), EXAMPLE2,
                          args, tmp))
        print(json.dumps(runs[-1], indent=1), flush=True)
        if args.benzene:
            with open(args.benzene_hypers) as f:
                hypers = json.load(f)
            runs.append(bench("benzene", read(args.benzene), hypers, args, tmp))
            print(json.dumps(runs[-1], indent=1), flush=True)
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    versions = {"anisoap_candle": anisoap_candle.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    for pkg in ("ase", "metatensor", "featomic", "anisoap"):
        try:
            from importlib import metadata
            versions[pkg] = metadata.version(pkg if pkg != "metatensor" else "metatensor-core")
        except Exception:
            versions[pkg] = None
    report = {"machine": {"cpu": cpu, "cores": os.cpu_count()}, "versions": versions,
              "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip(),
              "runs": runs}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
