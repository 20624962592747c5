"""Shared helpers of the pytest suite (no test writes into the repository: tmp_path only)."""

import json
import pathlib
import warnings

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

# f64: |Δ| <= 1e-10 of each column's largest magnitude; f32: the documented 1e-4.
F64_RTOL = 1e-10
F32_RTOL = 1e-4


def fixture_cases():
    cases = sorted(p for p in FIXTURES.iterdir() if (p / "hypers.json").exists())
    # The fixtures are part of the repository: their absence is a failure, not a skip.
    assert len(cases) >= 8, f"expected at least 8 fixture cases in {FIXTURES}"
    return cases


def read_frames(path):
    """ASE frames of one of our XYZ files, with `c_diameter[k]` under its real name (ASE renames
    an unescaped `c_diameter[1]` column to `c_diameter1` when reading)."""
    import ase.io

    frames = ase.io.read(str(path), index=":")
    for frame in frames:
        for k in (1, 2, 3):
            if f"c_diameter{k}" in frame.arrays:
                frame.arrays[f"c_diameter[{k}]"] = frame.arrays.pop(f"c_diameter{k}")
    return frames


def hypers_of(case):
    return json.loads((case / "hypers.json").read_text())


def calculator(hypers, **extra):
    from anisoap_candle import EllipsoidalDensityProjection

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EllipsoidalDensityProjection(**hypers, **extra)


def assert_columns_close(got, expected, rtol, label=""):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{label}: shape {got.shape} vs {expected.shape}"
    if expected.ndim == 1:
        expected = expected[None, :]
        got = got[None, :]
    scale = np.abs(expected).max(axis=0)
    error = np.abs(got - expected)
    bad = error > rtol * scale
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise AssertionError(
            f"{label}: row {r} col {c}: {got[r, c]} vs {expected[r, c]} "
            f"(column scale {scale[c]:e}, rtol {rtol})"
        )


def random_frames(seed, n_frames=2, n_particles=10, types=(1, 6), periodic=True, box=8.0):
    """Seeded random ASE frames of prolate ellipsoids."""
    import ase

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        positions = rng.uniform(0, box, size=(n_particles, 3))
        numbers = np.array([types[i % len(types)] for i in range(n_particles)])
        frame = ase.Atoms(
            numbers=numbers,
            positions=positions,
            cell=np.eye(3) * box if periodic else None,
            pbc=periodic,
        )
        q = rng.normal(size=(n_particles, 4))
        frame.arrays["c_q"] = q / np.linalg.norm(q, axis=1, keepdims=True)
        diameters = rng.uniform(0.8, 1.2, size=(n_particles, 3)) * np.array([1.0, 1.0, 3.0])
        for k in range(3):
            frame.arrays[f"c_diameter[{k + 1}]"] = diameters[:, k].copy()
        frames.append(frame)
    return frames


def original_or_skip():
    """The original AniSOAP's calculator class, or a loud skip saying why it is absent."""
    try:
        from anisoap.representations import EllipsoidalDensityProjection
    except Exception as e:  # ImportError, or a broken install
        pytest.skip(
            f"the original AniSOAP is not importable here ({type(e).__name__}: {e}); "
            "scripts/python_compare.sh runs these tests in an environment that has it",
            allow_module_level=False,
        )
    return EllipsoidalDensityProjection


@pytest.fixture
def small_frames():
    return random_frames(7)


GTO = {
    "max_angular": 3,
    "radial_basis_name": "gto",
    "cutoff_radius": 4.0,
    "radial_gaussian_width": 1.2,
    "max_radial": 1,
    "rotation_key": "c_q",
}
