//! `anisoap_candle._native`: the Rust side of the Python package.
//!
//! One engine per hyperparameter set (`Engine`), and one entry point that takes all frames at
//! once as contiguous numpy arrays with frame offsets (`Engine::compute`). The Python layer
//! (`anisoap_candle/__init__.py`) reads ASE frames into those arrays, mirrors the original's
//! constructor checks and builds numpy / metatensor outputs from what this returns; every
//! feature label comes from `anisoap_candle::labels`.
//!
//! The computation runs with the GIL released; a Rust panic is caught and raised as
//! `RuntimeError`, never unwinding into Python.

use anisoap_candle::basis::{radial, Basis};
use anisoap_candle::device::{check_dtype, device_name, open_device, parse_dtype};
use anisoap_candle::hypers::RotationType;
use anisoap_candle::labels::{self, Block, PropertyOrder};
use anisoap_candle::system::{Layout, System};
use anisoap_candle::{
    reference, Backend, BatchedOptions, Calculator, Error, Features, Frame, Hypers, Matrix,
    PerParticle, Quantity,
};
use candle_core::DType;
use nalgebra::DMatrix;
use numpy::{
    PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Maps a library error to the Python exception the original would raise for the same cause.
fn to_py(err: Error) -> PyErr {
    match err {
        // The original's own messages, without our "invalid hyperparameter: " prefix.
        Error::Hypers(message) => PyValueError::new_err(message),
        Error::Device(message) => {
            if message.contains("unknown") || message.contains("ordinal") {
                PyValueError::new_err(message)
            } else {
                PyRuntimeError::new_err(message)
            }
        }
        Error::Io { .. } => PyOSError::new_err(err.to_string()),
        Error::Candle(_) => PyRuntimeError::new_err(err.to_string()),
        Error::TooLarge(_) => PyMemoryError::new_err(err.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Runs `f`, turning a panic into a `RuntimeError` (a panic is a bug; it must not abort the
/// interpreter or unwind through the FFI boundary).
fn guarded<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in anisoap_candle ({what}): {message}. This is a bug; please \
                 report it with the input that caused it"
            )))
        }
    }
}

fn quantity(name: &str) -> PyResult<Quantity> {
    match name {
        "power_spectrum" => Ok(Quantity::PowerSpectrumMean),
        "power_spectrum_per_center" => Ok(Quantity::PowerSpectrumPerCenter),
        "density" => Ok(Quantity::Density),
        other => Err(PyValueError::new_err(format!(
            "unknown quantity '{other}'; expected power_spectrum, power_spectrum_per_center or \
             density"
        ))),
    }
}

fn property_order(name: &str) -> PyResult<PropertyOrder> {
    match name {
        "values" => Ok(PropertyOrder::Values),
        "original" => Ok(PropertyOrder::Original),
        other => Err(PyValueError::new_err(format!(
            "property_labels must be 'values' or 'original', got '{other}'"
        ))),
    }
}

/// A calculator for one hyperparameter set on one device and dtype.
#[pyclass(module = "anisoap_candle._native", frozen)]
struct Engine {
    calculator: Calculator,
    hypers: Hypers,
    device: String,
    dtype: DType,
}

/// Borrowed views of the arrays of all frames (validated shapes).
struct Arrays<'a> {
    positions: &'a [f64],
    numbers: &'a [i32],
    orientations: &'a [f64],
    orientation_cols: usize,
    semi_axes: &'a [f64],
    cells: &'a [f64],
    pbc: &'a [bool],
    offsets: &'a [i64],
}

impl Arrays<'_> {
    /// Builds the library's frames (the per-particle data are copied once).
    fn frames(&self, hypers: &Hypers) -> PyResult<Vec<Frame>> {
        let n_frames = self.offsets.len() - 1;
        let mut frames = Vec::with_capacity(n_frames);
        for f in 0..n_frames {
            let (a, b) = (self.offsets[f] as usize, self.offsets[f + 1] as usize);
            let mut arrays = BTreeMap::new();
            for k in 0..3 {
                arrays.insert(
                    format!("c_diameter[{}]", k + 1),
                    PerParticle {
                        ncols: 1,
                        values: (a..b).map(|i| 2.0 * self.semi_axes[3 * i + k]).collect(),
                    },
                );
            }
            let w = self.orientation_cols;
            arrays.insert(
                hypers.rotation_key.clone(),
                PerParticle {
                    ncols: w,
                    values: self.orientations[a * w..b * w].to_vec(),
                },
            );
            let c = &self.cells[9 * f..9 * f + 9];
            frames.push(Frame {
                positions: (a..b)
                    .map(|i| {
                        [
                            self.positions[3 * i],
                            self.positions[3 * i + 1],
                            self.positions[3 * i + 2],
                        ]
                    })
                    .collect(),
                numbers: self.numbers[a..b].to_vec(),
                cell: [[c[0], c[1], c[2]], [c[3], c[4], c[5]], [c[6], c[7], c[8]]],
                pbc: [self.pbc[3 * f], self.pbc[3 * f + 1], self.pbc[3 * f + 2]],
                arrays,
                info: BTreeMap::new(),
            });
        }
        Ok(frames)
    }
}

fn shape_error(name: &str, expected: &str, got: &[usize]) -> PyErr {
    PyValueError::new_err(format!("'{name}' must have shape {expected}, got {got:?}"))
}

fn slice<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    name: &str,
    array: &'a numpy::PyReadonlyArray<'_, T, D>,
) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("'{name}' must be a C-contiguous array")))
}

/// The raw (not orthonormalised) density: the reference density with identity Löwdin
/// matrices and unit radial prefactors, in the output layout of [`Quantity::Density`].
fn raw_density(basis: &Basis, frames: &[Frame]) -> anisoap_candle::Result<Features> {
    let mut raw = basis.clone();
    raw.radial_norms.iter_mut().for_each(|v| *v = 1.0);
    for (w, &n) in raw.lowdin.iter_mut().zip(&basis.n_radial) {
        *w = DMatrix::identity(n, n);
    }
    let system = System::new(frames, &raw)?;
    let density = reference::density(&raw, &system)?;
    let layout = &system.layout;
    let columns = labels::density_columns(layout);
    let samples: Vec<usize> = (0..system.particles.len())
        .filter(|&i| layout.is_sample[i])
        .collect();
    let n_types = layout.types.len();
    let k_len = raw.n_coefficients;
    let mut values = Matrix::zeros(samples.len(), columns.len());
    for (row, &i) in samples.iter().enumerate() {
        let t = system.particles.types[i];
        for (col, label) in columns.rows().enumerate() {
            if label[0] != t {
                continue;
            }
            let (l, m, n, u) = (label[1] as usize, label[2], label[3] as usize, label[4]);
            let k = raw.column(l, (m + label[1]) as usize, n);
            values.data[row * columns.len() + col] =
                density[(i * n_types + layout.type_slot(u)) * k_len + k];
        }
    }
    let frame_start = &system.particles.frame_start;
    Ok(Features {
        frame: samples.iter().map(|&i| system.particles.frame[i]).collect(),
        center: Some(
            samples
                .iter()
                .map(|&i| i - frame_start[system.particles.frame[i]])
                .collect(),
        ),
        values,
        layout: layout.clone(),
        counts: None,
    })
}

fn int_array<'py>(py: Python<'py>, values: &[i32], cols: usize) -> PyResult<Bound<'py, PyAny>> {
    let rows = values.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_slice(py, values)
        .reshape([rows, cols])?
        .into_any())
}

fn blocks_to_py<'py>(py: Python<'py>, blocks: &[Block]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for block in blocks {
        let d = PyDict::new(py);
        d.set_item("center_type", block.center_type)?;
        d.set_item("angular_channel", block.angular_channel)?;
        d.set_item("start", block.columns.start)?;
        d.set_item("stop", block.columns.end)?;
        d.set_item("components", block.components)?;
        d.set_item("property_names", block.properties.names.clone())?;
        d.set_item(
            "properties",
            int_array(py, block.properties.values(), block.properties.names.len())?,
        )?;
        list.append(d)?;
    }
    Ok(list)
}

fn layout_to_py(layout: &Layout, d: &Bound<'_, PyDict>) -> PyResult<()> {
    d.set_item("types", layout.types.clone())?;
    d.set_item("center_types", layout.center_types.clone())?;
    let neighbor_types: Vec<Vec<i32>> = layout
        .neighbor_slots
        .iter()
        .map(|s| s.iter().map(|&k| layout.types[k]).collect())
        .collect();
    d.set_item("neighbor_types", neighbor_types)?;
    d.set_item("n_radial", layout.n_radial.clone())?;
    Ok(())
}

#[pymethods]
impl Engine {
    /// `hypers_json`: the original's keyword arguments as JSON (ints and floats kept apart);
    /// `device`: cpu, cuda, cuda:N, metal; `dtype`: float64 / float32; `chunk_pairs`: pairs
    /// per batch (None: 65536 on the CPU, 1048576 on GPUs).
    #[new]
    #[pyo3(signature = (hypers_json, device="cpu", dtype="float64", chunk_pairs=None))]
    fn new(
        py: Python<'_>,
        hypers_json: &str,
        device: &str,
        dtype: &str,
        chunk_pairs: Option<usize>,
    ) -> PyResult<Self> {
        let hypers_json = hypers_json.to_string();
        let (device, dtype) = (device.to_string(), dtype.to_string());
        py.detach(move || {
            guarded("constructor", || {
                let hypers = Hypers::from_json_str(&hypers_json).map_err(to_py)?;
                let dtype = parse_dtype(&dtype).map_err(to_py)?;
                let device = open_device(&device).map_err(to_py)?;
                check_dtype(&device, dtype).map_err(to_py)?;
                let chunk_pairs =
                    chunk_pairs.unwrap_or(if device.is_cpu() { 1 << 16 } else { 1 << 20 });
                if chunk_pairs == 0 {
                    return Err(PyValueError::new_err("chunk_pairs must be at least 1"));
                }
                let name = device_name(&device);
                let backend = Backend::Batched(BatchedOptions {
                    device,
                    dtype,
                    chunk_pairs,
                    fused_cpu_moments: true,
                    cuda_neighbor_search: true,
                });
                let calculator = Calculator::new(&hypers, backend).map_err(to_py)?;
                Ok(Engine {
                    calculator,
                    hypers,
                    device: name,
                    dtype,
                })
            })
        })
    }

    /// The device in use (`cpu`, `cuda:0`, ...).
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// `float64` or `float32`.
    #[getter]
    fn dtype(&self) -> &'static str {
        if self.dtype == DType::F32 {
            "float32"
        } else {
            "float64"
        }
    }

    /// `N_l` for each l.
    #[getter]
    fn n_radial(&self) -> Vec<usize> {
        self.calculator.basis().n_radial.clone()
    }

    /// Number of orientation columns: 4 (quaternion) or 9 (matrix).
    #[getter]
    fn orientation_columns(&self) -> usize {
        match self.hypers.rotation_type {
            RotationType::Quaternion => 4,
            RotationType::Matrix => 9,
        }
    }

    /// Radial prefactor ν_d of basis function degree `d`.
    fn radial_norm(&self, d: usize) -> f64 {
        radial::radial_norm(&self.hypers, d)
    }

    /// Overlap S_{d,e} of the normalised radial functions of degrees `d` and `e`.
    fn radial_overlap(&self, d: usize, e: usize) -> f64 {
        radial::radial_overlap(self.hypers.radial_basis, d, e)
    }

    /// Computes `quantity` (`power_spectrum` = per-frame mean, `power_spectrum_per_center`,
    /// `density`) for all frames at once. Arrays: positions `[N, 3]` f64, numbers `[N]` i32,
    /// orientations `[N, 4|9]` f64, semi_axes `[N, 3]` f64, cells `[F, 3, 3]` f64, pbc
    /// `[F, 3]` bool, offsets `[F + 1]` i64 (particles of frame f: `offsets[f]..offsets[f+1]`).
    /// `progress(done, total)` is called with pair counts. Returns a dict: `values` `[rows,
    /// cols]`, `frame`, `center` (per-centre rows), layout, `blocks` and column labels.
    #[pyo3(signature = (positions, numbers, orientations, semi_axes, cells, pbc, offsets,
        quantity, normalize=true, property_labels="values", progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn compute<'py>(
        &self,
        py: Python<'py>,
        positions: PyReadonlyArray2<'py, f64>,
        numbers: PyReadonlyArray1<'py, i32>,
        orientations: PyReadonlyArray2<'py, f64>,
        semi_axes: PyReadonlyArray2<'py, f64>,
        cells: PyReadonlyArray3<'py, f64>,
        pbc: PyReadonlyArray2<'py, bool>,
        offsets: PyReadonlyArray1<'py, i64>,
        quantity: &str,
        normalize: bool,
        property_labels: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let quantity = self::quantity(quantity)?;
        let order = property_order(property_labels)?;
        if !normalize && quantity != Quantity::Density {
            return Err(PyValueError::new_err(
                "normalize=False is only available for the density (transform)",
            ));
        }
        let n = positions.shape()[0];
        let n_frames = offsets.len().saturating_sub(1);
        let w = self.orientation_columns();
        if positions.shape() != [n, 3] {
            return Err(shape_error("positions", "(N, 3)", positions.shape()));
        }
        if numbers.shape() != [n] {
            return Err(shape_error("numbers", &format!("({n},)"), numbers.shape()));
        }
        if orientations.shape() != [n, w] {
            return Err(shape_error(
                "orientations",
                &format!("({n}, {w})"),
                orientations.shape(),
            ));
        }
        if semi_axes.shape() != [n, 3] {
            return Err(shape_error(
                "semi_axes",
                &format!("({n}, 3)"),
                semi_axes.shape(),
            ));
        }
        if offsets.len() < 2 {
            return Err(PyValueError::new_err(
                "'offsets' must have n_frames + 1 >= 2 entries (at least one frame)",
            ));
        }
        if cells.shape() != [n_frames, 3, 3] {
            return Err(shape_error(
                "cells",
                &format!("({n_frames}, 3, 3)"),
                cells.shape(),
            ));
        }
        if pbc.shape() != [n_frames, 3] {
            return Err(shape_error("pbc", &format!("({n_frames}, 3)"), pbc.shape()));
        }
        let arrays = Arrays {
            positions: slice("positions", &positions)?,
            numbers: slice("numbers", &numbers)?,
            orientations: slice("orientations", &orientations)?,
            orientation_cols: w,
            semi_axes: slice("semi_axes", &semi_axes)?,
            cells: slice("cells", &cells)?,
            pbc: slice("pbc", &pbc)?,
            offsets: slice("offsets", &offsets)?,
        };
        if arrays.offsets[0] != 0
            || arrays.offsets[n_frames] != n as i64
            || arrays.offsets.windows(2).any(|p| p[1] < p[0])
        {
            return Err(PyValueError::new_err(format!(
                "'offsets' must start at 0, never decrease and end at the number of particles \
                 ({n})"
            )));
        }
        let frames = arrays.frames(&self.hypers)?;
        let calculator = &self.calculator;
        let result = py.detach(|| {
            guarded("compute", || {
                let mut callback_error = None;
                let start = std::time::Instant::now();
                let features = if normalize {
                    calculator.compute(&frames, quantity, &mut |done, total| {
                        if let Some(cb) = &progress {
                            Python::attach(|py| {
                                if let Err(e) = cb.call1(py, (done, total)) {
                                    callback_error.get_or_insert(e);
                                }
                            });
                        }
                    })
                } else {
                    raw_density(calculator.basis(), &frames)
                };
                let elapsed = start.elapsed().as_secs_f64();
                let features = features.map_err(to_py)?;
                match callback_error {
                    Some(e) => Err(e),
                    None => Ok((features, elapsed)),
                }
            })
        })?;
        let (result, compute_s) = result;
        let out = PyDict::new(py);
        // The library's compute time, measured as the CLI measures its own ("in … s").
        out.set_item("compute_s", compute_s)?;
        let rows = result.values.rows;
        let cols = result.values.cols;
        let values = PyArray1::from_vec(py, result.values.data).reshape([rows, cols])?;
        out.set_item("values", values)?;
        let frame: Vec<i64> = result.frame.iter().map(|&f| f as i64).collect();
        out.set_item("frame", PyArray1::from_vec(py, frame))?;
        match &result.center {
            Some(c) => {
                let c: Vec<i64> = c.iter().map(|&c| c as i64).collect();
                out.set_item("center", PyArray1::from_vec(py, c))?
            }
            None => out.set_item("center", py.None())?,
        }
        if let Some(counts) = &result.counts {
            let counts: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
            let n_blocks = result.layout.center_types.len();
            out.set_item(
                "counts",
                PyArray1::from_vec(py, counts).reshape([result.layout.n_frames, n_blocks])?,
            )?;
        }
        layout_to_py(&result.layout, &out)?;
        let layout = &result.layout;
        let (blocks, columns) = match quantity {
            Quantity::Density => (
                labels::density_blocks(layout, order),
                labels::density_columns(layout),
            ),
            _ => (
                labels::power_spectrum_blocks(layout, order),
                labels::power_spectrum_columns(layout),
            ),
        };
        out.set_item("blocks", blocks_to_py(py, &blocks)?)?;
        out.set_item("column_label_names", columns.names.clone())?;
        out.set_item(
            "column_labels",
            int_array(py, columns.values(), columns.names.len())?,
        )?;
        let names = match quantity {
            Quantity::Density => layout.density_labels(),
            _ => layout.power_spectrum_labels(),
        };
        out.set_item("column_names", names)?;
        Ok(out)
    }
}

/// Native part of `anisoap_candle`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CUDA", cfg!(feature = "cuda"))?;
    m.add("METAL", cfg!(feature = "metal"))?;
    Ok(())
}
