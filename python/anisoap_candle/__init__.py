"""AniSOAP descriptors for ellipsoidal particles, computed by the Rust/Candle engine of
anisoap-candle, behind the original AniSOAP's Python API.

>>> from anisoap_candle import EllipsoidalDensityProjection
>>> calculator = EllipsoidalDensityProjection(
...     max_angular=6, radial_basis_name="gto", cutoff_radius=7.0,
...     radial_gaussian_width=1.5, rotation_key="c_q")          # doctest: +SKIP
>>> x = calculator.power_spectrum(frames)                        # doctest: +SKIP

``EllipsoidalDensityProjection`` is a drop-in replacement for
``anisoap.representations.EllipsoidalDensityProjection``; :class:`Systems` and
``EllipsoidalDensityProjection.compute_arrays`` are the lower-level API (numpy arrays in and
out, no ASE or metatensor needed).
"""

from ._calculator import EllipsoidalDensityProjection, RadialBasis
from ._native import CUDA as _CUDA
from ._native import METAL as _METAL
from ._native import __version__
from ._systems import Systems

#: Whether this build can use ``device="cuda"`` / ``device="metal"``.
features = {"cuda": _CUDA, "metal": _METAL}

__all__ = ["EllipsoidalDensityProjection", "RadialBasis", "Systems", "features", "__version__"]
