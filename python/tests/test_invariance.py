"""Invariances of the power spectrum (seeded random systems)."""

import numpy as np
import pytest

from conftest import GTO, assert_columns_close, calculator, random_frames


def quaternion_product(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b.T
    return np.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], axis=1)


def rotation_matrix(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [w*w + x*x - y*y - z*z, 2*(x*y - z*w), 2*(x*z + y*w)],
        [2*(x*y + z*w), w*w - x*x + y*y - z*z, 2*(y*z - x*w)],
        [2*(x*z - y*w), 2*(y*z + x*w), w*w - x*x - y*y + z*z],
    ])


@pytest.mark.parametrize("basis", ["gto", "monomial"])
def test_rotation_translation_permutation(basis):
    hypers = dict(GTO)
    if basis == "monomial":
        hypers.pop("radial_gaussian_width")
        hypers["radial_basis_name"] = "monomial"
    frames = random_frames(21, n_frames=2, n_particles=9, periodic=False)
    calc = calculator(hypers)
    expected = calc.power_spectrum(frames)
    rng = np.random.default_rng(5)
    q = rng.normal(size=4)
    rot = rotation_matrix(q)
    moved = []
    for f in frames:
        g = f.copy()
        g.positions = f.positions @ rot.T + np.array([3.0, -1.0, 2.0])
        g.arrays["c_q"] = quaternion_product(q / np.linalg.norm(q), f.arrays["c_q"])
        order = rng.permutation(len(g))
        moved.append(g[order])
    got = calc.power_spectrum(moved)
    assert_columns_close(got, expected, 1e-10, "rotated, translated, permuted")


def test_quaternion_sign_and_scale_do_not_matter():
    frames = random_frames(8)
    calc = calculator(GTO)
    expected = calc.power_spectrum(frames)
    for f in frames:
        f.arrays["c_q"] *= -2.5
    assert_columns_close(calc.power_spectrum(frames), expected, 1e-12)


def test_periodic_images_equal_wrapped_positions():
    frames = random_frames(12, periodic=True)
    calc = calculator(GTO)
    expected = calc.power_spectrum(frames)
    for f in frames:
        f.positions += np.array([8.0, -16.0, 24.0])  # whole cell vectors (box 8)
    assert_columns_close(calc.power_spectrum(frames), expected, 1e-10)
