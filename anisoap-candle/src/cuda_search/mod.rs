//! The neighbour search on the GPU: each chunk's pairs found and staged on the device.
//!
//! On the host, a chunk costs a cell-list search (writing ~40 B per pair) and the copy of its
//! pair data to the device; on the H200 those two took 3× the device's own work per chunk. Here
//! the cell lists that [`System`] built once per frame ([`crate::neighbors`]) are copied to the
//! device once, and per chunk one thread per centre repeats the host's candidate walk and pair
//! test (`kernels/neighbor_search.cu`, every floating-point operation in the host's order,
//! no fused multiply-adds), sorts its pairs as the host does, and writes what the pair kernel
//! reads ([`crate::fused_cuda::StagedPairs`]). The pairs are the host's exactly (same set, same
//! order, bit-identical `r_ij`), so features equal the host-search path bit for bit; the host's
//! counting pass still gives each centre's pair count, and the device checks it.
//!
//! [`SearchTables`] (the flattened cell lists) is plain host data, built and checked without
//! CUDA; [`CudaNeighborSearch`] uploads it and runs the kernel. Without the `cuda` feature
//! `CudaNeighborSearch` is an empty type that is never built.

use crate::error::{Error, Result};
use crate::system::System;

mod tables;
pub use tables::SearchTables;

#[cfg(feature = "cuda")]
pub use imp::{CudaNeighborSearch, CudaPairCounter, CudaSearchKernel};
#[cfg(not(feature = "cuda"))]
pub use stub::{CudaNeighborSearch, CudaPairCounter, CudaSearchKernel};

/// The kernel source (CUDA C++, compiled at run time with `--fmad=false`).
pub const SOURCE: &str = include_str!("../kernels/neighbor_search.cu");

/// Prefix sums `[C + 1]` of the pair counts of the centres `centers` (the rows of each
/// centre's pairs in a chunk), checked against 32 bits.
pub fn chunk_segments(system: &System, centers: &std::ops::Range<usize>) -> Result<Vec<u32>> {
    let counts = system.pair_counts.get(centers.clone()).ok_or_else(|| {
        Error::Device(format!(
            "centre range {centers:?} is outside the system's {} particles",
            system.particles.len()
        ))
    })?;
    let mut seg = Vec::with_capacity(counts.len() + 1);
    let mut total = 0u32;
    seg.push(0);
    for &c in counts {
        total = u32::try_from(c)
            .ok()
            .and_then(|c| total.checked_add(c))
            .ok_or_else(|| {
                Error::TooLarge("too many pairs in one chunk for the CUDA kernels".into())
            })?;
        seg.push(total);
    }
    Ok(seg)
}

#[cfg(not(feature = "cuda"))]
mod stub {
    use crate::batched::BatchedOptions;
    use crate::counting::{CountingInput, PairCount, PairCounter};
    use crate::error::Result;
    use crate::fused_cuda::StagedPairs;
    use crate::system::{Pairs, System};

    /// Built without CUDA: no value of this type exists.
    pub enum CudaNeighborSearch {}

    /// Built without CUDA: no value of this type exists.
    pub enum CudaSearchKernel {}

    /// Built without CUDA: no value of this type exists.
    pub enum CudaPairCounter {}

    impl CudaSearchKernel {
        /// Always `None` without the `cuda` feature.
        pub fn new(_options: &BatchedOptions) -> Result<Option<Self>> {
            Ok(None)
        }
    }

    impl CudaPairCounter {
        /// Always `None` without the `cuda` feature.
        pub fn new(_options: &BatchedOptions) -> Result<Option<Self>> {
            Ok(None)
        }

        /// Never called (no kernel exists).
        pub fn with_kernel(kernel: &CudaSearchKernel) -> Self {
            match *kernel {}
        }
    }

    impl PairCounter for CudaPairCounter {
        fn count(&self, _input: &CountingInput) -> Result<PairCount> {
            match *self {}
        }
    }

    impl CudaNeighborSearch {
        /// Always `None` without the `cuda` feature.
        pub fn new(_system: &System, _options: &BatchedOptions) -> Result<Option<Self>> {
            Ok(None)
        }

        /// Never called (no kernel exists).
        pub fn with_kernel(
            _system: &System,
            _options: &BatchedOptions,
            kernel: &CudaSearchKernel,
        ) -> Result<Option<Self>> {
            match *kernel {}
        }

        /// Never called (no value exists).
        pub fn stage(
            &self,
            _system: &System,
            _centers: std::ops::Range<usize>,
        ) -> Result<Option<StagedPairs>> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn pairs(&self, _system: &System, _centers: std::ops::Range<usize>) -> Result<Pairs> {
            match *self {}
        }
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use super::{chunk_segments, SearchTables};
    use crate::batched::BatchedOptions;
    use crate::counting::{too_many_pairs, CountingInput, PairCount, PairCounter};
    use crate::error::{Error, Result};
    use crate::fused_cuda::StagedPairs;
    use crate::system::{Pairs, Particles, System};
    use candle_core::cuda_backend::cudarc::driver::{
        CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
    };
    use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
    use candle_core::op::BackpropOp;
    use candle_core::{DType, Shape, Storage, Tensor};
    use std::sync::Arc;

    /// Threads per block of the search kernels: `SEARCH_WARPS` (4) warps of 32, one centre
    /// per warp (`kernels/neighbor_search.cu` sizes its shared memory for this block).
    const THREADS: u32 = 128;

    /// The search kernels compiled (once per process) and loaded for one CUDA device and
    /// dtype; built with the basis constants, so that preparing a system costs no compilation.
    #[derive(Clone)]
    pub struct CudaSearchKernel {
        device: CudaDevice,
        stage_fn: CudaFunction,
        count_fn: CudaFunction,
        dtype: DType,
    }

    impl CudaSearchKernel {
        /// Compiles and loads the kernels for `options.device` and `options.dtype` (`None`
        /// unless the device is CUDA).
        pub fn new(options: &BatchedOptions) -> Result<Option<Self>> {
            let candle_core::Device::Cuda(dev) = &options.device else {
                return Ok(None);
            };
            let name = match options.dtype {
                DType::F64 => "stage_pairs_f64",
                DType::F32 => "stage_pairs_f32",
                other => return Err(Error::Device(format!("dtype {other:?} is not supported"))),
            };
            let stream = dev.cuda_stream();
            let ctx = stream.context();
            // The pair test must round as the host does: no contraction into FMAs.
            let module = crate::fused_cuda::load_module(
                ctx,
                "neighbor_search.cu",
                super::SOURCE,
                Some(false),
                "--host-neighbor-search",
            )?;
            Ok(Some(CudaSearchKernel {
                device: dev.clone(),
                stage_fn: module.load_function(name).w()?,
                count_fn: module.load_function("count_pairs_all").w()?,
                dtype: options.dtype,
            }))
        }
    }

    /// The cell lists of a system (every frame) and its particles' type slots on one device.
    struct DeviceTables {
        n_particles: usize,
        frame_of: CudaSlice<u32>,
        frame_u: CudaSlice<u32>,
        frame_reach: CudaSlice<i32>,
        frame_f: CudaSlice<f64>,
        bin_of: CudaSlice<u32>,
        image: CudaSlice<i32>,
        slot: CudaSlice<u32>,
        positions: CudaSlice<f64>,
        bin_start: CudaSlice<u32>,
        wrapped: CudaSlice<f64>,
        slot_image: CudaSlice<i32>,
        slot_particle: CudaSlice<u32>,
        type_slot: CudaSlice<u32>,
        cutoff2: f64,
        self_pairs: u32,
        n_types: usize,
    }

    impl DeviceTables {
        /// Uploads `tables` and the type slots (each checked below `n_types`).
        fn upload(
            dev: &CudaDevice,
            tables: &SearchTables,
            type_slots: &[usize],
            n_types: usize,
            self_pairs: bool,
        ) -> Result<Self> {
            let _span = tracing::debug_span!("search_upload").entered();
            let type_slot = crate::batched::checked_type_slots(type_slots, n_types)?;
            if type_slot.len() != tables.slot.len() {
                return Err(Error::Device("one type slot per particle expected".into()));
            }
            // Pageable host-to-device copies run at one CPU core's memcpy speed (~5.5 GB/s on
            // the H200 host, ~100 MB for 10^6 particles): the large arrays are copied from
            // three threads at once, each onto its own per-thread default stream, which it
            // synchronises before handing its arrays back.
            fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
                h.join()
                    .map_err(|_| Error::Device("a table upload thread panicked".into()))?
            }
            fn synced<T>(dev: &CudaDevice, r: Result<T>) -> Result<T> {
                dev.cuda_stream().synchronize().w()?;
                r
            }
            let ((positions, frame_of), (wrapped, slot_particle), (bin_of, image)) =
                std::thread::scope(|scope| -> Result<_> {
                    let a = scope.spawn(|| {
                        synced(
                            dev,
                            (|| {
                                Ok((
                                    dev.clone_htod(tables.positions.as_flattened())?,
                                    dev.clone_htod(&tables.frame_of)?,
                                ))
                            })(),
                        )
                    });
                    let b = scope.spawn(|| {
                        synced(
                            dev,
                            (|| {
                                Ok((
                                    dev.clone_htod(tables.wrapped.as_flattened())?,
                                    dev.clone_htod(&*tables.slot_particle)?,
                                ))
                            })(),
                        )
                    });
                    let c = scope.spawn(|| {
                        synced(
                            dev,
                            (|| {
                                Ok((
                                    dev.clone_htod(tables.bin_of.as_flattened())?,
                                    dev.clone_htod(tables.image.as_flattened())?,
                                ))
                            })(),
                        )
                    });
                    Ok((joined(a)?, joined(b)?, joined(c)?))
                })?;
            let uploaded = DeviceTables {
                n_particles: tables.slot.len(),
                frame_of,
                frame_u: dev.clone_htod(&tables.frame_u)?,
                frame_reach: dev.clone_htod(&tables.frame_reach)?,
                frame_f: dev.clone_htod(&tables.frame_f)?,
                bin_of,
                image,
                slot: dev.clone_htod(&*tables.slot)?,
                positions,
                bin_start: dev.clone_htod(&*tables.bin_start)?,
                wrapped,
                slot_image: dev.clone_htod(tables.slot_image.as_flattened())?,
                slot_particle,
                type_slot: dev.clone_htod(&type_slot)?,
                cutoff2: tables.cutoff2,
                self_pairs: u32::from(self_pairs),
                n_types,
            };
            // The uploads ran on this thread's stream (candle's per-thread default stream);
            // the chunk loop's producer thread launches the search on its own, so the tables
            // must have landed before they are handed on.
            dev.cuda_stream().synchronize().w()?;
            Ok(uploaded)
        }

        /// Pushes the table arguments shared by every search kernel, in the order of
        /// `ANISOAP_TABLE_PARAMS` in kernels/neighbor_search.cu.
        fn push_args<'a>(
            &'a self,
            builder: &mut candle_core::cuda_backend::cudarc::driver::LaunchArgs<'a>,
        ) {
            builder
                .arg(&self.frame_of)
                .arg(&self.frame_u)
                .arg(&self.frame_reach)
                .arg(&self.frame_f)
                .arg(&self.bin_of)
                .arg(&self.image)
                .arg(&self.slot)
                .arg(&self.positions)
                .arg(&self.bin_start)
                .arg(&self.wrapped)
                .arg(&self.slot_image)
                .arg(&self.slot_particle)
                .arg(&self.cutoff2)
                .arg(&self.self_pairs);
        }
    }

    /// The counting pass on a CUDA device ([`PairCounter`]): one thread per centre walks the
    /// host's candidates with the host's test, counts, records the neighbour types seen and
    /// the smallest singular neighbour. The uploaded cell lists travel on with the system
    /// ([`System::take_device_state`]) to the chunk loop's [`CudaNeighborSearch`].
    pub struct CudaPairCounter {
        kernel: CudaSearchKernel,
    }

    impl CudaPairCounter {
        /// Compiles and loads the kernels for `options.device` (`None` unless CUDA).
        pub fn new(options: &BatchedOptions) -> Result<Option<Self>> {
            Ok(CudaSearchKernel::new(options)?.map(|kernel| CudaPairCounter { kernel }))
        }

        /// The counting pass on kernels already loaded (the basis's), without loading the
        /// module again.
        pub fn with_kernel(kernel: &CudaSearchKernel) -> Self {
            CudaPairCounter {
                kernel: kernel.clone(),
            }
        }
    }

    impl PairCounter for CudaPairCounter {
        fn count(&self, input: &CountingInput) -> Result<PairCount> {
            let dev = &self.kernel.device;
            let n = input.particles.len();
            // The per-particle data the chunk loop's search needs is uploaded on a second
            // thread while this one flattens and uploads the cell lists.
            let (uploaded, particle_data) = std::thread::scope(|scope| -> Result<_> {
                let particle_job =
                    scope.spawn(|| ParticleData::upload(dev, input.particles, self.kernel.dtype));
                let uploaded =
                    SearchTables::from_parts(input.particles, input.searches).and_then(|tables| {
                        DeviceTables::upload(
                            dev,
                            &tables,
                            input.type_slots,
                            input.n_types,
                            input.self_pairs,
                        )
                    });
                let particle_data = particle_job
                    .join()
                    .map_err(|_| Error::Device("the particle upload thread panicked".into()))?;
                Ok((uploaded?, particle_data?))
            })?;
            let n32 = u32::try_from(n)
                .ok()
                .filter(|&n| n <= u32::MAX - THREADS)
                .ok_or_else(|| Error::TooLarge("too many particles for the CUDA search".into()))?;
            let n_types = input.n_types;
            let t32 =
                u32::try_from(n_types).map_err(|_| Error::TooLarge("too many types".into()))?;
            let seen_len = n_types
                .checked_mul(n_types)
                .ok_or_else(|| Error::TooLarge("too many types".into()))?;
            if input.singular.len() != n {
                return Err(Error::Device(
                    "one singular flag per particle expected".into(),
                ));
            }
            let singular: Vec<u32> = input.singular.iter().map(|&b| u32::from(b)).collect();
            let singular = dev.clone_htod(&singular)?;
            let mut counts = dev.alloc_zeros::<u32>(n.max(1))?;
            let mut seen = dev.alloc_zeros::<u32>(seen_len.max(1))?;
            let mut first_singular = dev.alloc_zeros::<u32>(n.max(1))?;
            let mut error = dev.alloc_zeros::<u32>(1)?;
            if n > 0 {
                let stream = dev.cuda_stream();
                let config = LaunchConfig {
                    grid_dim: (n32.div_ceil(THREADS / 32), 1, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut builder = stream.launch_builder(&self.kernel.count_fn);
                uploaded.push_args(&mut builder);
                builder
                    .arg(&n32)
                    .arg(&uploaded.type_slot)
                    .arg(&singular)
                    .arg(&t32)
                    .arg(&mut counts)
                    .arg(&mut seen)
                    .arg(&mut first_singular)
                    .arg(&mut error);
                // SAFETY: the arguments match count_pairs_all in kernels/neighbor_search.cu in
                // order and type. Blocks of THREADS = 128 threads, one warp per particle: the
                // warp of particle i < n (guarded in the kernel; the grid has n / 4 blocks,
                // rounded up) reads the table rows of
                // particle i and of the slots and particles its walk visits (all inside the
                // tables, see the SAFETY note of CudaNeighborSearch::stage_typed: the same
                // walk), type_slot and singular at particles < n (n entries each), and writes
                // counts[i], first_singular[i] (n entries each), seen[slot_i * n_types +
                // slot_j] with both slots < n_types (checked in DeviceTables::upload; seen has
                // n_types² entries) and error[0].
                unsafe { builder.launch(config) }.w()?;
            }
            let flag = dev.clone_dtoh(&error)?.first().copied().unwrap_or(0);
            if flag & 1 != 0 {
                return Err(Error::TooLarge(
                    "a cell shift of some pair does not fit in 32 bits".into(),
                ));
            }
            let counts = dev.clone_dtoh(&counts)?;
            let seen_flags = dev.clone_dtoh(&seen)?;
            let first = dev.clone_dtoh(&first_singular)?;
            let mut total = 0usize;
            for &c in &counts[..n] {
                total = total.saturating_add(c as usize);
            }
            if total > input.max_pairs {
                return Err(too_many_pairs(input.max_pairs));
            }
            let first_singular = first[..n]
                .iter()
                .position(|&j| j != u32::MAX)
                .map(|i| (i, first[i] as usize));
            let mut seen = vec![vec![false; n_types]; n_types];
            for (k, &v) in seen_flags.iter().take(seen_len).enumerate() {
                seen[k / n_types][k % n_types] = v != 0;
            }
            Ok(PairCount {
                counts: counts[..n].iter().map(|&c| c as usize).collect(),
                seen,
                first_singular,
                device_state: Some(Box::new(CountedState {
                    tables: Arc::new(uploaded),
                    particles: Arc::new(particle_data),
                    dtype: self.kernel.dtype,
                })),
            })
        }
    }

    /// The per-particle data the staged rows receive, in the kernel's dtype.
    enum ParticleData {
        F64 {
            precision: CudaSlice<f64>,
            inv: CudaSlice<f64>,
        },
        F32 {
            precision: CudaSlice<f32>,
            inv: CudaSlice<f32>,
        },
    }

    impl ParticleData {
        /// Uploads the neighbours' precision rows and `1/(a1 a2 a3)` in `dtype`, and waits
        /// until they have landed (this thread's stream).
        fn upload(dev: &CudaDevice, particles: &Particles, dtype: DType) -> Result<Self> {
            use rayon::prelude::*;
            let _span = tracing::debug_span!("particle_upload").entered();
            let precision = particles.precision_rows();
            let inv = particles.inverse_axes_products();
            let data = match dtype {
                DType::F64 => ParticleData::F64 {
                    precision: dev.clone_htod(precision.as_flattened())?,
                    inv: dev.clone_htod(&inv)?,
                },
                _ => {
                    let f = |v: &[f64]| v.par_iter().map(|&x| x as f32).collect::<Vec<f32>>();
                    ParticleData::F32 {
                        precision: dev.clone_htod(&f(precision.as_flattened()))?,
                        inv: dev.clone_htod(&f(&inv))?,
                    }
                }
            };
            dev.cuda_stream().synchronize().w()?;
            Ok(data)
        }
    }

    /// What the counting pass leaves on the device for the chunk loop
    /// ([`System::take_device_state`]): the cell lists and the per-particle data.
    struct CountedState {
        tables: Arc<DeviceTables>,
        particles: Arc<ParticleData>,
        dtype: DType,
    }

    /// A system's cell lists and per-particle data on one CUDA device, and the loaded search
    /// kernel: stages chunk after chunk ([`CudaNeighborSearch::stage`]).
    pub struct CudaNeighborSearch {
        device: CudaDevice,
        function: CudaFunction,
        tables: Arc<DeviceTables>,
        particles: Arc<ParticleData>,
    }

    impl CudaNeighborSearch {
        /// Compiles the kernels ([`CudaSearchKernel::new`]) and uploads the cell lists and
        /// per-particle data of `system` to `options.device` (`None` unless it is a CUDA
        /// device).
        pub fn new(system: &System, options: &BatchedOptions) -> Result<Option<Self>> {
            match CudaSearchKernel::new(options)? {
                Some(kernel) => Self::with_kernel(system, options, &kernel),
                None => Ok(None),
            }
        }

        /// Uploads the per-particle data of `system` to `options.device` for a loaded
        /// `kernel`, and its cell lists unless a [`CudaPairCounter`] left them there (`None`
        /// unless the device is CUDA).
        pub fn with_kernel(
            system: &System,
            options: &BatchedOptions,
            kernel: &CudaSearchKernel,
        ) -> Result<Option<Self>> {
            let candle_core::Device::Cuda(dev) = &options.device else {
                return Ok(None);
            };
            if kernel.dtype != options.dtype {
                return Err(Error::Device(
                    "the search kernel was built for another dtype".into(),
                ));
            }
            let n_types = system.layout.types.len();
            let left = system
                .take_device_state()
                .and_then(|state| state.downcast::<CountedState>().ok())
                .filter(|state| {
                    let t = &state.tables;
                    t.n_particles == system.particles.len()
                        && t.n_types == n_types
                        && t.self_pairs == u32::from(system.self_pairs())
                        && state.dtype == options.dtype
                        && t.frame_of.stream().context().cu_ctx()
                            == dev.cuda_stream().context().cu_ctx()
                });
            let (tables, particles) = match left {
                Some(state) => (state.tables, state.particles),
                None => (
                    Arc::new(DeviceTables::upload(
                        dev,
                        &SearchTables::new(system)?,
                        &system.type_slots,
                        n_types,
                        system.self_pairs(),
                    )?),
                    Arc::new(ParticleData::upload(dev, &system.particles, options.dtype)?),
                ),
            };
            Ok(Some(CudaNeighborSearch {
                device: dev.clone(),
                function: kernel.stage_fn.clone(),
                tables,
                particles,
            }))
        }

        /// Finds and stages the pairs of the centres `centers` (a chunk of
        /// [`System::center_chunks`]) on the device; `None` for a chunk without pairs.
        pub fn stage(
            &self,
            system: &System,
            centers: std::ops::Range<usize>,
        ) -> Result<Option<StagedPairs>> {
            let _span = tracing::trace_span!("cuda_search", centers = centers.len()).entered();
            let seg = chunk_segments(system, &centers)?;
            let n_pairs = *seg.last().unwrap_or(&0) as usize;
            if n_pairs == 0 {
                return Ok(None);
            }
            match &*self.particles {
                ParticleData::F64 { precision, inv } => {
                    self.stage_typed(&seg, &centers, precision, inv).map(Some)
                }
                ParticleData::F32 { precision, inv } => {
                    self.stage_typed(&seg, &centers, precision, inv).map(Some)
                }
            }
        }

        /// The pairs [`CudaNeighborSearch::stage`] finds for `centers`, copied back to the host
        /// (`r_ij` in the search's dtype, widened to f64): for tests against
        /// [`System::pairs`].
        pub fn pairs(&self, system: &System, centers: std::ops::Range<usize>) -> Result<Pairs> {
            let seg = chunk_segments(system, &centers)?;
            let mut pairs = Pairs::default();
            let Some(staged) = self.stage(system, centers.clone())? else {
                return Ok(pairs);
            };
            let (neighbors, r) = staged.neighbors_and_vectors()?;
            for (c, w) in seg.windows(2).enumerate() {
                pairs.centers.extend(std::iter::repeat_n(
                    centers.start + c,
                    (w[1] - w[0]) as usize,
                ));
            }
            pairs.neighbors = neighbors.into_iter().map(|j| j as usize).collect();
            pairs.vectors = r.chunks(3).map(|v| [v[0], v[1], v[2]]).collect();
            Ok(pairs)
        }

        fn stage_typed<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
            &self,
            seg: &[u32],
            centers: &std::ops::Range<usize>,
            precision_all: &CudaSlice<T>,
            inv_all: &CudaSlice<T>,
        ) -> Result<StagedPairs> {
            let dev = &self.device;
            let tables = &*self.tables;
            let n_centers = centers.len();
            let n_pairs = *seg.last().unwrap_or(&0) as usize;
            let first_center = u32::try_from(centers.start)
                .map_err(|_| Error::TooLarge("centre index does not fit 32 bits".into()))?;
            let c32 = u32::try_from(n_centers)
                .ok()
                .filter(|&c| c <= u32::MAX - THREADS)
                .ok_or_else(|| Error::TooLarge("too many centres in one chunk".into()))?;
            if centers.end > tables.n_particles || seg.len() != n_centers + 1 {
                return Err(Error::Device(format!(
                    "centre range {centers:?} is outside the {} particles uploaded",
                    tables.n_particles
                )));
            }
            let seg_dev = dev.clone_htod(seg)?;
            let mut neighbor_out = dev.alloc_zeros::<u32>(n_pairs)?;
            let mut shift_out = dev.alloc_zeros::<i32>(3 * n_pairs)?;
            let mut r_out = dev.alloc_zeros::<T>(3 * n_pairs)?;
            let mut precision_out = dev.alloc_zeros::<T>(6 * n_pairs)?;
            let mut inv_out = dev.alloc_zeros::<T>(n_pairs)?;
            let mut slot_out = dev.alloc_zeros::<u32>(n_pairs)?;
            let mut error = dev.alloc_zeros::<u32>(1)?;
            let stream = dev.cuda_stream();
            let config = LaunchConfig {
                grid_dim: (c32.div_ceil(THREADS / 32), 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut builder = stream.launch_builder(&self.function);
            tables.push_args(&mut builder);
            builder
                .arg(&first_center)
                .arg(&c32)
                .arg(&seg_dev)
                .arg(precision_all)
                .arg(inv_all)
                .arg(&tables.type_slot)
                .arg(&mut neighbor_out)
                .arg(&mut shift_out)
                .arg(&mut r_out)
                .arg(&mut precision_out)
                .arg(&mut inv_out)
                .arg(&mut slot_out)
                .arg(&mut error);
            // SAFETY: the arguments match stage_pairs_<T> in kernels/neighbor_search.cu in
            // order and type (tables first, as DeviceTables::push_args pushes them). Blocks of
            // THREADS = 128 threads (the 4 warps the kernel's static shared memory is sized
            // for), one warp per centre; shared-memory keys are stored at positions below
            // WARP_CAP only (a centre with more pairs is staged by one lane). Reads:
            // warp c < n_centers (guarded in the kernel) handles centre i = first_center + c
            // < centers.end <= N (checked above); it reads seg[c], seg[c+1] (seg holds
            // n_centers + 1 entries); frame_of[i] = f < F, the frame rows (8, 3 and 10 entries
            // per frame); bin_of / image / positions rows of i and slot[i]; all of these were
            // built by SearchTables::from_parts with one row per particle or frame. Bins: the
            // kernel visits bin (ta, tb, tc) with 0 <= t_k < nbins_k of frame f (rem_euclid
            // along periodic directions, clamped to [0, nbins_k - 1] otherwise), so the linear
            // bin first_bin + (ta nb + tb) nc + tc and its successor index frame f's nbins + 1
            // entries of bin_start, whose values are slots of frame f (< N): wrapped,
            // slot_image, slot_particle are read at those slots only, and slot_particle gives a
            // particle j < N for positions, precision_all (6N), inv_all (N) and type_slot (N).
            // Writes: rows q in seg[c] .. seg[c + 1] only (the serial path tests q < seg[c + 1]
            // before every write; the warp path writes row seg[c] + rank with rank < n =
            // seg[c + 1] - seg[c], after checking it found exactly n pairs; seg[C] = n_pairs,
            // the length of neighbor_out, inv_out and slot_out, 3 n_pairs of shift_out and
            // r_out, 6 n_pairs of precision_out), and error[0].
            unsafe { builder.launch(config) }.w()?;
            drop(builder);
            crate::fused_cuda::profile_sync(&candle_core::Device::Cuda(dev.clone()))?;
            let ready = stream.record_event(None).w()?;
            let wrap = |storage: CudaStorage, shape: Shape| {
                Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
            };
            let slice = |s: CudaSlice<T>| CudaStorage::wrap_cuda_slice(s, dev.clone());
            let index = |s: CudaSlice<u32>| CudaStorage::wrap_cuda_slice(s, dev.clone());
            Ok(StagedPairs::from_device_search(
                wrap(slice(precision_out), Shape::from((n_pairs, 6))),
                wrap(slice(inv_out), Shape::from(n_pairs)),
                wrap(slice(r_out), Shape::from((n_pairs, 3))),
                wrap(index(seg_dev), Shape::from(n_centers + 1)),
                wrap(index(slot_out), Shape::from(n_pairs)),
                n_centers,
                tables.n_types,
                wrap(index(neighbor_out), Shape::from(n_pairs)),
                wrap(index(error), Shape::from(1)),
                ready,
            ))
        }
    }

    // Shared between the chunk loop's threads.
    const _: fn() = || {
        fn check<T: Send + Sync>() {}
        check::<CudaNeighborSearch>();
        check::<CudaPairCounter>();
    };

    impl std::fmt::Debug for CudaNeighborSearch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CudaNeighborSearch")
                .field("particles", &self.tables.n_particles)
                .field("bins", &self.tables.bin_start.len())
                .finish()
        }
    }
}
