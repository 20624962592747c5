#!/usr/bin/env python3
"""Time the original Python AniSOAP on one extended XYZ file, for `anisoap-candle bench`.

Usage (with the Python of a virtual environment that holds anisoap and ase):

    python scripts/bench_upstream.py --xyz system.xyz --hypers hypers.json \
        [--warmup 1] [--repeats 3] [--output timings.json]

``hypers.json`` holds the keyword arguments of
``anisoap.representations.EllipsoidalDensityProjection`` (``rotation_key`` must be ``"c_q"``,
which ``power_spectrum()`` requires). Every timed call is the whole
``power_spectrum(frames)`` (neighbour list included), like ``anisoap-candle compute``.

The JSON written to ``--output`` (or printed on the last line of stdout) holds:

* ``times_s``: wall time of each timed repeat (warm-up calls excluded);
* ``stages_s``: per stage, the time of each timed repeat, measured by wrapping the
  module-level functions ``power_spectrum()`` calls: ``neighbor_list`` (featomic
  NeighborList.compute), ``pair_expansion`` (pairwise_ellip_expansion: Gaussian parameters,
  moments and contraction together), ``neighbor_sum`` (contract_pairwise_feat),
  ``lowdin`` (orthonormalize_basis), ``power_spectrum`` (standardize_keys, cg_combine and the
  mean over samples) and ``other`` (the rest: rotation matrices, checks);
* ``n_frames``, ``n_atoms``, ``n_pairs`` (from the neighbour list), ``features_shape``;
* ``mean_method``: AniSOAP 0.1.1 fails in ``power_spectrum(mean_over_samples=True)`` when there
  is more than one centre type (``TensorMap.block()`` on several blocks); then the timed call
  is ``power_spectrum(mean_over_samples=False)`` followed by the later upstream code (mean
  over samples, then ``np.hstack`` over the blocks), which costs the same;
* ``peak_rss_bytes`` (``ru_maxrss``: includes the imports), ``threads`` (threadpoolctl),
  ``versions`` of the Python packages, ``python``.

Quirk handled: ASE reads an unescaped ``c_diameter[1]:R:1`` column back as ``c_diameter1``;
such arrays are renamed to ``c_diameter[1]`` (and 2, 3), which ``power_spectrum()`` needs.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anisoap_io import package_versions, read_frames  # noqa: E402


class StageClock:
    """Accumulates the wall time spent inside wrapped functions, per stage."""

    def __init__(self):
        self.totals = {}

    def reset(self):
        self.totals = {}

    def wrap(self, stage, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - start

        return timed


def instrument(module, calculator, clock, pair_counter):
    """Wraps the stages of power_spectrum() in `module` (the representation's module)."""
    nl_class = module.NeighborList

    class TimedNeighborList(nl_class):
        def compute(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                result = super().compute(*args, **kwargs)
            finally:
                clock.totals["neighbor_list"] = (
                    clock.totals.get("neighbor_list", 0.0) + time.perf_counter() - start)
            pair_counter[0] = sum(len(block.samples) for block in result.blocks())
            return result

    module.NeighborList = TimedNeighborList
    module.pairwise_ellip_expansion = clock.wrap("pair_expansion",
                                                 module.pairwise_ellip_expansion)
    module.contract_pairwise_feat = clock.wrap("neighbor_sum", module.contract_pairwise_feat)
    module.standardize_keys = clock.wrap("power_spectrum", module.standardize_keys)
    module.cg_combine = clock.wrap("power_spectrum", module.cg_combine)
    basis = calculator.radial_basis
    basis.orthonormalize_basis = clock.wrap("lowdin", basis.orthonormalize_basis)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--xyz", required=True)
    parser.add_argument("--hypers", required=True)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output")
    args = parser.parse_args()

    import metatensor
    import numpy as np
    import anisoap.representations.ellipsoidal_density_projection as edp

    with open(args.hypers) as f:
        hypers = json.load(f)
    if hypers.get("rotation_key") != "c_q":
        raise SystemExit(f"{args.hypers}: rotation_key must be \"c_q\"")
    frames = read_frames(args.xyz)
    warnings.simplefilter("ignore")
    calculator = edp.EllipsoidalDensityProjection(**hypers)
    clock = StageClock()
    pairs = [None]
    instrument(edp, calculator, clock, pairs)
    mean_method = {"value": "power_spectrum(mean_over_samples=True)"}

    def mean_of_blocks(tensor):
        averaged = metatensor.mean_over_samples(tensor, sample_names="center")
        return np.hstack([block.values.squeeze() for block in averaged.blocks()])

    def one_call():
        if mean_method["value"].startswith("power_spectrum("):
            try:
                return calculator.power_spectrum(frames)
            except Exception as error:  # 0.1.1 with several centre types
                mean_method["value"] = (
                    "power_spectrum(mean_over_samples=False) + upstream mean/hstack "
                    f"(direct call raised {type(error).__name__})")
        tensor = calculator.power_spectrum(frames, mean_over_samples=False)
        start = time.perf_counter()
        out = mean_of_blocks(tensor)
        clock.totals["power_spectrum"] = (clock.totals.get("power_spectrum", 0.0)
                                          + time.perf_counter() - start)
        return out

    result = None
    # The fallback decision is taken in the warm-up (at least one call), so timed calls
    # never include a failed attempt.
    for _ in range(max(args.warmup, 1)):
        clock.reset()
        result = one_call()
    times = []
    stages = {}
    for _ in range(args.repeats):
        clock.reset()
        start = time.perf_counter()
        result = one_call()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        known = 0.0
        for stage, value in clock.totals.items():
            stages.setdefault(stage, []).append(value)
            known += value
        stages.setdefault("other", []).append(max(elapsed - known, 0.0))
    try:
        from threadpoolctl import threadpool_info
        threads = {info.get("internal_api", "?"): info.get("num_threads")
                   for info in threadpool_info()}
    except Exception:  # threadpoolctl missing
        threads = None
    report = {
        "times_s": times,
        "warmup": max(args.warmup, 1),
        "repeats": args.repeats,
        "stages_s": stages,
        "n_frames": len(frames),
        "n_atoms": int(sum(len(f) for f in frames)),
        "n_pairs": pairs[0],
        "features_shape": list(np.shape(result)),
        "mean_method": mean_method["value"],
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": threads,
        "versions": package_versions(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                       "OPENBLAS_NUM_THREADS",
                                                       "OMP_NUM_THREADS")},
    }
    text = json.dumps(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
