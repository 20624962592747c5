"""``EllipsoidalDensityProjection``: the original AniSOAP's calculator on the Candle engine."""

import json
import sys
import warnings

import numpy as np

from . import _native
from ._systems import Systems

_METATENSOR_HINT = (
    "this output is a metatensor TensorMap, which needs the metatensor package: "
    "pip install metatensor-core (or use power_spectrum(frames) for a numpy array, or "
    "compute_arrays(...) for plain arrays)"
)


def _metatensor():
    try:
        import metatensor
        from metatensor import Labels, TensorBlock, TensorMap  # noqa: F401
    except ImportError as e:
        raise ImportError(_METATENSOR_HINT) from e
    return metatensor


class _Progress:
    """Progress in pairs: tqdm when installed, a line on stderr otherwise."""

    def __init__(self, enabled, desc):
        self.bar = None
        self.enabled = enabled
        self.desc = desc
        self.last = -1

    def __call__(self, done, total):
        if not self.enabled:
            return
        if self.bar is None:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=self.desc, unit="pairs")
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.total = total
            self.bar.update(done - self.bar.n)
        else:
            percent = int(100 * done / max(total, 1))
            if percent != self.last:
                self.last = percent
                sys.stderr.write(f"\r{self.desc}: {done}/{total} pairs ({percent}%)")
                sys.stderr.flush()

    def close(self):
        if self.bar:
            self.bar.close()
        elif self.bar is False:
            sys.stderr.write("\n")


class RadialBasis:
    """The original's ``radial_basis`` attribute, as far as users reach it:
    ``get_num_radial_functions()`` and ``orthonormalize_basis(tensormap)``, which applies the
    radial prefactors and Löwdin matrices in place to a ``transform(normalize=False)`` map,
    exactly as the original does (from the property labels ``n`` of each block)."""

    def __init__(self, engine, name, max_angular, cutoff_radius, width, rcond, tol):
        self._engine = engine
        self.radial_basis = name
        self.max_angular = max_angular
        self.cutoff_radius = cutoff_radius
        self.radial_gaussian_width = width
        self.rcond = rcond
        self.tol = tol
        self.num_radial_functions = list(engine.n_radial)

    def get_num_radial_functions(self):
        """``N_l`` for each ``l``."""
        return self.num_radial_functions

    def _inverse_matrix_sqrt(self, matrix):
        eva, eve = np.linalg.eigh(matrix)
        keep = eva > self.rcond
        eve, eva = eve[:, keep], eva[keep]
        result = eve @ np.diag(1 / np.sqrt(eva)) @ eve.T
        difference = np.linalg.norm(matrix - np.linalg.pinv(result @ result))
        if difference > self.tol:
            raise ValueError(f"Incurred Numerical Imprecision {difference=:.8f}")
        return result

    def orthonormalize_basis(self, features):
        """Applies the radial normalisation and Löwdin orthonormalisation in place."""
        for key, block in features.items():
            l = int(key["angular_channel"])
            degrees = l + 2 * np.asarray(block.properties["n"], dtype=int)
            prefactors = np.array([self._engine.radial_norm(int(d)) for d in degrees])
            block.values[:, :, :] *= prefactors
            overlap = np.array(
                [[self._engine.radial_overlap(int(d), int(e)) for e in degrees] for d in degrees]
            )
            block.values[:, :, :] = np.einsum(
                "ijk,kl->ijl", block.values[:, :, :], self._inverse_matrix_sqrt(overlap)
            )
        return features


def _check_hypers(max_angular, radial_basis_name, cutoff_radius, compute_gradients,
                  radial_gaussian_width, max_radial, rotation_type):
    """The original constructor's checks, in its order, with its exception types and messages."""
    if compute_gradients:
        raise NotImplementedError("Sorry! Gradients have not yet been implemented")
    if type(cutoff_radius) is int:
        raise ValueError(
            "r_cut is set as an integer, which could cause overflow errors. Pass in float"
        )
    if radial_basis_name == "gto":
        if radial_gaussian_width is None:
            raise ValueError("Gaussian width must be provided with GTO basis")
        if type(radial_gaussian_width) is int:
            raise ValueError(
                "radial_gaussian_width is set as an integer, which could cause overflow "
                "errors. Pass in float."
            )
    elif radial_basis_name == "monomial":
        if radial_gaussian_width is not None:
            raise ValueError("Gaussian width can only be provided with GTO basis")
    else:
        raise NotImplementedError(
            f"{radial_basis_name} is not an implemented basis. Try 'monomial' or 'gto'"
        )
    if not isinstance(max_angular, (int, np.integer)) or isinstance(max_angular, bool):
        raise ValueError(f"max_angular must be a non-negative integer, got {max_angular!r}")
    if max_radial is not None:
        if isinstance(max_radial, list):
            if len(max_radial) < max_angular + 1:
                raise ValueError(
                    "If you specify a list of number of radial components, this list must be "
                    f"of length {max_angular + 1}. Received {len(max_radial)}."
                )
            if not all(isinstance(k, int) for k in max_radial[: max_angular + 1]):
                raise ValueError("`max_radial` must be None, int, or list of int")
        elif not isinstance(max_radial, int):
            raise ValueError("`max_radial` must be None, int, or list of int")
    if rotation_type not in ["quaternion", "matrix"]:
        raise ValueError(
            "We have only implemented transforming quaternions (`quaternion`) and rotation "
            "matrices (`matrix`)."
        )


def _number(x):
    """A JSON-able number, keeping Python's int/float distinction (numpy floats are floats)."""
    if isinstance(x, bool):
        return x
    if isinstance(x, (float, np.floating)):
        return float(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    raise ValueError(f"expected a number, got {x!r}")


def _cutoff_function(value):
    """The ``cutoff_function`` option as JSON: ``"step"`` or ``{"shifted_cosine": {"width": w}}``
    (numbers made JSON-able; names and ranges are checked by the engine, whose errors name the
    field, e.g. ``cutoff_function.shifted_cosine.width``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {
            str(name): (
                {str(k): _number(v) if isinstance(v, (int, float, np.number)) else v
                 for k, v in params.items()}
                if isinstance(params, dict) else params
            )
            for name, params in value.items()
        }
    raise ValueError(
        "cutoff_function must be 'step' or a dict such as {'shifted_cosine': {'width': 0.5}}, "
        f"got {value!r}"
    )


class EllipsoidalDensityProjection:
    """AniSOAP's ``EllipsoidalDensityProjection``, computed by the Candle engine.

    Same constructor arguments, defaults, checks and exceptions as the original
    (``anisoap.representations.EllipsoidalDensityProjection``), plus keyword-only options:

    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"metal"`` (CUDA needs a build with
        the ``cuda`` feature; Metal is float32 only).
    dtype : str
        ``"float64"`` (default; matches the original to ~1e-12) or ``"float32"``.
    chunk_pairs : int or None
        Pairs per batch; bounds memory (default 65536 on the CPU, 1048576 on GPUs).
    property_labels : str
        ``"values"`` (default): TensorMap property labels describe the values.
        ``"original"``: the original's label rows, which are type-major while the values are
        n-major (they do not describe the columns when a block has several radial functions
        and several neighbour types).
    cutoff_function : str, dict or None
        ``None`` or ``"step"`` (default): the original's step, every neighbour strictly inside
        the cutoff counts fully. ``{"shifted_cosine": {"width": w}}``: an opt-in smooth cutoff
        that departs from the original: each neighbour's contribution is multiplied by
        ``f(r) = 1`` for ``r <= cutoff - w``, ``(1 + cos(pi (r - cutoff + w) / w)) / 2`` up to
        the cutoff, so features change continuously when a neighbour crosses it
        (``0 < w <= cutoff_radius``).
    """

    def __init__(
        self,
        max_angular,
        radial_basis_name,
        cutoff_radius,
        compute_gradients=False,
        subtract_center_contribution=False,
        radial_gaussian_width=None,
        max_radial=None,
        rotation_key="quaternion",
        rotation_type="quaternion",
        basis_rcond=0,
        basis_tol=1e-8,
        *,
        device="cpu",
        dtype="float64",
        chunk_pairs=None,
        property_labels="values",
        cutoff_function=None,
    ):
        self._init_args = dict(
            max_angular=max_angular,
            radial_basis_name=radial_basis_name,
            cutoff_radius=cutoff_radius,
            compute_gradients=compute_gradients,
            subtract_center_contribution=subtract_center_contribution,
            radial_gaussian_width=radial_gaussian_width,
            max_radial=max_radial,
            rotation_key=rotation_key,
            rotation_type=rotation_type,
            basis_rcond=basis_rcond,
            basis_tol=basis_tol,
            device=device,
            dtype=dtype,
            chunk_pairs=chunk_pairs,
            property_labels=property_labels,
            cutoff_function=cutoff_function,
        )
        self.max_angular = max_angular
        self.cutoff_radius = cutoff_radius
        self.compute_gradients = compute_gradients
        self.subtract_center_contribution = subtract_center_contribution
        self.radial_basis_name = radial_basis_name
        _check_hypers(max_angular, radial_basis_name, cutoff_radius, compute_gradients,
                      radial_gaussian_width, max_radial, rotation_type)
        if property_labels not in ("values", "original"):
            raise ValueError(
                f"property_labels must be 'values' or 'original', got {property_labels!r}"
            )
        dtype_name = str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
        if dtype_name not in ("float64", "float32", "f64", "f32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if chunk_pairs is not None and (
            not isinstance(chunk_pairs, (int, np.integer)) or chunk_pairs < 1
        ):
            raise ValueError(f"chunk_pairs must be a positive integer, got {chunk_pairs!r}")
        if not isinstance(device, str):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
        hypers = {
            "max_angular": int(max_angular),
            "radial_basis_name": radial_basis_name,
            "cutoff_radius": _number(cutoff_radius),
            "subtract_center_contribution": bool(subtract_center_contribution),
            "rotation_key": rotation_key,
            "rotation_type": rotation_type,
            "basis_rcond": float(basis_rcond),
            "basis_tol": float(basis_tol),
        }
        if radial_gaussian_width is not None:
            hypers["radial_gaussian_width"] = _number(radial_gaussian_width)
        if max_radial is not None:
            hypers["max_radial"] = (
                [int(k) for k in max_radial] if isinstance(max_radial, list) else int(max_radial)
            )
        if cutoff_function is not None:
            hypers["cutoff_function"] = _cutoff_function(cutoff_function)
        self.cutoff_function = cutoff_function
        self._engine = _native.Engine(
            json.dumps(hypers), device, dtype_name, None if chunk_pairs is None else int(chunk_pairs)
        )
        self._property_labels = property_labels
        self.radial_basis = RadialBasis(
            self._engine, radial_basis_name, max_angular, cutoff_radius,
            radial_gaussian_width, basis_rcond, basis_tol,
        )
        self.num_ns = self.radial_basis.get_num_radial_functions()
        if rotation_type == "quaternion":
            warnings.warn(
                "In quaternion mode, quaternions are assumed to be in (w,x,y,z) format."
            )
        self.rotation_type = rotation_type
        self.rotation_key = rotation_key

    # -- pickling: the native engine is rebuilt from the constructor arguments ------------

    def __getstate__(self):
        return dict(self._init_args)

    def __setstate__(self, state):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.__init__(**state)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_args.items())
        return f"EllipsoidalDensityProjection({args})"

    @property
    def device(self):
        """The device computing the features (``cpu``, ``cuda:0``, ...)."""
        return self._engine.device

    @property
    def dtype(self):
        """``float64`` or ``float32``."""
        return self._engine.dtype

    # -- computation -----------------------------------------------------------------------

    def _systems(self, frames):
        if isinstance(frames, Systems):
            systems = frames
        else:
            systems = Systems.from_ase(frames, self.rotation_key, self.rotation_type)
        systems.validate(self.rotation_type)
        return systems

    def compute_arrays(self, systems, quantity="power_spectrum", *, normalize=True,
                       show_progress=False):
        """The lower-level entry point: a :class:`Systems` (numpy arrays) or ASE frames in, a
        dict of plain numpy arrays out: ``values`` (rows x features), ``frame`` and
        ``center`` (the frame and particle index of each row), ``column_names`` /
        ``column_labels`` (what each column is), ``blocks`` (key and columns of each
        metatensor block) and the layout (``types``, ``center_types``, ``neighbor_types``,
        ``n_radial``).

        quantity: ``"power_spectrum"`` (per-frame mean, one row per frame),
        ``"power_spectrum_per_center"`` or ``"density"`` (one row per centre).
        """
        systems = self._systems(systems)
        progress = _Progress(show_progress, quantity)
        try:
            out = self._engine.compute(
                systems.positions,
                systems.numbers,
                systems.orientations,
                systems.semi_axes,
                systems.cells,
                systems.pbc,
                systems.frame_offsets,
                quantity,
                normalize=normalize,
                property_labels=self._property_labels,
                progress=progress if show_progress else None,
            )
        finally:
            progress.close()
        # Time inside the library's Calculator::compute (what the CLI reports), for measuring
        # the overhead of the Python call.
        self._last_compute_s = out.pop("compute_s")
        if self._engine.dtype == "float32":
            out["values"] = out["values"].astype(np.float32)
        if out["center"] is not None:
            out["row_types"] = systems.numbers[
                systems.frame_offsets[out["frame"]] + out["center"]
            ]
        return out

    def power_spectrum(self, frames, mean_over_samples=True, show_progress=False,
                       rust_moments=True):
        """The AniSOAP power spectrum, as the original's ``power_spectrum``.

        ``mean_over_samples=True``: a numpy array (n_frames, n_features) of per-frame means
        over the centres of each type, blocks of centre types side by side (1-D for a single
        frame, like the original). ``False``: a metatensor TensorMap with keys
        ``(order_nu, angular_channel, types_center)``, samples ``(type, center)`` (``type``
        is the frame index, as in the original) and the original's property names.

        ``frames``: ase.Atoms (one or a list) or a :class:`Systems`. ``rust_moments`` is
        accepted for compatibility and ignored.
        """
        del rust_moments
        if not isinstance(frames, Systems):
            frames = Systems.from_ase(frames, self.rotation_key, self.rotation_type)
        if mean_over_samples:
            out = self.compute_arrays(frames, "power_spectrum", show_progress=show_progress)
            counts = out["counts"]
            missing = np.argwhere(counts == 0)
            if len(missing):
                f, b = missing[0]
                warnings.warn(
                    f"{len(missing)} (frame, centre type) combination(s) have no centre, e.g. "
                    f"frame {f} has no centre of type {out['center_types'][b]}: those blocks "
                    "are left at zero (the original raises from np.hstack here)"
                )
            values = out["values"]
            return values[0] if values.shape[0] == 1 else values
        _metatensor()
        out = self.compute_arrays(
            frames, "power_spectrum_per_center", show_progress=show_progress
        )
        return _power_spectrum_tensormap(out)

    def transform(self, frames, show_progress=False, normalize=True, rust_moments=True,
                  return_pef=False):
        """The nu=1 density coefficients, as the original's ``transform``: a metatensor
        TensorMap with keys ``(types_center, angular_channel)``, samples ``(type, center)``,
        components ``spherical_component_m`` and properties ``(n, neighbor_types)``.

        ``normalize=False`` gives the raw coefficients (computed by the float64 reference
        path). ``return_pef=True`` (the pair-level map) is not available.
        """
        del rust_moments
        if return_pef:
            raise NotImplementedError(
                "return_pef=True (the pair-level expansion) is not produced by anisoap_candle: "
                "pairs are never stored; use the original AniSOAP for it"
            )
        _metatensor()
        out = self.compute_arrays(
            frames, "density", normalize=normalize, show_progress=show_progress
        )
        return _density_tensormap(out)


def _samples(metatensor, out, rows):
    values = np.stack([out["frame"][rows], out["center"][rows]], axis=1).astype(np.int32)
    return metatensor.Labels(["type", "center"], values.reshape(-1, 2))


def _density_tensormap(out):
    metatensor = _metatensor()
    from metatensor import Labels, TensorBlock, TensorMap

    values = out["values"]
    keys, blocks = [], []
    for block in out["blocks"]:
        t, l = block["center_type"], block["angular_channel"]
        rows = _type_rows(out, t)
        n_props = len(block["properties"])
        data = values[rows, block["start"]:block["stop"]].reshape(len(rows), 2 * l + 1, n_props)
        keys.append((t, l))
        blocks.append(
            TensorBlock(
                values=np.ascontiguousarray(data),
                samples=_samples(metatensor, out, rows),
                components=[
                    Labels(
                        ["spherical_component_m"],
                        np.arange(-l, l + 1, dtype=np.int32).reshape(-1, 1),
                    )
                ],
                properties=Labels(
                    list(block["property_names"]), block["properties"].astype(np.int32)
                ),
            )
        )
    return TensorMap(
        Labels(["types_center", "angular_channel"], np.asarray(keys, dtype=np.int32)),
        blocks,
    )


def _power_spectrum_tensormap(out):
    metatensor = _metatensor()
    from metatensor import Labels, TensorBlock, TensorMap

    values = out["values"]
    keys, blocks = [], []
    for block in out["blocks"]:
        t = block["center_type"]
        rows = _type_rows(out, t)
        data = values[rows, block["start"]:block["stop"]]
        keys.append((2, 0, t))
        blocks.append(
            TensorBlock(
                values=np.ascontiguousarray(data.reshape(len(rows), 1, data.shape[1])),
                samples=_samples(metatensor, out, rows),
                components=[
                    Labels(["spherical_harmonics_m"], np.zeros((1, 1), dtype=np.int32))
                ],
                properties=Labels(
                    list(block["property_names"]), block["properties"].astype(np.int32)
                ),
            )
        )
    return TensorMap(
        Labels(
            ["order_nu", "angular_channel", "types_center"], np.asarray(keys, dtype=np.int32)
        ),
        blocks,
    )


def _type_rows(out, t):
    """Rows (per-centre outputs) whose centre has type ``t``."""
    return np.flatnonzero(out["row_types"] == t)
