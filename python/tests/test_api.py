"""Constructor checks, outputs' metadata, options, pickling, GIL, progress."""

import pickle
import threading
import time
import warnings

import numpy as np
import pytest

from anisoap_candle import EllipsoidalDensityProjection, Systems
from conftest import GTO, F64_RTOL, assert_columns_close, calculator, random_frames

BASE = {"max_angular": 2, "radial_basis_name": "gto", "cutoff_radius": 4.0,
        "radial_gaussian_width": 1.0, "rotation_key": "c_q"}


@pytest.mark.parametrize(
    "change,error,message",
    [
        ({"compute_gradients": True}, NotImplementedError, "Gradients have not yet been implemented"),
        ({"radial_basis_name": "nonsense"}, NotImplementedError, "nonsense is not an implemented basis"),
        ({"radial_basis_name": "monomial"}, ValueError, "Gaussian width can only be provided with GTO basis"),
        ({"radial_gaussian_width": None}, ValueError, "Gaussian width must be provided with GTO basis"),
        ({"radial_gaussian_width": 1}, ValueError, "radial_gaussian_width is set as an integer"),
        ({"cutoff_radius": 4}, ValueError, "r_cut is set as an integer"),
        ({"rotation_type": "quaternions"}, ValueError, "We have only implemented transforming quaternions"),
        ({"max_radial": (1, 1, 1)}, ValueError, "`max_radial` must be None, int, or list of int"),
        ({"max_radial": [1, 1]}, ValueError, "this list must be of length 3"),
        ({"max_radial": [1, 1.5, 1]}, ValueError, "`max_radial` must be None, int, or list of int"),
        ({"max_radial": np.int64(2)}, ValueError, "`max_radial` must be None, int, or list of int"),
        ({"max_radial": 9, "max_angular": 8}, ValueError, "Incurred Numerical Imprecision"),
        ({"cutoff_radius": -4.0}, ValueError, "cutoff_radius must be positive"),
    ],
)
def test_constructor_errors_like_the_original(change, error, message):
    hypers = {**BASE, **change}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            EllipsoidalDensityProjection(**hypers)


def test_quaternion_warning_and_attributes():
    with pytest.warns(UserWarning, match=r"quaternions are assumed to be in \(w,x,y,z\) format"):
        calc = EllipsoidalDensityProjection(**BASE)
    assert calc.max_angular == 2 and calc.cutoff_radius == 4.0
    assert calc.rotation_key == "c_q" and calc.rotation_type == "quaternion"
    assert calc.num_ns == [2, 1, 1]
    assert calc.radial_basis.get_num_radial_functions() == [2, 1, 1]
    assert calc.device == "cpu" and calc.dtype == "float64"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EllipsoidalDensityProjection(**{**BASE, "rotation_type": "matrix"})


def test_original_defaults():
    import inspect

    sig = inspect.signature(EllipsoidalDensityProjection)
    defaults = {k: p.default for k, p in sig.parameters.items()}
    assert list(sig.parameters)[:3] == ["max_angular", "radial_basis_name", "cutoff_radius"]
    assert defaults["rotation_key"] == "quaternion"
    assert defaults["rotation_type"] == "quaternion"
    assert defaults["basis_rcond"] == 0 and defaults["basis_tol"] == 1e-8
    assert defaults["compute_gradients"] is False
    for extra in ("device", "dtype", "chunk_pairs", "property_labels"):
        assert sig.parameters[extra].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    "extra,error,message",
    [
        ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
        ({"device": "cuda:x"}, ValueError, "ordinal"),
        ({"dtype": "float16"}, ValueError, "dtype must be 'float64' or 'float32'"),
        ({"chunk_pairs": 0}, ValueError, "chunk_pairs must be a positive integer"),
        ({"property_labels": "sorted"}, ValueError, "property_labels must be"),
    ],
)
def test_device_and_dtype_errors(extra, error, message):
    with pytest.raises(error, match=message):
        calculator(BASE, **extra)


def test_cuda_unavailable_is_a_clear_error():
    import anisoap_candle

    if anisoap_candle.features["cuda"]:
        pytest.skip("this build has CUDA; the no-CUDA message cannot be checked")
    with pytest.raises(RuntimeError, match="without CUDA support"):
        calculator(BASE, device="cuda")


def test_metal_f64_refused_or_absent():
    with pytest.raises(RuntimeError, match="Metal"):
        calculator(BASE, device="metal")


def test_single_frame_and_list_shapes(small_frames):
    calc = calculator(GTO)
    both = calc.power_spectrum(small_frames)
    assert both.ndim == 2 and both.shape[0] == 2
    one = calc.power_spectrum(small_frames[0])  # one Atoms, not a list
    assert one.ndim == 1
    # Frames are computed together: features of frame 0 depend only on frame 0 here because
    # both frames have every pair type.
    assert_columns_close(one, both[0], F64_RTOL)


def test_tensormap_metadata(small_frames):
    metatensor = pytest.importorskip("metatensor", reason="metatensor-core is not installed")
    calc = calculator(GTO)
    tm = calc.transform(small_frames)
    assert isinstance(tm, metatensor.TensorMap)
    assert tm.keys.names == ["types_center", "angular_channel"]
    assert [tuple(k) for k in tm.keys.values.tolist()] == [(t, l) for t in (1, 6) for l in range(4)]
    block = tm.block(types_center=6, angular_channel=2)
    assert block.samples.names == ["type", "center"]
    assert block.components[0].names == ["spherical_component_m"]
    assert block.components[0].values.ravel().tolist() == [-2, -1, 0, 1, 2]
    assert block.properties.names == ["n", "neighbor_types"]
    # Values layout: n-major, neighbour type fastest; the labels say so.
    assert block.properties.values.tolist() == [[0, 1], [0, 6], [1, 1], [1, 6]]
    assert block.samples.values[:, 0].tolist() == sorted(block.samples.values[:, 0].tolist())
    ps = calc.power_spectrum(small_frames, mean_over_samples=False)
    assert ps.keys.names == ["order_nu", "angular_channel", "types_center"]
    assert ps.keys.values.tolist() == [[2, 0, 1], [2, 0, 6]]
    pblock = ps.block(0)
    assert pblock.components[0].names == ["spherical_harmonics_m"]
    assert pblock.properties.names == [
        "n_1_a", "neighbor_types_1_a", "k_2", "n_1_b", "neighbor_types_1_b", "l_2"]
    assert pblock.values.shape[1] == 1
    # The mean over centres of the per-centre map is the numpy output.
    mean = calc.power_spectrum(small_frames)
    frames = pblock.samples.values[:, 0]
    for f in range(2):
        np.testing.assert_allclose(
            pblock.values[frames == f, 0].mean(axis=0), mean[f, : pblock.values.shape[2]],
            rtol=0, atol=1e-12 * np.abs(mean).max())


def test_original_property_labels_option(small_frames):
    pytest.importorskip("metatensor", reason="metatensor-core is not installed")
    ours = calculator(GTO).transform(small_frames)
    original = calculator(GTO, property_labels="original").transform(small_frames)
    a = ours.block(types_center=1, angular_channel=0)
    b = original.block(types_center=1, angular_channel=0)
    np.testing.assert_array_equal(a.values, b.values)  # same values, same columns
    assert b.properties.values.tolist() == [[0, 1], [1, 1], [0, 6], [1, 6]]  # type-major


def test_normalize_false_round_trip():
    """normalize=False then the radial basis' orthonormalize_basis equals normalize=True
    (one neighbour type, as in the original's own test)."""
    pytest.importorskip("metatensor", reason="metatensor-core is not installed")
    frames = random_frames(3, types=(6,))
    calc = calculator({**GTO, "max_radial": 2})
    raw = calc.transform(frames, normalize=False)
    normalized = calc.transform(frames)
    again = calc.radial_basis.orthonormalize_basis(raw)
    for a, b in zip(again.blocks(), normalized.blocks()):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-10, atol=1e-10)
    with pytest.raises(NotImplementedError, match="return_pef"):
        calc.transform(frames, return_pef=True)


def test_pickle_round_trip(small_frames):
    calc = calculator(GTO, chunk_pairs=64)
    clone = pickle.loads(pickle.dumps(calc))
    assert repr(clone) == repr(calc)
    np.testing.assert_array_equal(clone.power_spectrum(small_frames), calc.power_spectrum(small_frames))


def test_chunk_pairs_does_not_change_results(small_frames):
    a = calculator(GTO, chunk_pairs=7).power_spectrum(small_frames)
    b = calculator(GTO).power_spectrum(small_frames)
    assert_columns_close(a, b, 1e-12)


def test_gil_is_released_during_compute():
    calc = calculator({**GTO, "max_angular": 6, "max_radial": 3})
    # Grow the workload until one call is long enough to observe another thread running
    # during it (the engine got faster; a fixed size may finish too soon to tell).
    n_frames = 4
    while True:
        frames = random_frames(5, n_frames=n_frames, n_particles=200, box=12.0)
        start = time.perf_counter()
        calc.power_spectrum(frames)
        alone = time.perf_counter() - start
        if alone > 0.1 or n_frames >= 256:
            break
        n_frames *= 2
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    start = time.perf_counter()
    calc.power_spectrum(frames)
    end = time.perf_counter()
    done.set()
    thread.join()
    inside = [t for t in ticks if start + 0.1 * (end - start) < t < end - 0.1 * (end - start)]
    # With the GIL held the other thread could not run at all during the call.
    assert alone > 0.05, f"workload too small to tell ({alone:.3f} s)"
    assert len(inside) >= 5, f"only {len(inside)} ticks of the other thread during {end - start:.3f} s"


def test_progress_bar(small_frames, capsys):
    calc = calculator(GTO)
    calc.power_spectrum(small_frames, show_progress=True)
    err = capsys.readouterr().err
    assert "pairs" in err


def test_float32_output_dtype(small_frames):
    x = calculator(GTO, dtype="float32").power_spectrum(small_frames)
    assert x.dtype == np.float32
    assert_columns_close(x, calculator(GTO).power_spectrum(small_frames), 1e-4)


def test_metatensor_missing_message(monkeypatch, small_frames):
    import builtins

    real_import = builtins.__import__

    def no_metatensor(name, *args, **kwargs):
        if name == "metatensor" or name.startswith("metatensor."):
            raise ImportError("No module named 'metatensor'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_metatensor)
    calc = calculator(GTO)
    with pytest.raises(ImportError, match="pip install metatensor-core"):
        calc.transform(small_frames)
    # The numpy output needs no metatensor.
    assert calc.power_spectrum(small_frames).shape[0] == 2


def test_systems_defaults_and_matrix_rotations():
    rng = np.random.default_rng(4)
    n = 6
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    matrices = np.stack([
        np.stack([w*w + x*x - y*y - z*z, 2*(x*y - z*w), 2*(x*z + y*w)], -1),
        np.stack([2*(x*y + z*w), w*w - x*x + y*y - z*z, 2*(y*z - x*w)], -1),
        np.stack([2*(x*z - y*w), 2*(y*z + x*w), w*w - x*x - y*y + z*z], -1),
    ], 1)
    positions = rng.uniform(0, 4, size=(n, 3))
    axes = rng.uniform(0.4, 1.5, size=(n, 3))
    numbers = np.array([1, 1, 6, 6, 6, 1])
    from_q = calculator(GTO).compute_arrays(Systems(positions, numbers, q, axes))
    from_m = calculator({**GTO, "rotation_type": "matrix"}).compute_arrays(
        Systems(positions, numbers, matrices, axes))
    assert from_q["values"].shape == (1, from_q["values"].shape[1])
    assert_columns_close(from_m["values"], from_q["values"], 1e-12)
