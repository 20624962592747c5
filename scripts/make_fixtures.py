#!/usr/bin/env python3
"""Compute reference fixtures with the original AniSOAP for anisoap-candle's tests.

Usage (inside a virtual environment holding the original AniSOAP, see make_fixtures.sh):

    python scripts/make_fixtures.py tests/fixtures/<case> [tests/fixtures/<case> ...]

Each case directory must hold:

* ``input.xyz``: extended XYZ with ``species``, ``pos``, ``c_q`` (w, x, y, z) and
  ``c_diameter[1..3]`` (full axis lengths), as written by ``anisoap-candle generate``;
* ``hypers.json``: keyword arguments of ``anisoap.representations.EllipsoidalDensityProjection``
  (``rotation_key`` must be ``"c_q"``, which ``power_spectrum()`` requires). With
  ``rotation_type = "matrix"``, ``c_q`` holds 9 columns: the rotation matrix row-major.

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
* ``rotation_type = "matrix"``: the original passes ``frame.arrays[rotation_key][j]`` to
  ``scipy.spatial.transform.Rotation.from_matrix``, which needs a (3, 3) array, while ASE reads
  a 9-column property as (n, 9). Such a ``c_q`` is reshaped to (n, 3, 3) row-major (C order)
  before the call, exactly what anisoap-candle reads from the 9 columns.
* A frame without any centre of some type: ``power_spectrum(mean_over_samples=True)`` raises
  (``np.hstack`` over blocks whose sample counts differ). The mean vector is then the
  original's own ``metatensor.mean_over_samples`` of each block, placed at the frames that have
  that type, with zeros where a frame lacks it (what anisoap-candle outputs);
  ``meta.json`` records the error (``mean_method``) and the missing types
  (``missing_center_types``). The per-centre and density outputs need no change.
* Mixed periodicity (e.g. ``pbc = T T F``): featomic 0.6.1 refuses it ("different periodic
  boundary conditions on different axis are not supported"). The original is then run on the
  same frame with every non-periodic cell vector stretched (doubling a factor) until its height
  over the plane of the other two exceeds the particles' extent along that normal plus the
  cutoff plus 1: no periodic image along it is within the cutoff, so the pairs are exactly
  those of the mixed-periodic frame. ``meta.json`` records the refusal and the stretch
  (``mixed_pbc``).
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


def matrix_orientations(frames, key):
    """(n, 9) row-major rotation matrices → (n, 3, 3), as Rotation.from_matrix needs."""
    for index, frame in enumerate(frames):
        values = np.asarray(frame.arrays[key])
        if values.ndim != 2 or values.shape[1] != 9:
            raise SystemExit(f"frame {index}: rotation_type 'matrix' needs 9 columns in {key}, "
                             f"got shape {values.shape}")
        frame.arrays[key] = values.reshape(len(frame), 3, 3)


def stretch_mixed_pbc(calc, frames, cutoff):
    """Replaces mixed-periodic frames by fully periodic ones with their non-periodic cell
    vectors stretched beyond the cutoff (see the module doc). Returns the record for meta.json,
    or None when no frame has mixed periodicity."""
    records = []
    for index, frame in enumerate(frames):
        pbc = np.array(frame.pbc, dtype=bool)  # a copy: set_pbc below changes frame.pbc
        if pbc.all() or not pbc.any():
            continue
        if not records:
            # The original's own behaviour on the unmodified frame.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    calc.transform([frame])
                refusal = None
            except Exception as err:  # noqa: BLE001 - recorded, then worked around
                refusal = f"{type(err).__name__}: {err}"
            if refusal is None:
                raise RuntimeError("the original accepted mixed pbc; drop the workaround")
        cell = np.array(frame.cell)
        positions = frame.get_positions()
        factors = []
        for k in np.flatnonzero(~pbc):
            others = [cell[m] for m in range(3) if m != k]
            factor = 1.0
            while True:
                vector = cell[k] * factor
                normal = np.cross(others[0], others[1])
                normal /= np.linalg.norm(normal)
                height = abs(vector @ normal)
                extent = np.ptp(positions @ normal)
                if height > extent + cutoff + 1.0:
                    break
                factor *= 2.0
            cell[k] = cell[k] * factor
            factors.append([int(k), factor])
        frame.set_cell(cell, scale_atoms=False)
        frame.set_pbc(True)
        records.append({"frame": index, "pbc": [bool(p) for p in pbc],
                        "stretched_axes_and_factors": factors})
    if not records:
        return None
    return {"direct_call": refusal, "frames": records,
            "method": "non-periodic cell vectors stretched until no image along them is "
                      "within the cutoff; pbc set to True"}


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
    missing_types = {}
    for index, fr in enumerate(frames):
        present = {int(t) for t in fr.numbers}
        if present != set(all_types):
            missing_types[str(index)] = sorted(set(all_types) - present)

    calc = EllipsoidalDensityProjection(**hypers)
    lmax = int(hypers["max_angular"])
    if hypers.get("rotation_type") == "matrix":
        matrix_orientations(frames, hypers["rotation_key"])
    mixed_pbc = stretch_mixed_pbc(calc, frames, float(hypers["cutoff_radius"]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_center_map = calc.power_spectrum(frames, mean_over_samples=False)
        try:
            mean = np.asarray(calc.power_spectrum(frames, mean_over_samples=True))
            mean_method = "power_spectrum(mean_over_samples=True)"
        except Exception as err:
            averaged = metatensor.mean_over_samples(per_center_map, sample_names="center")
            if missing_types:
                # Some frame lacks a centre type: each block's means at its own frames, zeros
                # elsewhere (the original's hstack cannot join blocks of different lengths).
                blocks = []
                for t in key_values(averaged, "types_center"):
                    block = block_by_key(averaged, types_center=t)
                    values = block.values.reshape(len(block.samples), -1)
                    full = np.zeros((n_frames, values.shape[1]))
                    frame_col = block.samples.names.index("type")
                    for s in range(len(block.samples)):
                        full[int(block.samples.values[s, frame_col])] = values[s]
                    blocks.append(full)
                mean = np.hstack(blocks)
                mean_method = ("per-block metatensor.mean_over_samples, zero rows for frames "
                               "without that centre type (direct call raised "
                               f"{type(err).__name__}: {err})")
            else:  # AniSOAP 0.1.1 with several centre types
                mean = np.hstack([block.values.squeeze() for block in averaged.blocks()])
                mean_method = ("upstream hstack over mean_over_samples blocks (direct call "
                               f"raised {type(err).__name__})")
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
            if len(sel):
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
        **({"missing_center_types": missing_types} if missing_types else {}),
        **({"mixed_pbc": mixed_pbc} if mixed_pbc else {}),
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
