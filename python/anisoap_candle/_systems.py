"""Frames as numpy arrays: the input of the native engine, built from ASE frames or given
directly (the lower-level API for users without ASE)."""

import numpy as np


def _frame_of(offsets, index):
    """Frame holding global particle ``index``."""
    return int(np.searchsorted(offsets, index, side="right") - 1)


def as_frame_list(frames):
    """A list of frames from one ``ase.Atoms`` or an iterable of them."""
    if hasattr(frames, "arrays") and hasattr(frames, "cell"):
        return [frames]
    if isinstance(frames, (str, bytes)):
        raise TypeError("frames must be ase.Atoms objects, not a string (read them with ase.io.read)")
    try:
        frames = list(frames)
    except TypeError:
        raise TypeError(
            f"frames must be an ase.Atoms or a list of them, got {type(frames).__name__}"
        ) from None
    if not frames:
        raise ValueError("no frames given")
    return frames


class Systems:
    """All frames of one call as contiguous arrays (particles of all frames concatenated).

    Parameters
    ----------
    positions : array (N, 3)
        Cartesian positions.
    numbers : array (N,)
        Particle types (integers; ASE's atomic numbers, ``X`` = 0).
    orientations : array (N, 4), (N, 9) or (N, 3, 3)
        Quaternions (w, x, y, z), or rotation matrices (body -> lab, row-major).
    semi_axes : array (N, 3)
        Semi-axes of each ellipsoid (``c_diameter[k] / 2`` in ASE frames).
    frame_offsets : array (F + 1,), optional
        Particles of frame ``f`` are ``frame_offsets[f]:frame_offsets[f + 1]``; default: one
        frame holding every particle.
    cells : array (F, 3, 3) or (3, 3), optional
        Cell vectors as rows; default: no cell.
    pbc : array (F, 3), (3,) or bool, optional
        Periodicity; default: not periodic.
    """

    def __init__(
        self,
        positions,
        numbers,
        orientations,
        semi_axes,
        frame_offsets=None,
        cells=None,
        pbc=None,
    ):
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"'positions' must have shape (N, 3), got {positions.shape}")
        n = positions.shape[0]
        numbers = np.asarray(numbers)
        if numbers.shape != (n,):
            raise ValueError(f"'numbers' must have shape ({n},), got {numbers.shape}")
        if numbers.size and not np.issubdtype(numbers.dtype, np.integer):
            if not np.all(np.equal(np.mod(numbers, 1), 0)):
                raise ValueError("'numbers' must be integers")
        if numbers.size and (numbers.min() < -(2**31) or numbers.max() >= 2**31):
            raise ValueError("'numbers' must fit in 32-bit integers")
        orientations = np.asarray(orientations, dtype=np.float64)
        if orientations.ndim == 3 and orientations.shape[1:] == (3, 3):
            orientations = orientations.reshape(len(orientations), 9)
        if orientations.ndim != 2 or orientations.shape[0] != n:
            raise ValueError(
                f"'orientations' must have shape ({n}, 4), ({n}, 9) or ({n}, 3, 3), "
                f"got {np.shape(orientations)}"
            )
        semi_axes = np.ascontiguousarray(semi_axes, dtype=np.float64)
        if semi_axes.shape != (n, 3):
            raise ValueError(f"'semi_axes' must have shape ({n}, 3), got {semi_axes.shape}")
        if frame_offsets is None:
            frame_offsets = np.array([0, n], dtype=np.int64)
        frame_offsets = np.asarray(frame_offsets)
        if (
            frame_offsets.ndim != 1
            or len(frame_offsets) < 2
            or not np.issubdtype(frame_offsets.dtype, np.integer)
        ):
            raise ValueError(
                "'frame_offsets' must be a 1-D integer array of n_frames + 1 >= 2 entries"
            )
        frame_offsets = np.ascontiguousarray(frame_offsets, dtype=np.int64)
        if frame_offsets[0] != 0 or frame_offsets[-1] != n or np.any(np.diff(frame_offsets) < 0):
            raise ValueError(
                f"'frame_offsets' must start at 0, never decrease and end at N = {n}"
            )
        n_frames = len(frame_offsets) - 1
        if cells is None:
            cells = np.zeros((n_frames, 3, 3))
        cells = np.asarray(cells, dtype=np.float64)
        if cells.shape == (3, 3):
            cells = np.broadcast_to(cells, (n_frames, 3, 3))
        if cells.shape != (n_frames, 3, 3):
            raise ValueError(f"'cells' must have shape ({n_frames}, 3, 3), got {cells.shape}")
        if pbc is None:
            pbc = False
        pbc = np.asarray(pbc, dtype=bool)
        if pbc.shape in ((), (3,)):
            pbc = np.broadcast_to(pbc, (n_frames, 3))
        if pbc.shape != (n_frames, 3):
            raise ValueError(f"'pbc' must have shape ({n_frames}, 3), got {pbc.shape}")
        self.positions = positions
        self.numbers = np.ascontiguousarray(numbers, dtype=np.int32)
        self.orientations = np.ascontiguousarray(orientations)
        self.semi_axes = semi_axes
        self.frame_offsets = frame_offsets
        self.cells = np.ascontiguousarray(cells)
        self.pbc = np.ascontiguousarray(pbc)
        # How the arrays are called in error messages (ASE names when read from frames).
        self._names = {
            "positions": "positions",
            "orientations": "orientations",
            "semi_axes": "semi_axes",
        }

    def __len__(self):
        return len(self.frame_offsets) - 1

    @property
    def n_frames(self):
        """Number of frames."""
        return len(self)

    @property
    def n_particles(self):
        """Number of particles in all frames."""
        return len(self.positions)

    def _locate(self, index):
        f = _frame_of(self.frame_offsets, index)
        return f, int(index - self.frame_offsets[f])

    def validate(self, rotation_type):
        """Vectorised checks, naming the frame, particle and array of the first bad value."""
        width = 4 if rotation_type == "quaternion" else 9
        if self.orientations.shape[1] != width:
            raise ValueError(
                f"{self._names['orientations']}: rotation_type='{rotation_type}' needs "
                f"{width} numbers per particle, got {self.orientations.shape[1]}"
            )
        checks = [
            (self.positions, "positions", "non-finite position"),
            (self.orientations, self._names["orientations"], "non-finite orientation"),
        ]
        for array, name, what in checks:
            bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
            if bad.size:
                f, i = self._locate(bad[0])
                raise ValueError(f"frame {f}: particle {i}: {what} in '{name}': {array[bad[0]]}")
        bad = np.flatnonzero(~(np.isfinite(self.semi_axes) & (self.semi_axes > 0)).all(axis=1))
        if bad.size:
            f, i = self._locate(bad[0])
            raise ValueError(
                f"frame {f}: particle {i}: {self._names['semi_axes']} must be positive and "
                f"finite, got {self._semi_axes_shown(bad[0])}"
            )
        if width == 4:
            bad = np.flatnonzero(~(np.abs(self.orientations) > 0).any(axis=1))
            if bad.size:
                f, i = self._locate(bad[0])
                raise ValueError(
                    f"frame {f}: particle {i}: '{self._names['orientations']}' is a zero "
                    "quaternion (it has no orientation)"
                )
        if not np.isfinite(self.cells).all():
            f = int(np.flatnonzero(~np.isfinite(self.cells).reshape(len(self), 9).all(axis=1))[0])
            raise ValueError(f"frame {f}: the cell is not finite: {self.cells[f].tolist()}")

    def _semi_axes_shown(self, index):
        if self._names["semi_axes"].startswith("c_diameter"):
            return (2 * self.semi_axes[index]).tolist()
        return self.semi_axes[index].tolist()

    @classmethod
    def from_ase(cls, frames, rotation_key, rotation_type="quaternion"):
        """Reads ASE frames: ``positions``, ``numbers``, ``cell``, ``pbc``,
        ``arrays[rotation_key]`` and ``arrays["c_diameter[1..3]"]`` (full lengths; the
        semi-axes are half of them). Loops over frames only, never over particles."""
        frames = as_frame_list(frames)
        width = 4 if rotation_type == "quaternion" else 9
        n_frames = len(frames)
        counts = np.empty(n_frames, dtype=np.int64)
        positions, numbers, orientations, diameters = [], [], [], []
        cells = np.empty((n_frames, 3, 3))
        pbc = np.empty((n_frames, 3), dtype=bool)
        for f, atoms in enumerate(frames):
            arrays = getattr(atoms, "arrays", None)
            if arrays is None:
                raise TypeError(
                    f"frame {f}: expected an ase.Atoms, got {type(atoms).__name__}"
                )
            pos = arrays["positions"]
            n = len(pos)
            counts[f] = n
            positions.append(pos)
            numbers.append(arrays["numbers"])
            rotation = arrays.get(rotation_key)
            if rotation is None:
                raise ValueError(
                    f"frame at index {f} is missing a required attribute '{rotation_key}' "
                    f"(the orientation array named by rotation_key); its arrays are: "
                    f"{', '.join(sorted(arrays))}"
                )
            rotation = np.asarray(rotation, dtype=np.float64)
            if rotation.size != n * width:
                raise ValueError(
                    f"frame {f}: array '{rotation_key}' has shape {rotation.shape}; "
                    f"rotation_type='{rotation_type}' needs {width} numbers per particle "
                    f"({n} particles)"
                )
            orientations.append(rotation.reshape(n, width))
            axes = []
            for k in (1, 2, 3):
                name = f"c_diameter[{k}]"
                d = arrays.get(name)
                if d is None:
                    hint = (
                        f"full ellipsoid lengths; set them like the original's notebooks do, "
                        f"e.g. frame.arrays['{name}'] = 4.0 * np.ones(len(frame))"
                    )
                    if f"c_diameter{k}" in arrays:
                        hint = (
                            f"the frame has 'c_diameter{k}': ASE renames an unescaped "
                            f"'{name}' column when reading; rename it back with "
                            f"frame.arrays['{name}'] = frame.arrays.pop('c_diameter{k}')"
                        )
                    raise ValueError(
                        f"frame at index {f} is missing a required attribute '{name}' ({hint})"
                    )
                d = np.asarray(d, dtype=np.float64)
                if d.shape != (n,):
                    raise ValueError(
                        f"frame {f}: array '{name}' must have shape ({n},), got {d.shape}"
                    )
                axes.append(d)
            diameters.append(np.stack(axes, axis=1))
            cells[f] = atoms.cell.array if hasattr(atoms.cell, "array") else atoms.cell
            pbc[f] = atoms.pbc
        offsets = np.zeros(n_frames + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        concat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
        systems = cls(
            concat(positions, (0, 3)),
            concat(numbers, (0,)).astype(np.int64),
            concat(orientations, (0, width)),
            concat(diameters, (0, 3)) / 2.0,
            offsets,
            cells,
            pbc,
        )
        systems._names = {
            "positions": "positions",
            "orientations": rotation_key,
            "semi_axes": "c_diameter[1..3]",
        }
        return systems
