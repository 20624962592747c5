"""Bad input gives a clear exception naming the frame and the array, never a crash."""

import numpy as np
import pytest

from anisoap_candle import Systems
from conftest import GTO, calculator, random_frames


def frames_with(change, frame=1):
    frames = random_frames(11, n_frames=3)
    change(frames[frame])
    return frames


def drop(name):
    return lambda f: f.arrays.pop(name)


def set_value(name, index, value):
    def change(f):
        f.arrays[name][index] = value
    return change


@pytest.mark.parametrize(
    "change,message",
    [
        (drop("c_q"), r"frame at index 1 is missing a required attribute 'c_q'"),
        (drop("c_diameter[2]"), r"frame at index 1 is missing a required attribute 'c_diameter\[2\]'"),
        (set_value("positions", 3, [np.nan, 0, 0]), r"frame 1: particle 3: non-finite position"),
        (set_value("c_q", 2, [0, 0, 0, 0]), r"frame 1: particle 2: 'c_q' is a zero quaternion"),
        (set_value("c_q", 2, [np.inf, 0, 0, 1]), r"frame 1: particle 2: non-finite orientation in 'c_q'"),
        (set_value("c_diameter[1]", 4, np.nan), r"frame 1: particle 4: c_diameter\[1\.\.3\] must be positive"),
        (set_value("c_diameter[3]", 0, -1.0), r"frame 1: particle 0: c_diameter\[1\.\.3\] must be positive"),
        (set_value("c_diameter[3]", 0, 0.0), r"frame 1: particle 0: c_diameter\[1\.\.3\] must be positive"),
    ],
)
def test_bad_frames(change, message):
    frames = frames_with(change)
    calc = calculator(GTO)
    with pytest.raises(ValueError, match=message):
        calc.power_spectrum(frames)


def test_rotation_array_of_the_wrong_shape():
    def change(f):
        f.arrays["c_q"] = f.arrays["c_q"][:, :3].copy()
    with pytest.raises(ValueError, match=r"frame 1: array 'c_q' has shape \(10, 3\); "
                                         r"rotation_type='quaternion' needs 4"):
        calculator(GTO).power_spectrum(frames_with(change))


def test_matrix_rotation_that_is_not_a_rotation():
    frames = random_frames(2, n_frames=2)
    for f in frames:
        f.arrays["rot"] = np.tile(np.eye(3).ravel(), (len(f), 1))
    frames[1].arrays["rot"][5] = 2 * np.eye(3).ravel()
    calc = calculator({**GTO, "rotation_key": "rot", "rotation_type": "matrix"})
    with pytest.raises(ValueError, match=r"frame 1: particle 5: 'rot'"):
        calc.power_spectrum(frames)


def test_not_atoms():
    with pytest.raises(TypeError, match="frame 1: expected an ase.Atoms"):
        calculator(GTO).power_spectrum([random_frames(1, n_frames=1)[0], {"positions": 1}])
    with pytest.raises(TypeError, match="not a string"):
        calculator(GTO).power_spectrum("frames.xyz")
    with pytest.raises(ValueError, match="no frames"):
        calculator(GTO).power_spectrum([])


def test_periodic_without_a_cell():
    frames = random_frames(5, n_frames=2)
    frames[0].cell = np.zeros((3, 3))
    with pytest.raises(ValueError, match="frame 0"):
        calculator(GTO).power_spectrum(frames)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"positions": np.zeros((4, 2))}, r"'positions' must have shape \(N, 3\)"),
        ({"numbers": np.zeros(3, int)}, r"'numbers' must have shape \(4,\)"),
        ({"numbers": np.array([1.5, 1, 1, 1])}, r"'numbers' must be integers"),
        ({"orientations": np.ones((4, 5))}, r"rotation_type='quaternion' needs 4"),
        ({"orientations": np.ones((3, 4))}, r"'orientations' must have shape \(4, 4\)"),
        ({"semi_axes": np.ones((4, 2))}, r"'semi_axes' must have shape \(4, 3\)"),
        ({"frame_offsets": [0, 5]}, r"'frame_offsets' must start at 0"),
        ({"frame_offsets": [0, 3, 2, 4]}, r"'frame_offsets' must start at 0, never decrease"),
        ({"frame_offsets": [0.0, 4.0]}, r"'frame_offsets' must be a 1-D integer array"),
        ({"cells": np.zeros((2, 3, 3))}, r"'cells' must have shape \(1, 3, 3\)"),
        ({"pbc": np.zeros((1, 2), bool)}, r"'pbc' must have shape \(1, 3\)"),
        ({"semi_axes": np.array([[1, 1, 1]] * 3 + [[1, 0, 1]])}, r"frame 0: particle 3: semi_axes must be positive"),
        ({"cells": np.full((3, 3), np.nan), "pbc": True}, r"frame 0: the cell is not finite"),
    ],
)
def test_bad_arrays(kwargs, message):
    base = dict(
        positions=np.arange(12.0).reshape(4, 3),
        numbers=np.array([1, 1, 6, 6]),
        orientations=np.tile([1.0, 0, 0, 0], (4, 1)),
        semi_axes=np.ones((4, 3)),
    )
    with pytest.raises(ValueError, match=message):
        systems = Systems(**{**base, **kwargs})
        calculator(GTO).compute_arrays(systems)


def test_no_panic_crosses_into_python():
    """Extreme but finite inputs end in Python exceptions (or results), never an abort."""
    frames = random_frames(9, n_frames=1, n_particles=4)
    frames[0].arrays["c_diameter[1]"][:] = 1e300
    try:
        calculator(GTO).power_spectrum(frames)
    except (ValueError, RuntimeError, MemoryError) as e:
        assert "frame 0" in str(e) or "internal error" in str(e)
    frames = random_frames(9, n_frames=1, n_particles=4)
    frames[0].positions *= 1e300
    with pytest.raises((ValueError, MemoryError, RuntimeError)):
        calculator(GTO).power_spectrum(frames)
