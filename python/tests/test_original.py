"""The same ASE frames through the original AniSOAP and through anisoap_candle.

Runs only where the original (upstream commit 6b288697, see tests/fixtures/README.md) is
importable; elsewhere every test is skipped with the reason. scripts/python_compare.sh runs
this file in the original's environment."""

import warnings

import numpy as np
import pytest

from conftest import F64_RTOL, assert_columns_close, calculator, fixture_cases, hypers_of
from conftest import original_or_skip, random_frames, read_frames

CASES = fixture_cases()


def both(hypers):
    Original = original_or_skip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = Original(**hypers)
    ours = calculator(hypers, property_labels="original")
    return original, ours


def assert_same_labels(a, b, what):
    assert list(a.names) == list(b.names), f"{what}: names {a.names} vs {b.names}"
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values), err_msg=what)


def assert_same_tensormap(theirs, ours, what):
    assert_same_labels(theirs.keys, ours.keys, f"{what} keys")
    for key, block in theirs.items():
        mine = ours.block(dict(zip(theirs.keys.names, [int(v) for v in key.values])))
        assert_same_labels(block.samples, mine.samples, f"{what} {key.values} samples")
        for c1, c2 in zip(block.components, mine.components):
            assert_same_labels(c1, c2, f"{what} {key.values} components")
        assert_same_labels(block.properties, mine.properties, f"{what} {key.values} properties")
        values = np.asarray(block.values)
        assert values.shape == mine.values.shape, f"{what} {key.values}"
        assert_columns_close(
            mine.values.reshape(-1, values.shape[-1]),
            values.reshape(-1, values.shape[-1]),
            F64_RTOL,
            f"{what} {key.values}",
        )


def inputs():
    cases = [(c.name, c) for c in CASES]
    return cases + [("random_two_species", None), ("random_open_three_species", None)]


def frames_and_hypers(case):
    frames, hypers = read_frames(case / "input.xyz"), hypers_of(case)
    if hypers.get("rotation_type") == "matrix":
        # ASE reads 9 columns as (n, 9); the original's scipy call needs (n, 3, 3). Both
        # codes read the (n, 3, 3) array.
        key = hypers["rotation_key"]
        for frame in frames:
            frame.arrays[key] = frame.arrays[key].reshape(len(frame), 3, 3)
    return frames, hypers


def original_or_refusal(call, *args, **kwargs):
    """The original's result, or a skip naming its refusal (e.g. mixed periodicity, which
    featomic refuses and anisoap_candle computes)."""
    try:
        return call(*args, **kwargs)
    except ValueError as e:
        pytest.skip(f"the original refuses this input: {e}")


def load(name, case):
    if case is not None:
        return frames_and_hypers(case)
    hypers = {"max_angular": 4, "radial_basis_name": "gto", "cutoff_radius": 4.5,
              "radial_gaussian_width": 1.1, "max_radial": 2, "rotation_key": "c_q",
              "subtract_center_contribution": name.endswith("three_species")}
    if name == "random_two_species":
        return random_frames(31, n_frames=3), hypers
    return random_frames(32, n_frames=2, types=(0, 1, 8), periodic=False, box=6.0), hypers


@pytest.mark.parametrize("name,case", inputs(), ids=[n for n, _ in inputs()])
def test_power_spectrum_numpy(name, case):
    frames, hypers = load(name, case)
    original, ours = both(hypers)
    try:
        expected = original.power_spectrum(frames)
    except ValueError as e:
        if "periodic" in str(e):
            pytest.skip(f"the original refuses this input: {e}")
        # A frame without some centre type: the original's np.hstack fails; we zero-fill and
        # warn (README, "Python package").
        with pytest.warns(UserWarning, match="no centre"):
            ours.power_spectrum(frames)
        pytest.skip(f"the original raises here ({e}); ours zero-fills with a warning")
    got = ours.power_spectrum(frames)
    assert got.shape == np.shape(expected)
    assert_columns_close(got, expected, F64_RTOL, name)


@pytest.mark.parametrize("name,case", inputs(), ids=[n for n, _ in inputs()])
def test_power_spectrum_tensormap(name, case):
    frames, hypers = load(name, case)
    original, ours = both(hypers)
    assert_same_tensormap(
        original_or_refusal(original.power_spectrum, frames, mean_over_samples=False),
        ours.power_spectrum(frames, mean_over_samples=False),
        f"{name} power spectrum",
    )


@pytest.mark.parametrize("name,case", inputs(), ids=[n for n, _ in inputs()])
def test_transform(name, case):
    frames, hypers = load(name, case)
    original, ours = both(hypers)
    theirs = original_or_refusal(original.transform, frames)
    assert_same_tensormap(theirs, ours.transform(frames), f"{name} density")


def test_transform_normalize_false():
    frames, hypers = load("random_two_species", None)
    original, ours = both(hypers)
    assert_same_tensormap(
        original.transform(frames, normalize=False),
        ours.transform(frames, normalize=False),
        "raw density",
    )


def test_value_labels_are_a_relabelling_of_the_original():
    """With the default property_labels="values", every column keeps its values; only the
    label rows of multi-type, multi-radial blocks differ (they now describe the values)."""
    frames, hypers = load("random_two_species", None)
    original, _ = both(hypers)
    theirs = original.transform(frames)
    ours = calculator(hypers).transform(frames)
    relabelled = 0
    for key, block in theirs.items():
        mine = ours.block(dict(zip(theirs.keys.names, [int(v) for v in key.values])))
        np.testing.assert_allclose(mine.values, block.values, rtol=0,
                                   atol=1e-10 * np.abs(block.values).max())
        a = sorted(map(tuple, np.asarray(block.properties.values).tolist()))
        b = sorted(map(tuple, mine.properties.values.tolist()))
        assert a == b
        relabelled += not np.array_equal(np.asarray(block.properties.values),
                                         mine.properties.values)
    assert relabelled > 0
