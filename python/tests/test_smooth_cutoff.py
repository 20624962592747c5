"""The opt-in smooth cutoff (``cutoff_function={"shifted_cosine": {"width": w}}``, issue 13)."""

import pickle

import numpy as np
import pytest

from conftest import F32_RTOL, assert_columns_close, calculator, random_frames

RC, WIDTH = 3.0, 1.4
HYPERS = {"max_angular": 3, "radial_basis_name": "gto", "cutoff_radius": RC,
          "radial_gaussian_width": 0.9, "rotation_key": "c_q"}
SMOOTH = {"shifted_cosine": {"width": WIDTH}}


def shifted_cosine(r):
    if r <= RC - WIDTH:
        return 1.0
    if r >= RC:
        return 0.0
    return 0.5 * (1.0 + np.cos(np.pi * (r - RC + WIDTH) / WIDTH))


def cluster():
    """One open frame of 7 particles of one type, many pairs inside the smoothing zone."""
    return random_frames(11, n_frames=1, n_particles=7, types=(1,), periodic=False, box=3.2)[0]


def density_rows(calc, frame):
    """Density of every centre of ``frame`` as rows (blocks l = 0.. side by side)."""
    tensor = calc.transform([frame])
    blocks = sorted(tensor.items(), key=lambda kv: int(kv[0]["angular_channel"]))
    return np.concatenate(
        [block.values.reshape(block.values.shape[0], -1) for _, block in blocks], axis=1
    )


def test_density_is_the_isolated_pairs_weighted_by_the_cutoff_function():
    frame = cluster()
    got = density_rows(calculator(HYPERS, cutoff_function=SMOOTH), frame)
    step = calculator(HYPERS)
    alone = calculator({**HYPERS, "subtract_center_contribution": True})
    n = len(frame)
    expected = np.zeros_like(got)
    partial = 0
    for i in range(n):
        expected[i] = density_rows(step, frame[[i]])[0]
        for j in range(n):
            r = np.linalg.norm(frame.positions[j] - frame.positions[i])
            if j == i or r >= RC:
                continue
            f = shifted_cosine(r)
            partial += 0.0 < f < 1.0
            expected[i] += f * density_rows(alone, frame[[i, j]])[0]
    assert partial >= 8, f"only {partial} pairs inside the smoothing zone"
    assert_columns_close(got, expected, 1e-12, "smooth density vs isolated pairs")
    # The option does something: the step's density differs.
    plain = density_rows(step, frame)
    assert np.abs(plain - got).max() > 1e-3 * np.abs(got).max()


def test_power_spectrum_float32_pickle_and_default():
    frames = random_frames(12, n_frames=2, n_particles=12, box=5.0)
    smooth = calculator(HYPERS, cutoff_function=SMOOTH)
    a = smooth.power_spectrum(frames)
    assert smooth.cutoff_function == SMOOTH
    b = calculator(HYPERS, cutoff_function=SMOOTH, dtype="float32").power_spectrum(frames)
    assert_columns_close(b, a, F32_RTOL, "float32")
    clone = pickle.loads(pickle.dumps(smooth))
    assert "cutoff_function" in repr(clone)
    np.testing.assert_array_equal(clone.power_spectrum(frames), a)
    # "step" is the default, bit for bit; numpy widths are accepted.
    default = calculator(HYPERS).power_spectrum(frames)
    explicit = calculator(HYPERS, cutoff_function="step").power_spectrum(frames)
    np.testing.assert_array_equal(explicit, default)
    narrow = calculator(HYPERS, cutoff_function={"shifted_cosine": {"width": np.float32(WIDTH)}})
    assert_columns_close(narrow.power_spectrum(frames), a, 1e-6, "numpy float32 width")
    assert np.abs(a - default).max() > 1e-3 * np.abs(default).max()


@pytest.mark.parametrize(
    "value,message",
    [
        ({"shifted_cosine": {"width": 5.0}}, "cutoff_function.shifted_cosine.width = 5 exceeds"),
        ({"shifted_cosine": {"width": 0.0}}, "cutoff_function.shifted_cosine.width must be positive"),
        ({"shifted_cosine": {}}, "missing required key 'cutoff_function.shifted_cosine.width'"),
        ({"shifted_cosine": {"width": "wide"}}, "cutoff_function.shifted_cosine.width must be a number"),
        ({"cosine": {"width": 1.0}}, "unknown cutoff function 'cosine'; known cutoff functions: step, shifted_cosine"),
        (0.5, "cutoff_function must be 'step' or a dict"),
    ],
)
def test_bad_cutoff_function_names_the_field(value, message):
    with pytest.raises(ValueError, match=message):
        calculator(HYPERS, cutoff_function=value)
