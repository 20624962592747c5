#!/usr/bin/env python3
"""Compute reference fixtures with the original AniSOAP for anisoap-candle's tests.

Usage (inside a virtual environment holding the original AniSOAP, see make_fixtures.sh):

    python scripts/make_fixtures.py tests/fixtures/<case> [tests/fixtures/<case> ...]

Each case directory must hold:

* ``input.xyz``: extended XYZ with ``species``, ``pos``, ``c_q`` (w, x, y, z) and
  ``c_diameter[1..3]`` (full axis lengths), as written by ``anisoap-candle generate``;
* ``hypers.json``: keyword arguments of ``anisoap.representations.EllipsoidalDensityProjection``
  (``rotation_key`` must be ``"c_q"``, which ``power_spectrum()`` requires).

It writes into the case directory (all float64 unless stated):

* ``power_spectrum.npy`` (n_frames, n_features): ``power_spectrum(frames,
  mean_over_samples=True)``, reshaped to 2-D (the original returns 1-D for one frame).
* ``per_center.npy`` (n_centres, n_features): the per-centre power spectrum
  (``mean_over_samples=False``) in anisoap-candle's layout: one row per particle, frame-major
  then particle index; columns are the blocks' feature vectors concatenated over centre types
  ascending (the same columns as the mean vector); the columns of the other centre types are 0.
* ``per_center_index.npy`` int64 (n_centres, 2): (frame, particle index) of each row.
* ``density.npy`` (n_centres, n_density): the nu=1 ``transform(frames)`` coefficients: one row per
  particle; for each centre type t ascending, for l = 0..max_angular, the block values
  (2l+1, N_l*E_t) flattened row-major (m outer, then p = n*E_t + e inner); the columns of the
  other centre types are 0.
* ``meta.json``: types, per-type neighbour types, radial counts, column offsets, shapes and the
  versions of the Python packages used.

Quirks handled here (see docs/ANISOAP_MATH.md):

* ASE reads an unescaped ``c_diameter[1]:R:1`` column back as ``c_diameter1``; such arrays are
  renamed to ``c_diameter[1]`` (and 2, 3), which ``power_spectrum()`` requires.
* AniSOAP 0.1.1 (PyPI) orthonormalises the neighbour-summed density using its property labels,
  which are listed type-major while the values are n-major, so it is wrong whenever a block has
  several neighbour types and N_l > 1. The script refuses it (checked through the ``return_pef``
  argument that later versions have) unless ``ALLOW_ANISOAP_0_1_1=1``; use upstream commit
  6b288697, which orthonormalises per pair.
* AniSOAP 0.1.1 (PyPI) also ends ``power_spectrum(mean_over_samples=True)`` with
  ``TensorMap.block()``, which fails when there is more than one centre type. The later upstream
  code (commit 6b288697) uses ``np.hstack`` over the blocks instead. When the direct call fails,
  this script applies exactly that upstream code to the ``mean_over_samples=False`` map, and
  records it in ``meta.json`` (``mean_method``).
"""

import argparse
import inspect
import json
import os
import sys
import warnings

import metatensor
import numpy as np
from anisoap.representations import EllipsoidalDensityProjection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anisoap_io import package_versions, read_frames  # noqa: E402


def save(path, array):
    """Writes an .npy atomically (temporary file in the same directory, then rename)."""
    tmp = path + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def block_by_key(tensor, **selection):
    keys = tensor.keys
    matches = [
        i for i in range(len(keys))
        if all(int(keys[i][name]) == value for name, value in selection.items())
    ]
    if len(matches) != 1:
        raise RuntimeError(f"expected exactly one block for {selection}, found {len(matches)}")
    return tensor.block(matches[0])


def key_values(tensor, name):
    return sorted({int(v) for v in tensor.keys.column(name)})


def process(case_dir):
    with open(os.path.join(case_dir, "hypers.json")) as f:
        hypers = json.load(f)
    if hypers.get("rotation_key") != "c_q":
        raise SystemExit(f"{case_dir}/hypers.json: rotation_key must be \"c_q\" "
                         "(power_spectrum() reads orientations from c_q only)")
    frames = read_frames(os.path.join(case_dir, "input.xyz"))
    n_frames = len(frames)
    sizes = [len(fr) for fr in frames]
    row_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_rows = int(row_offset[-1])
    all_types = sorted({int(t) for fr in frames for t in fr.numbers})
    for index, fr in enumerate(frames):
        present = {int(t) for t in fr.numbers}
        if present != set(all_types):
            raise SystemExit(f"{case_dir}: frame {index} lacks centre types "
                             f"{sorted(set(all_types) - present)}; the original's hstack "
                             "needs every type in every frame")

    calc = EllipsoidalDensityProjection(**hypers)
    lmax = int(hypers["max_angular"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_center_map = calc.power_spectrum(frames, mean_over_samples=False)
        try:
            mean = np.asarray(calc.power_spectrum(frames, mean_over_samples=True))
            mean_method = "power_spectrum(mean_over_samples=True)"
        except Exception as err:  # AniSOAP 0.1.1 with several centre types
            averaged = metatensor.mean_over_samples(per_center_map, sample_names="center")
            mean = np.hstack([block.values.squeeze() for block in averaged.blocks()])
            mean_method = ("upstream hstack over mean_over_samples blocks (direct call raised "
                           f"{type(err).__name__})")
        density_map = calc.transform(frames)

    mean = mean.reshape(n_frames, -1)

    index = np.zeros((n_rows, 2), dtype=np.int64)
    for f, n in enumerate(sizes):
        index[row_offset[f]:row_offset[f + 1], 0] = f
        index[row_offset[f]:row_offset[f + 1], 1] = np.arange(n)

    # Per-centre power spectrum.
    ps_types = key_values(per_center_map, "types_center")
    ps_offsets, widths = {}, {}
    col = 0
    for t in ps_types:
        block = block_by_key(per_center_map, types_center=t)
        ps_offsets[t] = col
        widths[t] = block.values.shape[-1]
        col += widths[t]
    if col != mean.shape[1]:
        raise RuntimeError(f"per-centre width {col} != mean width {mean.shape[1]}")
    per_center = np.zeros((n_rows, col))
    filled = np.zeros(n_rows, dtype=bool)
    for t in ps_types:
        block = block_by_key(per_center_map, types_center=t)
        samples = block.samples
        frame_col = samples.names.index("type")
        center_col = samples.names.index("center")
        values = block.values.reshape(len(samples), -1)
        for s in range(len(samples)):
            f = int(samples.values[s, frame_col])
            i = int(samples.values[s, center_col])
            row = row_offset[f] + i
            if int(frames[f].numbers[i]) != t:
                raise RuntimeError("sample type mismatch")
            per_center[row, ps_offsets[t]:ps_offsets[t] + widths[t]] = values[s]
            filled[row] = True
    if not filled.all():
        missing = [tuple(index[r]) for r in np.flatnonzero(~filled)]
        raise SystemExit(f"{case_dir}: centres without any pair are absent from the original's "
                         f"output (subtract_center_contribution=True): {missing}; "
                         "choose a denser system")

    # The per-frame mean of the per-centre rows must give the mean vector.
    check = np.zeros_like(mean)
    for f in range(n_frames):
        rows = slice(row_offset[f], row_offset[f + 1])
        numbers = np.asarray(frames[f].numbers)
        for t in ps_types:
            sel = per_center[rows][numbers == t]
            cols = slice(ps_offsets[t], ps_offsets[t] + widths[t])
            check[f, cols] = sel[:, cols].mean(axis=0)
    scale = max(np.abs(mean).max(), 1e-300)
    if np.abs(check - mean).max() > 1e-12 * scale:
        raise RuntimeError(f"{case_dir}: per-centre rows do not average to the mean vector")

    # Density coefficients.
    d_types = key_values(density_map, "types_center")
    d_offsets, d_widths, radial_counts, neighbor_types = {}, {}, {}, {}
    col = 0
    for t in d_types:
        d_offsets[t] = col
        width = 0
        for l in range(lmax + 1):
            block = block_by_key(density_map, types_center=t, angular_channel=l)
            _, n_m, n_p = block.values.shape
            assert n_m == 2 * l + 1
            width += n_m * n_p
            # Labels are listed type-major (see docs §10.2); the set of types is still right.
            props = block.properties
            e_types = sorted({int(v) for v in props.column("neighbor_types")})
            neighbor_types[t] = e_types
            radial_counts.setdefault(t, []).append(n_p // len(e_types))
        d_widths[t] = width
        col += width
    density = np.zeros((n_rows, col))
    for t in d_types:
        c = d_offsets[t]
        for l in range(lmax + 1):
            block = block_by_key(density_map, types_center=t, angular_channel=l)
            samples = block.samples
            frame_col = samples.names.index("type")
            center_col = samples.names.index("center")
            flat = block.values.reshape(len(samples), -1)
            for s in range(len(samples)):
                f = int(samples.values[s, frame_col])
                i = int(samples.values[s, center_col])
                density[row_offset[f] + i, c:c + flat.shape[1]] = flat[s]
            c += flat.shape[1]

    save(os.path.join(case_dir, "power_spectrum.npy"), mean)
    save(os.path.join(case_dir, "per_center.npy"), per_center)
    save(os.path.join(case_dir, "per_center_index.npy"), index)
    save(os.path.join(case_dir, "density.npy"), density)

    meta = {
        "hypers": hypers,
        "n_frames": n_frames,
        "particles_per_frame": sizes,
        "types": all_types,
        "neighbor_types": {str(t): v for t, v in neighbor_types.items()},
        "radial_counts": radial_counts[d_types[0]],
        "power_spectrum_shape": list(mean.shape),
        "per_center_shape": list(per_center.shape),
        "density_shape": list(density.shape),
        "power_spectrum_type_offsets": {str(t): [ps_offsets[t], widths[t]] for t in ps_types},
        "density_type_offsets": {str(t): [d_offsets[t], d_widths[t]] for t in d_types},
        "mean_method": mean_method,
        "versions": package_versions(),
        "python": sys.version.split()[0],
    }
    tmp = os.path.join(case_dir, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(case_dir, "meta.json"))
    print(f"{case_dir}: power_spectrum {mean.shape}, per_center {per_center.shape}, "
          f"density {density.shape}, types {all_types}, E_t "
          f"{ {t: len(v) for t, v in neighbor_types.items()} }, N_l {meta['radial_counts']}")


def check_anisoap_version():
    """Refuses PyPI's anisoap 0.1.1, whose multi-species results are wrong (see module doc)."""
    params = inspect.signature(EllipsoidalDensityProjection.transform).parameters
    if "return_pef" not in params and os.environ.get("ALLOW_ANISOAP_0_1_1") != "1":
        raise SystemExit(
            "this AniSOAP orthonormalises the summed density by its (type-major) property "
            "labels, which gives wrong values with several neighbour types and N_l > 1; "
            "install upstream commit 6b288697 (see scripts/make_fixtures.sh) or set "
            "ALLOW_ANISOAP_0_1_1=1 to proceed anyway")


def main():
    check_anisoap_version()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", help="case directories (input.xyz + hypers.json)")
    args = parser.parse_args()
    for case in args.cases:
        process(case)


if __name__ == "__main__":
    main()
