//! The pair kernel as a differentiable Candle op on CUDA ([`MomentsContract`]): Gaussian
//! parameters `[P, 10]` (`μ`, the six entries of `Σ`, the scalar factor) in, pair coefficients
//! `[P, K]` out, with an analytic backward (`moments_contract_bwd_<T>` in
//! `kernels/pair_coefficients.cu`: `Bᵀ` of the incoming gradient, then the Gaussian-moment
//! identities). The parameters themselves come from differentiable tensor ops
//! ([`crate::batched::BatchedBasis::gaussian_parameters`]), so autograd carries the gradient on
//! to `r_ij`, the precision rows and `1/(a1 a2 a3)`.

use super::ops::view;
use crate::basis::monomials::RecurrenceStep;
use crate::error::Result;
use candle_core::cuda_backend::cudarc::driver::{
    sys, CudaFunction, CudaModule, CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Columns of the parameter rows: `μ_x μ_y μ_z Σ_00 Σ_01 Σ_02 Σ_11 Σ_12 Σ_22 scale`.
pub const PARAMS: usize = 10;

/// Words per moment of the identity table (`lower` in the kernel).
const LOWER: usize = 12;

/// The pair kernel's host tables as `CudaKernels::new` built them (moment indices times the
/// block size): plan words, Σ weights, `B`'s column starts, rows and values.
pub(crate) struct HostTables<'a> {
    pub(crate) plan_words: &'a [u32],
    pub(crate) weights: &'a [f64],
    pub(crate) col_start: &'a [u32],
    pub(crate) rows: &'a [u32],
    pub(crate) values: &'a [f64],
}

/// The Σ weights and `B`'s values of the recurrence, in one dtype.
pub(super) enum Coefficients {
    F64 {
        weights: CudaSlice<f64>,
        values: CudaSlice<f64>,
    },
    F32 {
        weights: CudaSlice<f32>,
        values: CudaSlice<f32>,
    },
}

/// The tables and functions of the differentiable kernels (one basis, one device, one dtype).
pub(crate) struct DifferentiableKernels {
    fwd_fn: CudaFunction,
    bwd_fn: CudaFunction,
    plan: CudaSlice<u32>,
    /// Σ weights and `B`'s values in the kernels' dtype.
    pub(super) coefficients: Coefficients,
    col_start: CudaSlice<u32>,
    rows: CudaSlice<u32>,
    lower: CudaSlice<u32>,
    n_steps: u32,
    n_moments: u32,
    pub(super) n_cols: u32,
    threads: u32,
    /// Dynamic shared memory of the forward kernel (the backward takes twice as much).
    shared_bytes: u32,
}

/// The identity table: per moment its exponents and the shared-memory offsets (times
/// `threads`) of `n − e_k` and `n − e_k − e_l`, 0 where an exponent is too small (its
/// coefficient `n_k` or `n_k (n_k − 1)` or `n_k n_l` is 0 then). Exponents follow from the plan:
/// moment `k + 1` is its parent's plus `e_dir`.
fn lower_table(plan: &[RecurrenceStep], threads: usize) -> Vec<u32> {
    let mut exponents = vec![[0usize; 3]];
    for step in plan {
        let mut e = exponents[step.parent];
        e[step.dir] += 1;
        exponents.push(e);
    }
    let index: HashMap<[usize; 3], usize> =
        exponents.iter().enumerate().map(|(i, &e)| (e, i)).collect();
    let below = |e: [usize; 3], k: usize, l: Option<usize>| -> usize {
        let mut t = e;
        if t[k] == 0 {
            return 0;
        }
        t[k] -= 1;
        if let Some(l) = l {
            if t[l] == 0 {
                return 0;
            }
            t[l] -= 1;
        }
        index.get(&t).copied().unwrap_or(0) * threads
    };
    let mut words = Vec::with_capacity(exponents.len() * LOWER);
    for &e in &exponents {
        words.extend([e[0], e[1], e[2]]);
        words.extend((0..3).map(|k| below(e, k, None)));
        for (k, l) in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)] {
            words.push(below(e, k, Some(l)));
        }
    }
    words.into_iter().map(|w| w as u32).collect()
}

impl DifferentiableKernels {
    /// Loads the two kernels from `module` and uploads their tables; `None` when the backward's
    /// shared memory (twice the forward's) exceeds the device's opt-in maximum `optin`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dev: &CudaDevice,
        module: &Arc<CudaModule>,
        dtype: DType,
        plan: &[RecurrenceStep],
        table: HostTables<'_>,
        n_cols: usize,
        threads: usize,
        optin: usize,
    ) -> Result<Option<Self>> {
        let HostTables {
            plan_words,
            weights,
            col_start,
            rows,
            values,
        } = table;
        let n_moments = plan.len() + 1;
        let elem = if dtype == DType::F64 { 8 } else { 4 };
        let shared = threads * n_moments * elem;
        if 2 * shared > optin {
            return Ok(None);
        }
        let suffix = if dtype == DType::F64 { "f64" } else { "f32" };
        let fwd_fn = module
            .load_function(&format!("moments_contract_{suffix}"))
            .w()?;
        let bwd_fn = module
            .load_function(&format!("moments_contract_bwd_{suffix}"))
            .w()?;
        let attribute = sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
        fwd_fn.set_attribute(attribute, shared as i32).w()?;
        bwd_fn.set_attribute(attribute, 2 * shared as i32).w()?;
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let coefficients = if dtype == DType::F64 {
            Coefficients::F64 {
                weights: dev.clone_htod(weights)?,
                values: dev.clone_htod(values)?,
            }
        } else {
            Coefficients::F32 {
                weights: dev.clone_htod(&f32s(weights))?,
                values: dev.clone_htod(&f32s(values))?,
            }
        };
        let kernels = DifferentiableKernels {
            fwd_fn,
            bwd_fn,
            plan: dev.clone_htod(plan_words)?,
            coefficients,
            col_start: dev.clone_htod(col_start)?,
            rows: dev.clone_htod(rows)?,
            lower: dev.clone_htod(&lower_table(plan, threads))?,
            n_steps: plan.len() as u32,
            n_moments: n_moments as u32,
            n_cols: n_cols as u32,
            threads: threads as u32,
            shared_bytes: shared as u32,
        };
        dev.cuda_stream().synchronize().w()?;
        Ok(Some(kernels))
    }
}

/// Pair coefficients `[P, K]` from Gaussian parameters `[P, 10]`, differentiable
/// ([`DifferentiableKernels`]).
#[derive(Clone)]
pub struct MomentsContract {
    kernels: Arc<DifferentiableKernels>,
}

impl MomentsContract {
    pub(crate) fn new(kernels: Arc<DifferentiableKernels>) -> Self {
        MomentsContract { kernels }
    }
}

/// The gradient of [`MomentsContract`] with respect to its parameters: `(params, grad_out)` ->
/// `[P, 10]`.
struct MomentsContractBwd {
    kernels: Arc<DifferentiableKernels>,
}

fn config(kernels: &DifferentiableKernels, n_pairs: u32, shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n_pairs.div_ceil(kernels.threads), 1, 1),
        block_dim: (kernels.threads, 1, 1),
        shared_mem_bytes: shared,
    }
}

impl DifferentiableKernels {
    pub(super) fn forward<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        params: CudaView<'_, T>,
        weights: &CudaSlice<T>,
        values: &CudaSlice<T>,
        n_pairs: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        let k = self.n_cols as usize;
        // SAFETY: thread q < n_pairs writes out[q K + c] for every c < K; the grid covers
        // every q, so every element is written before it is read.
        let mut out = unsafe { dev.alloc::<T>(n_pairs * k) }?;
        if n_pairs == 0 {
            return Ok(out);
        }
        let p32 = n_pairs as u32;
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&self.fwd_fn);
        b.arg(&params)
            .arg(&self.plan)
            .arg(weights)
            .arg(&self.n_steps)
            .arg(&self.col_start)
            .arg(&self.rows)
            .arg(values)
            .arg(&self.n_cols)
            .arg(&p32)
            .arg(&mut out);
        // SAFETY: the arguments match moments_contract_<T>. Thread q < n_pairs (guarded) reads
        // params[10q .. 10q + 10] (10 P elements, checked by the caller) and the tables the
        // pair kernel reads, built by CudaKernels::new with the same checks (plan steps read
        // moments <= k, rows < n_moments, all offsets times `threads`, the block size launched
        // here), so its shared-memory indices i * threads + tid stay below n_moments *
        // threads, the dynamic shared memory requested (shared_bytes, allowed by the function
        // attribute set in `new`); it writes out row q only.
        unsafe { b.launch(config(self, p32, self.shared_bytes)) }.w()?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        params: CudaView<'_, T>,
        grad_out: CudaView<'_, T>,
        weights: &CudaSlice<T>,
        values: &CudaSlice<T>,
        n_pairs: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        // SAFETY: thread q < n_pairs writes grad[10q .. 10q + 10]; the grid covers every q.
        let mut grad = unsafe { dev.alloc::<T>(n_pairs * PARAMS) }?;
        if n_pairs == 0 {
            return Ok(grad);
        }
        let p32 = n_pairs as u32;
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&self.bwd_fn);
        b.arg(&params)
            .arg(&grad_out)
            .arg(&self.plan)
            .arg(weights)
            .arg(&self.n_steps)
            .arg(&self.col_start)
            .arg(&self.rows)
            .arg(values)
            .arg(&self.n_cols)
            .arg(&self.lower)
            .arg(&self.n_moments)
            .arg(&p32)
            .arg(&mut grad);
        // SAFETY: as in `forward`, plus: grad_out holds P K elements (checked by the caller)
        // and thread q reads row q; the second half of shared memory (gbar, offsets
        // n_moments * threads + i * threads + tid with i < n_moments: rows[] and lower[] hold
        // moment indices < n_moments times threads, lower_table's entries are indices of
        // existing moments or 0) lies inside the 2 * shared_bytes requested and allowed;
        // lower holds 12 words per moment (n_moments entries read); it writes grad row q only.
        unsafe { b.launch(config(self, p32, 2 * self.shared_bytes)) }.w()?;
        Ok(grad)
    }
}

impl CustomOp1 for MomentsContract {
    fn name(&self) -> &'static str {
        "anisoap-cuda-moments-contract"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-moments-contract runs on CUDA devices only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (p, c) = l.shape().dims2()?;
        if c != PARAMS || u32::try_from(p).is_err() {
            candle_core::bail!(
                "anisoap-cuda: expected parameters [P, 10], got {:?}",
                l.shape()
            );
        }
        let dev = &s.device;
        let t = &self.kernels;
        let out = with_coefficients!(&t.coefficients, |T, weights, values| {
            let params = view::<T>(s, l, "parameters", p * PARAMS)?;
            CudaStorage::wrap_cuda_slice(t.forward(dev, params, weights, values, p)?, dev.clone())
        });
        Ok((out, Shape::from((p, t.n_cols as usize))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = MomentsContractBwd {
            kernels: self.kernels.clone(),
        };
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &op)?,
        ))
    }
}

impl CustomOp2 for MomentsContractBwd {
    fn name(&self) -> &'static str {
        "anisoap-cuda-moments-contract-bwd"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-moments-contract-bwd runs on CUDA devices only")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let t = &self.kernels;
        let (p, c) = l1.shape().dims2()?;
        let k = t.n_cols as usize;
        if c != PARAMS || l2.shape().dims() != [p, k] || u32::try_from(p).is_err() {
            candle_core::bail!("anisoap-cuda: backward inputs have the wrong shapes");
        }
        let dev = &s1.device;
        let out = with_coefficients!(&t.coefficients, |T, weights, values| {
            let params = view::<T>(s1, l1, "parameters", p * PARAMS)?;
            let gradient = view::<T>(s2, l2, "gradient", p * k)?;
            let out = t.backward(dev, params, gradient, weights, values, p)?;
            CudaStorage::wrap_cuda_slice(out, dev.clone())
        });
        Ok((out, Shape::from((p, PARAMS))))
    }
}

/// Checks at build time that the op can live in Candle's graph (shared between threads).
const _: fn() = || {
    fn check<T: Send + Sync + 'static>() {}
    check::<MomentsContract>();
};
