//! The fused CUDA kernels (built with the `cuda` feature): NVRTC compilation, the uploaded
//! tables, staging and launches. `ops` holds the `CustomOp3` implementations.

/// `match` on a [`FloatTables`] with one body for both element types: `$body` sees `$T`
/// (`f64` or `f32`) and `$t` (the typed [`Tables`]), so an op states its launch once.
macro_rules! with_float_tables {
    ($tables:expr, |$T:ident, $t:ident| $body:expr) => {
        match $tables {
            FloatTables::F64($t) => {
                type $T = f64;
                $body
            }
            FloatTables::F32($t) => {
                type $T = f32;
                $body
            }
        }
    };
}

/// `match` on a `differentiable::Coefficients` with one body for both element types:
/// `$body` sees `$T` (`f64` or `f32`) and the typed slices `$weights`, `$values`.
macro_rules! with_coefficients {
    ($coefficients:expr, |$T:ident, $weights:ident, $values:ident| $body:expr) => {
        match $coefficients {
            Coefficients::F64 {
                weights: $weights,
                values: $values,
            } => {
                type $T = f64;
                $body
            }
            Coefficients::F32 {
                weights: $weights,
                values: $values,
            } => {
                type $T = f32;
                $body
            }
        }
    };
}

mod differentiable;
mod gather_ops;
mod ops;
mod pair_density;
mod spectrum;

use crate::basis::monomials::RecurrenceStep;
use crate::batched::{BatchedOptions, ParticleTensors};
use crate::error::{Error, Result};
use crate::system::{Pairs, System};
use candle_core::cuda_backend::cudarc::driver::{
    sys, CudaEvent, CudaFunction, CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaDType, CudaDevice, WrapErr};
use candle_core::{DType, Tensor, WithDType};
use ops::NeighborSum;
use std::sync::{Arc, Mutex};

/// Default budget of dynamic shared memory per block: two blocks fit on an H100/H200
/// multiprocessor (228 KiB).
const SHARED_BUDGET: usize = 110 * 1024;
/// Most threads per block of the pair kernel.
const MAX_THREADS: usize = 256;
/// Threads per block of the neighbour-sum kernel.
const SUM_THREADS: u32 = 256;

/// Launch shape of the pair kernel: `(blockDim.x, blockDim.y)` and dynamic shared bytes. The
/// table kernel runs one pair per thread in `(threads, 1)` blocks; the baked one 32 pairs per
/// block over `(32, parts)` threads (`super::baked`).
#[derive(Debug, Clone, Copy)]
struct PairLaunch {
    block: (u32, u32),
    shared_bytes: u32,
}

/// PTX per (kernel file, compute capability): NVRTC runs once per process, file and
/// architecture (and, through [`super::ptx_cache`], once per machine).
static PTX: Mutex<Vec<(PtxKey, String)>> = Mutex::new(Vec::new());

/// Kernel file name, a hash of its source (baked kernels differ per basis) and compute
/// capability (major, minor).
type PtxKey = (&'static str, u64, i32, i32);

/// Where a module's PTX came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtxOrigin {
    /// Compiled by NVRTC, or this process's earlier compilation.
    Compiled,
    /// Read from the disk cache.
    Disk,
}

/// The PTX of the CUDA C++ `source` (file `name`) for compute capability `major.minor`:
/// this process's, else the disk cache's ([`super::ptx_cache`]), else compiled with NVRTC
/// (and written to the disk cache); `fmad: Some(false)` forbids contracting multiply-adds into
/// FMAs; `fresh` skips the disk cache (and replaces its file). The error names `fallback`, the
/// flag that runs without these kernels.
fn compiled_ptx(
    name: &'static str,
    source: &str,
    fmad: Option<bool>,
    (major, minor): (i32, i32),
    fallback: &str,
    fresh: bool,
) -> Result<(String, PtxOrigin)> {
    let mut cache = PTX.lock().unwrap_or_else(|e| e.into_inner());
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        h.finish()
    };
    let key = (name, hash, major, minor);
    if fresh {
        cache.retain(|(k, _)| *k != key);
    } else if let Some((_, ptx)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok((ptx.clone(), PtxOrigin::Compiled));
    }
    let arch = format!("--gpu-architecture=compute_{major}{minor}");
    let disk = super::ptx_cache::cache_dir().map(|dir| {
        let fmad_option = format!(
            "--fmad={}",
            fmad.map_or("default", |f| if f { "true" } else { "false" })
        );
        super::ptx_cache::entry_path(&dir, name, source, &[arch.clone(), fmad_option])
    });
    if let Some(ptx) = disk
        .as_deref()
        .filter(|_| !fresh)
        .and_then(super::ptx_cache::read)
    {
        tracing::debug!(file = name, "PTX from the disk cache");
        cache.push((key, ptx.clone()));
        return Ok((ptx, PtxOrigin::Disk));
    }
    let _span = tracing::debug_span!("nvrtc_compile", file = name).entered();
    let options = nvrtc::CompileOptions {
        fmad,
        options: vec![arch],
        name: Some(name.into()),
        ..Default::default()
    };
    let ptx = nvrtc::compile_ptx_with_opts(source, options)
        .map_err(|e| {
            Error::Device(format!(
                "NVRTC could not compile {name} ({e}); {fallback} runs without it"
            ))
        })?
        .to_src();
    if let Some(path) = &disk {
        // A cache that cannot be written only costs the next run a compilation.
        if let Err(e) = super::ptx_cache::write(path, &ptx) {
            tracing::debug!(path = %path.display(), error = %e, "PTX not cached");
        }
    }
    cache.push((key, ptx.clone()));
    Ok((ptx, PtxOrigin::Compiled))
}

/// The module of the CUDA C++ `source` (file `name`) loaded into `ctx`, its PTX from
/// [`compiled_ptx`]; PTX from the disk cache that the driver refuses (another driver or
/// toolkit wrote it) is compiled afresh and replaces the cached file.
pub(crate) fn load_module(
    ctx: &Arc<candle_core::cuda_backend::cudarc::driver::CudaContext>,
    name: &'static str,
    source: &str,
    fmad: Option<bool>,
    fallback: &str,
) -> Result<Arc<candle_core::cuda_backend::cudarc::driver::CudaModule>> {
    let cc = ctx.compute_capability().w()?;
    let (ptx, origin) = compiled_ptx(name, source, fmad, cc, fallback, false)?;
    match ctx.load_module(nvrtc::Ptx::from_src(ptx)) {
        Ok(module) => Ok(module),
        Err(e) if origin == PtxOrigin::Disk => {
            tracing::debug!(file = name, error = %e, "cached PTX refused: compiling it again");
            let (ptx, _) = compiled_ptx(name, source, fmad, cc, fallback, true)?;
            Ok(ctx.load_module(nvrtc::Ptx::from_src(ptx)).w()?)
        }
        Err(e) => Ok(Err(e).w()?),
    }
}

/// One chunk's pair data on the device, ready for the pair kernel
/// ([`CudaKernels::stage`]).
pub struct StagedPairs {
    /// Precision rows of each pair's neighbour, `[P, 6]`.
    precision: Tensor,
    /// `1/(a1 a2 a3)` of each pair's neighbour, `[P]`.
    inv: Tensor,
    /// `r_ij`, `[P, 3]`.
    r: Tensor,
    /// Pair segments per centre, `[C + 1]`.
    seg: Tensor,
    /// Neighbour type slot of each pair, `[P]`.
    slot: Tensor,
    n_centers: usize,
    n_types: usize,
    /// Neighbour of each pair, `[P]` u32, when the pairs were found on the device.
    neighbors: Option<Tensor>,
    /// The device search's error flag, `[1]` u32 (0: the pairs are the counting pass's).
    search_error: Option<Tensor>,
    /// Recorded on the staging thread's stream after its last copy or kernel. Candle's CUDA
    /// device issues work on the per-thread default stream, so work staged by the chunk
    /// loop's producer thread is not ordered with the consumer thread's kernels: the
    /// consumer's stream waits on this event before anything reads the staged data.
    ready: CudaEvent,
}

impl StagedPairs {
    /// Pairs found and staged on the device by [`crate::cuda_search`]: the pair kernel's
    /// inputs, the neighbours, and the search's error flag (checked before any kernel
    /// reads the rows).
    #[allow(clippy::too_many_arguments)]
    pub fn from_device_search(
        precision: Tensor,
        inv: Tensor,
        r: Tensor,
        seg: Tensor,
        slot: Tensor,
        n_centers: usize,
        n_types: usize,
        neighbors: Tensor,
        search_error: Tensor,
        ready: CudaEvent,
    ) -> Self {
        StagedPairs {
            precision,
            inv,
            r,
            seg,
            slot,
            n_centers,
            n_types,
            neighbors: Some(neighbors),
            search_error: Some(search_error),
            ready,
        }
    }

    /// Makes the calling thread's stream wait until the staging work is done.
    fn wait_until_staged(&self) -> Result<()> {
        if let candle_core::Device::Cuda(dev) = self.r.device() {
            dev.cuda_stream().wait(&self.ready).w()?;
        }
        Ok(())
    }

    /// Fails when the device search flagged its pairs as not the counting pass's.
    fn check_search(&self) -> Result<()> {
        self.wait_until_staged()?;
        let Some(flag) = &self.search_error else {
            return Ok(());
        };
        let flag = flag.to_vec1::<u32>()?.first().copied().unwrap_or(0);
        if flag == 0 {
            return Ok(());
        }
        Err(Error::Device(format!(
            "the CUDA neighbour search disagrees with the counting pass (flag {flag}: {}); \
             --host-neighbor-search avoids it",
            if flag & 1 != 0 {
                "a cell shift outside 32 bits"
            } else {
                "different pair counts"
            }
        )))
    }

    /// The neighbours and `r_ij` (widened to f64) of the staged pairs, on the host (after
    /// the search's check): for tests of the device search.
    pub fn neighbors_and_vectors(&self) -> Result<(Vec<u32>, Vec<f64>)> {
        self.check_search()?;
        let neighbors = match &self.neighbors {
            Some(n) => n.to_vec1::<u32>()?,
            None => {
                return Err(Error::Device(
                    "these pairs were staged from the host".into(),
                ))
            }
        };
        let r = self
            .r
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Ok((neighbors, r))
    }
}

/// Host buffers a chunk's indices are staged in before the copy to the device, one set
/// per host thread (each device worker is its own thread), kept between chunks.
#[derive(Default)]
struct Staging {
    neighbors: Vec<u32>,
    seg: Vec<u32>,
    r32: Vec<f32>,
}

thread_local! {
    static STAGING: std::cell::RefCell<Staging> = std::cell::RefCell::new(Staging::default());
}

/// Per-dtype tables: the recurrence weights and the values of `B`'s non-zeros.
struct Tables<T> {
    weights: CudaSlice<T>,
    values: CudaSlice<T>,
    inv_width2: T,
    /// Cutoff radius `r_c` and smooth-cutoff width `w` (0: the original's step).
    cutoff: T,
    smooth_width: T,
    pair_fn: CudaFunction,
    sum_fn: CudaFunction,
    /// The power-spectrum kernels (`kernels/power_spectrum.cu`).
    spectrum: spectrum::SpectrumKernels,
}

enum FloatTables {
    F64(Tables<f64>),
    F32(Tables<f32>),
}

/// Uploaded constants of one basis on one CUDA device, and the loaded kernels.
pub struct CudaKernels {
    device: candle_core::Device,
    n_steps: u32,
    n_moments: usize,
    n_cols: u32,
    /// `[n_steps, 5]`: dir, parent, grandparents.
    plan: CudaSlice<u32>,
    /// `[K + 1]` column starts of `B`'s non-zeros.
    col_start: CudaSlice<u32>,
    /// `[nnz]` rows (packed monomials) of the non-zeros.
    rows: CudaSlice<u32>,
    tables: FloatTables,
    threads: u32,
    /// Block shape and shared memory of the pair kernel in use.
    pair_launch: PairLaunch,
    /// The differentiable pair kernel and its backward (None when its shared memory does not
    /// fit).
    differentiable: Option<Arc<differentiable::DifferentiableKernels>>,
    /// The deterministic gather and scatter-sum kernels of the differentiable path.
    gather: gather_ops::GatherKernels,
}

impl CudaKernels {
    /// Compiles (once per process) and loads the kernels and uploads the tables of one
    /// basis, for `options.device` and `options.dtype`. `None` when the device is not CUDA
    /// or the moments of one pair do not fit in shared memory (the tensor-op path is used
    /// then). `dense_b` is `B` row-major with `n_cols` columns; `smooth_cutoff` is
    /// `[r_c, w]` of the smooth cutoff ([`crate::cutoff`]; `w = 0`: the original's step).
    pub fn new(
        plan: &[RecurrenceStep],
        dense_b: &[f64],
        n_cols: usize,
        inv_width2: f64,
        smooth_cutoff: [f64; 2],
        options: &BatchedOptions,
    ) -> Result<Option<Self>> {
        let candle_core::Device::Cuda(dev) = &options.device else {
            return Ok(None);
        };
        let n_moments = plan.len() + 1;
        let elem = match options.dtype {
            DType::F64 => 8,
            DType::F32 => 4,
            other => return Err(Error::Device(format!("dtype {other:?} is not supported"))),
        };
        let stream = dev.cuda_stream();
        let ctx = stream.context();
        let optin = ctx
            .attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .w()?
            .max(48 * 1024) as usize;
        let per_thread = n_moments * elem;
        let Some(threads) = threads_per_block(per_thread, optin) else {
            tracing::warn!(
                moments = n_moments,
                "the moments of one pair do not fit in shared memory: CUDA uses the \
                 tensor-op moments"
            );
            return Ok(None);
        };
        let shared_bytes = threads * per_thread;
        let suffix = if options.dtype == DType::F64 {
            "f64"
        } else {
            "f32"
        };
        // The basis baked into the pair kernel's source (super::baked) unless it is too large,
        // its block's shared memory does not fit, or ANISOAP_CUDA_KERNEL=tables asks for the
        // table-driven kernel.
        let tables_only = std::env::var("ANISOAP_CUDA_KERNEL").is_ok_and(|v| v == "tables");
        let baked = (!tables_only)
            .then(|| {
                super::baked::source(
                    plan,
                    dense_b,
                    n_cols,
                    super::baked::parts_from_env(),
                    suffix,
                )
            })
            .flatten()
            .filter(|b| b.shared_values * elem <= optin);
        let (module, pair_name, pair_launch) = match baked {
            Some(baked) => {
                let source = format!("{}\n{}", super::SOURCE, baked.source);
                let module = load_module(
                    ctx,
                    "pair_coefficients_baked.cu",
                    &source,
                    None,
                    "--tensor-op-moments",
                )?;
                let launch = PairLaunch {
                    block: (super::baked::PAIRS_PER_BLOCK as u32, baked.parts as u32),
                    shared_bytes: (baked.shared_values * elem) as u32,
                };
                (module, super::baked::kernel_name(suffix), launch)
            }
            None => {
                let module = load_module(
                    ctx,
                    "pair_coefficients.cu",
                    super::SOURCE,
                    None,
                    "--tensor-op-moments",
                )?;
                let launch = PairLaunch {
                    block: (threads as u32, 1),
                    shared_bytes: shared_bytes as u32,
                };
                (module, format!("pair_coefficients_{suffix}"), launch)
            }
        };
        let sum_name = format!("neighbor_sum_{suffix}");
        tracing::debug!(kernel = %pair_name, block = ?pair_launch.block, "fused CUDA pair kernel");
        let pair_fn = module.load_function(&pair_name).w()?;
        let sum_fn = module.load_function(&sum_name).w()?;
        pair_fn
            .set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                pair_launch.shared_bytes as i32,
            )
            .w()?;
        // Shared memory bounds how many blocks share a multiprocessor: ask for all of it
        // (a hint; L1 keeps the rest).
        pair_fn
            .set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                100,
            )
            .w()?;

        // Tables: the plan, B by columns.
        let mut plan_words = Vec::with_capacity(plan.len() * 5);
        let mut weights = Vec::with_capacity(plan.len() * 3);
        // Moment indices times the block size: the kernel's shared-memory offsets.
        for s in plan {
            let g = s.grandparent.map(|g| g * threads);
            plan_words.extend([s.dir, s.parent * threads, g[0], g[1], g[2]]);
            weights.extend(s.weight.map(|w| w as f64));
        }
        let n_rows = dense_b.len() / n_cols.max(1);
        let mut col_start = vec![0u32];
        let mut rows = Vec::new();
        let mut values = Vec::new();
        for c in 0..n_cols {
            for r in 0..n_rows {
                let v = dense_b[r * n_cols + c];
                if v != 0.0 {
                    rows.push(r * threads);
                    values.push(v);
                }
            }
            col_start.push(rows.len() as u32);
        }
        // The kernel's indices stay inside the tables and shared memory only if these hold
        // (they are what recurrence_plan and Basis build; checked, not assumed): every
        // moment index read by step k is at most k, so (index * threads + tid) stays below
        // n_moments * threads, the shared memory of one block.
        let plan_ok = plan
            .iter()
            .enumerate()
            .all(|(k, s)| s.dir < 3 && s.parent <= k && s.grandparent.iter().all(|&g| g <= k));
        if !plan_ok || n_rows != n_moments || dense_b.len() != n_rows * n_cols {
            return Err(Error::Device(
                "inconsistent recurrence plan or contraction matrix".into(),
            ));
        }
        let to_u32 = |v: Vec<usize>| -> Result<Vec<u32>> {
            v.into_iter()
                .map(|x| u32::try_from(x).map_err(|_| Error::Device("table too large".into())))
                .collect()
        };
        let plan_words = to_u32(plan_words)?;
        let rows = to_u32(rows)?;
        let tables = match options.dtype {
            DType::F64 => FloatTables::F64(Tables {
                weights: dev.clone_htod(&weights)?,
                values: dev.clone_htod(&values)?,
                inv_width2,
                cutoff: smooth_cutoff[0],
                smooth_width: smooth_cutoff[1],
                pair_fn,
                sum_fn,
                spectrum: spectrum::SpectrumKernels::load(ctx, "f64")?,
            }),
            _ => {
                let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
                FloatTables::F32(Tables {
                    weights: dev.clone_htod(&f(&weights))?,
                    values: dev.clone_htod(&f(&values))?,
                    inv_width2: inv_width2 as f32,
                    cutoff: smooth_cutoff[0] as f32,
                    smooth_width: smooth_cutoff[1] as f32,
                    pair_fn,
                    sum_fn,
                    spectrum: spectrum::SpectrumKernels::load(ctx, "f32")?,
                })
            }
        };
        let differentiable = differentiable::DifferentiableKernels::new(
            dev,
            &module,
            options.dtype,
            plan,
            differentiable::HostTables {
                plan_words: &plan_words,
                weights: &weights,
                col_start: &col_start,
                rows: &rows,
                values: &values,
            },
            n_cols,
            threads,
            optin,
        )?
        .map(Arc::new);
        let gather = gather_ops::GatherKernels {
            gather_fn: module.load_function(&format!("gather_rows_{suffix}")).w()?,
            sum_fn: module
                .load_function(&format!("segment_sum_rows_{suffix}"))
                .w()?,
            chunk_sum_fn: module
                .load_function(&format!("segment_sum_chunk_{suffix}"))
                .w()?,
            scatter_fn: module
                .load_function(&format!("scatter_rows_{suffix}"))
                .w()?,
            dtype: options.dtype,
        };
        let kernels = CudaKernels {
            device: options.device.clone(),
            n_steps: plan.len() as u32,
            n_moments,
            n_cols: n_cols as u32,
            plan: dev.clone_htod(&plan_words)?,
            col_start: dev.clone_htod(&col_start)?,
            rows: dev.clone_htod(&rows)?,
            tables,
            threads: threads as u32,
            pair_launch,
            differentiable,
            gather,
        };
        // The uploads ran on this thread's stream; workers launch from their own threads'
        // streams, so the tables must have landed before this returns.
        stream.synchronize().w()?;
        Ok(Some(kernels))
    }

    /// Pair coefficients `[P, K]` from Gaussian parameters `[P, 10]` (`μ_x μ_y μ_z Σ_00 Σ_01
    /// Σ_02 Σ_11 Σ_12 Σ_22 scale`, the basis dtype) with an analytic backward
    /// (`moments_contract_bwd` in `kernels/pair_coefficients.cu`), so gradients flow to the
    /// parameters; `None` when the backward's shared memory does not fit this basis.
    pub fn differentiable_coefficients(&self, params: &Tensor) -> Result<Option<Tensor>> {
        let Some(kernels) = &self.differentiable else {
            return Ok(None);
        };
        let _span = tracing::trace_span!("cuda_moments_contract").entered();
        let op = differentiable::MomentsContract::new(kernels.clone());
        Ok(Some(params.contiguous()?.apply_op1(op)?))
    }

    /// The density `[n_targets, K]` of pairs with Gaussian parameters `[P, 10]` (as
    /// [`CudaKernels::differentiable_coefficients`] takes), pair `q` added to target
    /// `destination.index[q]`: the coefficients summed by [`CudaKernels::scatter_sum_rows`],
    /// to the bit, but in chunks of at most `chunk_pairs` pairs, so memory stays
    /// `chunk_pairs · K` however many pairs there are (`fused_cuda/imp/pair_density.rs`);
    /// differentiable in the parameters. `None` when the backward's shared memory does not fit
    /// this basis.
    pub fn pair_density(
        &self,
        params: &Tensor,
        destination: &crate::fused_cuda::GatherIndex,
        chunk_pairs: usize,
    ) -> Result<Option<Tensor>> {
        let Some(kernels) = &self.differentiable else {
            return Ok(None);
        };
        let _span = tracing::trace_span!("cuda_pair_density").entered();
        let op = pair_density::PairDensity {
            kernels: kernels.clone(),
            rows: self.gather.clone(),
            destination: destination.clone(),
            chunk_pairs: chunk_pairs.max(1),
        };
        Ok(Some(params.contiguous()?.apply_op1(op)?))
    }

    /// `src[index[q]]` for every row `q` of `index` (`src` `[n_targets, W]`, the basis dtype),
    /// differentiable: the backward is [`CudaKernels::scatter_sum_rows`] (deterministic, one
    /// thread per element; candle's CUDA `index_add`, the backward of `index_select`, runs one
    /// thread per column over all rows).
    pub fn gather_rows(
        &self,
        src: &Tensor,
        index: &crate::fused_cuda::GatherIndex,
    ) -> Result<Tensor> {
        let op = gather_ops::RowsOp {
            kernels: self.gather.clone(),
            index: index.clone(),
            direction: gather_ops::Direction::Gather,
        };
        Ok(src.contiguous()?.apply_op1(op)?)
    }

    /// `Σ_{q: index[q] = t} src[q]` for every target `t` (`src` `[P, W]`), in row order;
    /// differentiable: the backward is [`CudaKernels::gather_rows`].
    pub fn scatter_sum_rows(
        &self,
        src: &Tensor,
        index: &crate::fused_cuda::GatherIndex,
    ) -> Result<Tensor> {
        let op = gather_ops::RowsOp {
            kernels: self.gather.clone(),
            index: index.clone(),
            direction: gather_ops::Direction::ScatterSum,
        };
        Ok(src.contiguous()?.apply_op1(op)?)
    }

    /// Threads per block of the pair kernel.
    pub fn threads_per_block(&self) -> u32 {
        self.threads
    }

    /// Pair coefficients `[P, K]` from precision rows `[P, 6]`, `1/(a1 a2 a3)` `[P]` and
    /// `r_ij` `[P, 3]` (contiguous, the basis dtype): the fused kernel.
    pub fn pair_coefficients(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<Tensor> {
        let _span = tracing::trace_span!("cuda_pair_coefficients").entered();
        let coefficients = precision.apply_op3_no_bwd(inv_axes_product, r, self)?;
        super::profile_sync(&self.device)?;
        Ok(coefficients)
    }

    /// Normalised density `[C, n_types, K]` of the centres `centers` from their `pairs`:
    /// neighbour data gathered on the device, the pair kernel, then the neighbour sum
    /// ([`CudaKernels::stage`] then [`CudaKernels::density_of_staged`]).
    pub fn chunk_density(
        &self,
        system: &System,
        particles: &ParticleTensors,
        centers: std::ops::Range<usize>,
        pairs: &Pairs,
    ) -> Result<Tensor> {
        let staged = self.stage(system, particles, centers, pairs)?;
        self.density_of_staged(staged)
    }

    /// The part of a chunk that needs none of the device's earlier results: the pair data
    /// staged on the host, copied to the device, and the neighbours' precision rows
    /// gathered there. The chunk loop runs it on its search thread, one chunk ahead.
    pub fn stage(
        &self,
        system: &System,
        particles: &ParticleTensors,
        centers: std::ops::Range<usize>,
        pairs: &Pairs,
    ) -> Result<StagedPairs> {
        let device = &self.device;
        let n_types = system.layout.types.len();
        let n_centers = centers.len();
        let p = pairs.len();
        if u32::try_from(p).is_err() || u32::try_from(n_centers).is_err() {
            return Err(Error::Device(
                "too many pairs in one chunk for the CUDA kernels".into(),
            ));
        }
        let kernel_f64 = matches!(self.tables, FloatTables::F64(_));
        let (precision, inv, r, seg, slot) = STAGING.with(|staging| -> Result<_> {
            let mut staging = staging.borrow_mut();
            let staging = &mut *staging;
            let _span = tracing::trace_span!("cuda_upload", pairs = p).entered();
            // Host staging buffers are reused chunk after chunk (fresh ones would fault in
            // ~30 bytes per pair of new pages every chunk), then copied to the device. The
            // loops are serial on purpose: this thread runs while the producer thread's
            // neighbour search keeps rayon's pool busy, and a parallel loop here would
            // queue behind it (a few ms per 1e6 pairs serially).
            // The neighbours' type slots are gathered on the device from
            // `particles.type_slots` (checked below n_types when uploaded).
            staging.neighbors.clear();
            for &j in &pairs.neighbors {
                let j = u32::try_from(j).map_err(|_| {
                    Error::Device("particle index too large for the CUDA kernels".into())
                })?;
                staging.neighbors.push(j);
            }
            let neighbors = Tensor::from_slice(&staging.neighbors, p, device)?;
            // r_ij in the kernel's dtype (f32 halves the upload).
            let r = if kernel_f64 {
                let flat: &[f64] = pairs.vectors.as_flattened();
                Tensor::from_slice(flat, (p, 3), device)?
            } else {
                staging.r32.clear();
                staging
                    .r32
                    .extend(pairs.vectors.as_flattened().iter().map(|&x| x as f32));
                Tensor::from_slice(&staging.r32, (p, 3), device)?
            };
            // Segments of pairs per centre (pairs come grouped by centre, in centre order).
            staging.seg.clear();
            staging.seg.resize(n_centers + 1, 0);
            let seg = &mut staging.seg;
            let mut previous = centers.start;
            for &i in &pairs.centers {
                if i < previous || i >= centers.end {
                    return Err(Error::Device(
                        "pairs are not grouped by centre in centre order".into(),
                    ));
                }
                previous = i;
                seg[i - centers.start + 1] += 1;
            }
            for c in 0..n_centers {
                seg[c + 1] += seg[c];
            }
            Ok((
                particles.precision.index_select(&neighbors, 0)?,
                particles.inv_axes_product.index_select(&neighbors, 0)?,
                r,
                Tensor::from_slice(&staging.seg, n_centers + 1, device)?,
                particles.type_slots.index_select(&neighbors, 0)?,
            ))
        })?;
        let candle_core::Device::Cuda(dev) = device else {
            return Err(Error::Device("the CUDA kernels need a CUDA device".into()));
        };
        let ready = dev.cuda_stream().record_event(None).w()?;
        Ok(StagedPairs {
            precision,
            inv,
            r,
            seg,
            slot,
            n_centers,
            n_types,
            neighbors: None,
            search_error: None,
            ready,
        })
    }

    /// The density of a staged chunk: the pair kernel, then the neighbour sum.
    pub fn density_of_staged(&self, staged: StagedPairs) -> Result<Tensor> {
        staged.check_search()?;
        let StagedPairs {
            precision,
            inv,
            r,
            seg,
            slot,
            n_centers,
            n_types,
            ..
        } = staged;
        let coefficients = self.pair_coefficients(&precision, &inv, &r)?;
        let _span = tracing::trace_span!("cuda_neighbor_sum").entered();
        let op = NeighborSum {
            kernels: self,
            n_centers,
            n_types,
        };
        let density = coefficients.apply_op3_no_bwd(&seg, &slot, &op)?;
        crate::fused_cuda::profile_sync(&self.device)?;
        Ok(density.reshape((n_centers, n_types, self.n_cols as usize))?)
    }

    fn launch_pairs<T: DeviceRepr + CudaDType + WithDType>(
        &self,
        dev: &CudaDevice,
        inputs: [CudaView<'_, T>; 3],
        tables: &Tables<T>,
        n_pairs: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        let n_cols = self.n_cols as usize;
        // SAFETY: the kernel writes every element of `out`: thread q < n_pairs writes
        // out[q * K + c] for all c < K, and the grid covers every q < n_pairs.
        let mut out = unsafe { dev.alloc::<T>(n_pairs * n_cols) }?;
        if n_pairs == 0 {
            return Ok(out);
        }
        let stream = dev.cuda_stream();
        let n_pairs_u32 = n_pairs as u32;
        let [precision, inv, r] = inputs;
        let (pairs_per_block, parts) = self.pair_launch.block;
        let config = LaunchConfig {
            grid_dim: (n_pairs_u32.div_ceil(pairs_per_block), 1, 1),
            block_dim: (pairs_per_block, parts, 1),
            shared_mem_bytes: self.pair_launch.shared_bytes,
        };
        let mut builder = stream.launch_builder(&tables.pair_fn);
        builder
            .arg(&precision)
            .arg(&inv)
            .arg(&r)
            .arg(&self.plan)
            .arg(&tables.weights)
            .arg(&self.n_steps)
            .arg(&self.col_start)
            .arg(&self.rows)
            .arg(&tables.values)
            .arg(&self.n_cols)
            .arg(&tables.inv_width2)
            .arg(&tables.cutoff)
            .arg(&tables.smooth_width)
            .arg(&n_pairs_u32)
            .arg(&mut out);
        // SAFETY: the arguments match the kernel's signature in kernels/pair_coefficients.cu
        // (pointers to T / u32 in this order, u32 and T scalars: s, cutoff, width; the
        // scalars are never used as indices). Bounds: thread q reads precision[6q..6q+6],
        // inv[q], r[3q..3q+3] only for q < n_pairs, and cuda_fwd checked that these views
        // hold 6P, P and 3P elements; the tables were built in `new` with
        // plan = 5 n_steps words, weights = 3 n_steps, col_start = K + 1 (non-decreasing, last
        // = nnz), rows/values = nnz entries, every row < n_moments, dir < 3 and every
        // parent/grandparent of step k at most k (checked there), all moment indices stored
        // times `threads`, the block size launched here; so every shared-memory index
        // i * threads + tid has i < n_moments and tid < threads, inside the shared_bytes =
        // threads * n_moments * size_of::<T>() requested here (and allowed by the function
        // attribute set in `new`).
        // For the table kernel pair_launch is (threads, 1) blocks with that shared memory.
        // The baked kernel (super::baked, chosen in `new`, launched as (32, parts) blocks with
        // pair_launch.shared_bytes = max(32 n_moments, 33 K) values, checked against the
        // opt-in limit there) has the same signature and reads the same inputs, at the clamped
        // pair min(q, n_pairs - 1) (n_pairs >= 1 here); its shared-memory indices are
        // i * 32 + lane with i < n_moments (baked::source checked the plan) and
        // c * 33 + i with c < K, i < 32, both inside the block's shared memory; block b writes
        // out[32 b K .. (32 b + n_live) K) with n_live = min(32, n_pairs - 32 b), inside out.
        // out holds n_pairs * K elements and pair q's row is written by its own block only.
        unsafe { builder.launch(config) }.w()?;
        drop(builder);
        Ok(out)
    }

    fn launch_sum<T: DeviceRepr + CudaDType + WithDType>(
        &self,
        dev: &CudaDevice,
        inputs: (CudaView<'_, T>, CudaView<'_, u32>, CudaView<'_, u32>),
        func: &CudaFunction,
        n_centers: usize,
        n_types: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        let n_cols = self.n_cols as usize;
        let total = n_centers * n_cols;
        // SAFETY: thread (c, k) sets out[c, t, k] for every t < n_types before adding to it,
        // and the grid covers every (c, k), so every element is written.
        let mut out = unsafe { dev.alloc::<T>(n_centers * n_types * n_cols) }?;
        if total == 0 || n_types == 0 {
            return Ok(out);
        }
        let blocks = u32::try_from(total.div_ceil(SUM_THREADS as usize))
            .map_err(|_| candle_core::Error::Msg("neighbour sum grid too large".into()))?;
        let stream = dev.cuda_stream();
        let (coef, seg, slot) = inputs;
        let (c32, t32) = (n_centers as u32, n_types as u32);
        let config = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (SUM_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = stream.launch_builder(func);
        builder
            .arg(&coef)
            .arg(&seg)
            .arg(&slot)
            .arg(&c32)
            .arg(&t32)
            .arg(&self.n_cols)
            .arg(&mut out);
        // SAFETY: arguments match neighbor_sum_<T>'s signature. Thread idx < C K (guarded in
        // the kernel) reads seg[c], seg[c + 1] with c < C (seg holds C + 1 entries, checked
        // in cuda_fwd), and for q in seg[c]..seg[c + 1] (seg is a prefix sum of the pair
        // counts, so q < P) reads slot[q] (P entries, each < n_types: gathered from
        // ParticleTensors::type_slots, whose every value was checked below the system's
        // number of types when uploaded) and coef[q K + k] (P K entries, checked in cuda_fwd); it writes
        // out[(c n_types + t) K + k] with t < n_types, inside the C n_types K allocated.
        unsafe { builder.launch(config) }.w()?;
        drop(builder);
        Ok(out)
    }
}

/// Threads per block (a multiple of 32, at most [`MAX_THREADS`]) whose moments fit in
/// [`SHARED_BUDGET`] (or, when not even 32 do, in the device's opt-in maximum);
/// `ANISOAP_CUDA_THREADS` overrides it (for tuning), within the same limit.
fn threads_per_block(per_thread: usize, optin: usize) -> Option<usize> {
    let fit = |budget: usize| (budget / per_thread.max(1) / 32 * 32).min(MAX_THREADS);
    let limit = fit(optin);
    if limit < 32 {
        return None;
    }
    let default = fit(SHARED_BUDGET).max(32);
    let wanted = std::env::var("ANISOAP_CUDA_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|t| (t / 32 * 32).clamp(32, limit));
    Some(wanted.unwrap_or(default).min(limit))
}

// Backends are shared between worker threads.
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<CudaKernels>();
};

impl std::fmt::Debug for CudaKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaKernels")
            .field("moments", &self.n_moments)
            .field("columns", &self.n_cols)
            .field("threads", &self.threads)
            .field("pair_launch", &self.pair_launch)
            .finish()
    }
}
