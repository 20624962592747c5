//! The public entry point: a calculator that turns frames into AniSOAP features with the
//! chosen backend, in exactly the original's feature layout.

use crate::backend::{
    block_width, CandleBackend, ChunkBackend, ChunkOutput, ChunkRunner, OutputPlan,
    ReferenceBackend,
};
use crate::basis::Basis;
use crate::batched::BatchedOptions;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::fused_cuda::StagedPairs;
use crate::hypers::Hypers;
use crate::system::{Layout, Pairs, System};

/// Which implementation computes the features.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Plain float64 Rust, pair by pair: the oracle.
    Reference,
    /// Batched Candle tensor ops on a device (CPU, CUDA, Metal) in f64 or f32.
    Batched(BatchedOptions),
}

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Power spectrum averaged over the centres of each type, one row per frame (the
    /// original's `power_spectrum(frames)`).
    PowerSpectrumMean,
    /// Power spectrum of every sample centre, one row per centre.
    PowerSpectrumPerCenter,
    /// Density coefficients (nu = 1, `transform()`), one row per centre.
    Density,
}

/// A dense row-major matrix of f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Computed features and what their rows and columns mean.
#[derive(Debug, Clone)]
pub struct Features {
    /// The values. Columns: centre-type blocks in ascending type order, each in the original's
    /// column order; a per-centre row has zeros outside its own centre type's block.
    pub values: Matrix,
    /// Frame index of each row.
    pub frame: Vec<usize>,
    /// Particle index within its frame of each row (`None` for per-frame means).
    pub center: Option<Vec<usize>>,
    /// Types, blocks and neighbour-type columns.
    pub layout: Layout,
    /// Per (frame, centre block): number of centres averaged (per-frame means only).
    pub counts: Option<Vec<usize>>,
}

/// One block of finished output rows, in output order, handed to a sink as soon as it is done.
#[derive(Debug, Clone, Copy)]
pub struct RowBlock<'a> {
    /// Row-major values, `cols` per row.
    pub values: &'a [f64],
    /// Columns per row.
    pub cols: usize,
    /// Frame (index in the system) of each row.
    pub frame: &'a [usize],
    /// Particle index within its frame of each row (`None` for per-frame means).
    pub center: Option<&'a [usize]>,
}

impl RowBlock<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.frame.len()
    }
}

/// AniSOAP calculator for one hyperparameter set, on one backend or spread over several
/// devices (one [`ChunkBackend`] each).
pub struct Calculator {
    basis: Basis,
    backend: Backend,
    workers: Vec<Box<dyn ChunkBackend>>,
}

/// Progress callback: `(pairs done, pairs in total)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

impl Calculator {
    /// Validates the hypers, builds the basis constants (the original's numerical-imprecision
    /// check runs here) and uploads them to the backend's device.
    pub fn new(hypers: &Hypers, backend: Backend) -> Result<Self> {
        let basis = Basis::new(hypers)?;
        let worker: Box<dyn ChunkBackend> = match &backend {
            Backend::Batched(options) => Box::new(CandleBackend::new(&basis, options)?),
            Backend::Reference => Box::new(ReferenceBackend::new(&basis)),
        };
        Ok(Calculator {
            basis,
            backend,
            workers: vec![worker],
        })
    }

    /// The batched path spread over several devices (e.g. `cuda:0`, `cuda:1`), one host thread
    /// per device taking chunks as it finishes the previous one; rows are assembled in chunk
    /// order, so the output equals a one-device run (bit for bit on identical devices).
    pub fn on_devices(hypers: &Hypers, devices: &[BatchedOptions]) -> Result<Self> {
        let Some(first) = devices.first() else {
            return Err(Error::Device("no device given".into()));
        };
        let basis = Basis::new(hypers)?;
        let workers = devices
            .iter()
            .map(|options| {
                Ok(Box::new(CandleBackend::new(&basis, options)?) as Box<dyn ChunkBackend>)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Calculator {
            basis,
            backend: Backend::Batched(first.clone()),
            workers,
        })
    }

    /// The counting pass of the first worker's device, if it has one (else systems are
    /// counted on the host): pass it to [`System::with_counter`].
    pub fn pair_counter(&self) -> Option<&dyn crate::counting::PairCounter> {
        self.workers.first().and_then(|w| w.pair_counter())
    }

    /// The basis constants.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The backend in use (the first device's options when on several devices).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Names of the workers (`reference`, `candle-cpu`, `candle-cuda:0`, ...).
    pub fn worker_names(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.name()).collect()
    }

    /// Per-frame mean power spectrum, rows = frames (the original's default output).
    pub fn power_spectrum(&self, frames: &[Frame]) -> Result<Matrix> {
        Ok(self
            .compute(frames, Quantity::PowerSpectrumMean, &mut |_, _| {})?
            .values)
    }

    /// Computes `quantity` for all frames together (types and neighbour-type columns are taken
    /// from all frames, as in the original), reporting progress in pairs.
    pub fn compute(
        &self,
        frames: &[Frame],
        quantity: Quantity,
        progress: Progress,
    ) -> Result<Features> {
        let system = {
            let _span = tracing::info_span!("prepare", frames = frames.len()).entered();
            System::with_counter(frames, &self.basis, None, self.pair_counter())?
        };
        self.compute_system(&system, quantity, progress)
    }

    /// Like [`Calculator::compute`] on an already prepared system, all rows in memory.
    pub fn compute_system(
        &self,
        system: &System,
        quantity: Quantity,
        progress: Progress,
    ) -> Result<Features> {
        let mut values = Vec::new();
        let mut frame = Vec::new();
        let mut center = Vec::new();
        let mut cols = 0;
        self.compute_streaming(
            system,
            quantity,
            &mut |block| {
                cols = block.cols;
                values.extend_from_slice(block.values);
                frame.extend_from_slice(block.frame);
                if let Some(c) = block.center {
                    center.extend_from_slice(c);
                }
                Ok(())
            },
            progress,
        )?;
        let per_center = quantity != Quantity::PowerSpectrumMean;
        if cols == 0 {
            cols = OutputPlan::new(system, quantity).width;
        }
        Ok(Features {
            values: Matrix {
                rows: frame.len(),
                cols,
                data: values,
            },
            frame,
            center: per_center.then_some(center),
            layout: system.layout.clone(),
            counts: (!per_center).then(|| block_counts(system)),
        })
    }

    /// The one chunk loop: computes `quantity` for `system` chunk by chunk and hands finished
    /// rows to `emit` in output order (per-centre rows after each chunk, per-frame means once
    /// all chunks are done), so per-centre outputs never have to be held whole.
    pub fn compute_streaming(
        &self,
        system: &System,
        quantity: Quantity,
        emit: &mut dyn FnMut(RowBlock) -> Result<()>,
        progress: Progress,
    ) -> Result<()> {
        let plan = OutputPlan::new(system, quantity);
        let chunks = system.center_chunks(self.workers[0].chunk_pairs());
        let total_pairs = system.n_pairs();
        let layout = &system.layout;
        let mut frame_sums = if plan.per_center() {
            Vec::new()
        } else {
            vec![0.0; layout.n_frames * plan.width]
        };
        let mut done_pairs = 0;
        let mut apply = |centers: &std::ops::Range<usize>, output: ChunkOutput| -> Result<()> {
            done_pairs += system.pair_counts[centers.clone()].iter().sum::<usize>();
            match output {
                ChunkOutput::Rows(values) => {
                    let samples: Vec<usize> = centers
                        .clone()
                        .filter(|&i| plan.row_of[i] != usize::MAX)
                        .collect();
                    let frame: Vec<usize> =
                        samples.iter().map(|&i| system.particles.frame[i]).collect();
                    let center: Vec<usize> = samples
                        .iter()
                        .map(|&i| i - system.particles.frame_start[system.particles.frame[i]])
                        .collect();
                    if !samples.is_empty() {
                        emit(RowBlock {
                            values: &values,
                            cols: plan.width,
                            frame: &frame,
                            center: Some(&center),
                        })?;
                    }
                }
                ChunkOutput::FrameSums {
                    first_frame,
                    values,
                } => {
                    let start = first_frame * plan.width;
                    for (acc, v) in frame_sums[start..start + values.len()]
                        .iter_mut()
                        .zip(&values)
                    {
                        *acc += v;
                    }
                }
            }
            progress(done_pairs, total_pairs);
            Ok(())
        };
        if self.workers.len() == 1 || chunks.len() <= 1 {
            let runner = self.workers[0].prepare(system)?;
            run_overlapped(system, &chunks, &*runner, &plan, &mut apply)?;
        } else {
            run_on_workers(&self.workers, system, &chunks, &plan, &mut apply)?;
        }
        if plan.per_center() {
            return Ok(());
        }
        let counts = block_counts(system);
        let n_blocks = layout.center_types.len();
        for f in 0..layout.n_frames {
            for b in 0..n_blocks {
                let count = counts[f * n_blocks + b];
                if count == 0 {
                    tracing::warn!(
                        frame = f,
                        center_type = layout.center_types[b],
                        "frame has no centre of this type: its block is left at zero"
                    );
                    continue;
                }
                let start = f * plan.width + plan.offsets[b];
                let width = block_width(layout, quantity, b);
                for v in &mut frame_sums[start..start + width] {
                    *v /= count as f64;
                }
            }
        }
        let frame: Vec<usize> = (0..layout.n_frames).collect();
        emit(RowBlock {
            values: &frame_sums,
            cols: plan.width,
            frame: &frame,
            center: None,
        })
    }
}

/// Per (frame, centre block): number of sample centres.
fn block_counts(system: &System) -> Vec<usize> {
    let layout = &system.layout;
    let mut counts = vec![0usize; layout.n_frames * layout.center_types.len()];
    for i in (0..system.particles.len()).filter(|&i| layout.is_sample[i]) {
        let b = layout
            .center_block(system.particles.types[i])
            .expect("a sample has a block");
        counts[system.particles.frame[i] * layout.center_types.len() + b] += 1;
    }
    counts
}

/// The host's pairs of `centers` into `pairs` when `runner` needs them, else empty `pairs`
/// (the runner finds them on its device).
fn host_pairs_into(
    system: &System,
    runner: &dyn ChunkRunner,
    centers: &std::ops::Range<usize>,
    pairs: &mut Pairs,
) -> Result<()> {
    if !runner.host_pairs() {
        pairs.clear();
        return Ok(());
    }
    let _span = tracing::debug_span!("neighbor_list", centers = centers.len()).entered();
    system.pairs_into(centers.clone(), pairs)
}

/// One worker: a producer thread finds the pairs of chunk k+1 and stages them
/// ([`ChunkRunner::stage`]: on CUDA the copy to the device) while the worker computes chunk k.
/// Two pair buffers travel back and forth, so after the first two chunks the search writes
/// into memory that is already mapped. This hides the host neighbour search and the uploads
/// behind the device. Chunks are computed and applied in order; the first error stops both
/// sides. (A three-stage version, search and staging on separate threads, hung on the
/// H200 on the 10^6-particle system while passing every CPU and small GPU test; the cause was
/// not found within the session, so the two-stage pipeline measured there stays.)
fn run_overlapped(
    system: &System,
    chunks: &[std::ops::Range<usize>],
    runner: &dyn ChunkRunner,
    plan: &OutputPlan,
    apply: &mut dyn FnMut(&std::ops::Range<usize>, ChunkOutput) -> Result<()>,
) -> Result<()> {
    let search = |centers: &std::ops::Range<usize>, pairs: &mut Pairs| {
        host_pairs_into(system, runner, centers, pairs)?;
        runner.stage(centers, pairs)
    };
    // One thread when there is nothing to overlap, and for runners that find their pairs on
    // their device: their staging is a kernel launch on the same stream as the chunk's work,
    // and CUDA work issued from a second host thread (candle's per-thread default stream)
    // hung the H200 runs at the end of multi-chunk computations (scripts/cuda_h200/
    // s11_diag.sh, results/logs/cuda_h200_s11/). (Launching chunk k+1's search on a stream of
    // its own before chunk k's work, on this thread, was measured in session 15 and gained
    // nothing: results/logs/cuda_h200_s15/run6_*.)
    if chunks.len() <= 1 || !runner.host_pairs() {
        let mut pairs = Pairs::default();
        for centers in chunks {
            let staged = search(centers, &mut pairs)?;
            apply(
                centers,
                runner.chunk(centers.clone(), &pairs, staged, plan)?,
            )?;
        }
        return Ok(());
    }
    type Found = Result<(Pairs, Option<StagedPairs>)>;
    let (full_sender, full) = std::sync::mpsc::sync_channel::<Found>(1);
    let (free, free_receiver) = std::sync::mpsc::channel::<Pairs>();
    for _ in 0..2 {
        free.send(Pairs::default())
            .expect("the receiver is alive until the producer starts");
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for centers in chunks {
                // The consumer hung up (it failed): stop searching.
                let Ok(mut buffer) = free_receiver.recv() else {
                    return;
                };
                let found = search(centers, &mut buffer).map(|staged| (buffer, staged));
                let failed = found.is_err();
                if full_sender.send(found).is_err() || failed {
                    return;
                }
            }
        });
        let result = (|| {
            for centers in chunks {
                let (pairs, staged) = full.recv().map_err(|_| {
                    Error::Device("the neighbour-search thread stopped early".into())
                })??;
                let output = runner.chunk(centers.clone(), &pairs, staged, plan);
                // The producer may already have stopped; the buffer is then dropped.
                let _ = free.send(pairs);
                apply(centers, output?)?;
            }
            Ok(())
        })();
        // Hang up both channels so a producer blocked on either returns before the scope ends.
        drop(full);
        drop(free);
        result
    })
}

/// Several workers (one per device) on the chunks of one system: each thread prepares its
/// device, then takes the next chunk index until none is left (its own neighbour search
/// included, so host searches overlap with device work); finished chunks are applied in chunk
/// order. The first error stops every worker.
fn run_on_workers(
    workers: &[Box<dyn ChunkBackend>],
    system: &System,
    chunks: &[std::ops::Range<usize>],
    plan: &OutputPlan,
    apply: &mut dyn FnMut(&std::ops::Range<usize>, ChunkOutput) -> Result<()>,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, Result<ChunkOutput>)>();
    std::thread::scope(|scope| {
        for worker in workers {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let runner = match worker.prepare(system) {
                    Ok(runner) => runner,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = sender.send((usize::MAX, Err(e)));
                        return;
                    }
                };
                let mut pairs = Pairs::default();
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(centers) = chunks.get(k) else { break };
                    let output = host_pairs_into(system, &*runner, centers, &mut pairs)
                        .and_then(|()| runner.stage(centers, &pairs))
                        .and_then(|staged| runner.chunk(centers.clone(), &pairs, staged, plan));
                    if output.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if sender.send((k, output)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut pending = std::collections::BTreeMap::new();
        let mut next_to_apply = 0;
        let mut failure = None;
        for (k, output) in receiver {
            match output {
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(e);
                }
                Ok(output) if failure.is_none() => {
                    pending.insert(k, output);
                    while let Some(output) = pending.remove(&next_to_apply) {
                        if let Err(e) = apply(&chunks[next_to_apply], output) {
                            stop.store(true, Ordering::Relaxed);
                            failure.get_or_insert(e);
                            break;
                        }
                        next_to_apply += 1;
                    }
                }
                Ok(_) => {}
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, SyntheticSpec, SystemKind};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A runner that fails in `stage` or `chunk` at chunk `fail_at` and otherwise returns
    /// empty rows, counting the chunks it computed.
    struct FailingRunner {
        fail_at: usize,
        in_stage: bool,
        /// Pairs found on the device (the one-thread loop) instead of the host.
        device_search: bool,
        computed: AtomicUsize,
    }

    impl ChunkRunner for FailingRunner {
        fn host_pairs(&self) -> bool {
            !self.device_search
        }

        fn stage(
            &self,
            centers: &std::ops::Range<usize>,
            _: &Pairs,
        ) -> Result<Option<StagedPairs>> {
            if self.in_stage && centers.start == self.fail_at {
                return Err(Error::Device("stage failed on purpose".into()));
            }
            Ok(None)
        }

        fn chunk(
            &self,
            centers: std::ops::Range<usize>,
            _: &Pairs,
            _: Option<StagedPairs>,
            _: &OutputPlan,
        ) -> Result<ChunkOutput> {
            if !self.in_stage && centers.start == self.fail_at {
                return Err(Error::Device("chunk failed on purpose".into()));
            }
            self.computed.fetch_add(1, Ordering::Relaxed);
            Ok(ChunkOutput::Rows(Vec::new()))
        }
    }

    /// The pipeline hands chunks over in order, and an error in any stage comes
    /// back as the result (no deadlock, no later chunk computed after a failed one).
    #[test]
    fn pipeline_applies_chunks_in_order_and_stops_at_the_first_error() {
        let frames = generate(&SyntheticSpec::new(SystemKind::EllipsoidLiquid, 300), 1);
        let hypers = Hypers::from_toml_str(
            "max_angular = 1\nmax_radial = 1\ncutoff_radius = 2.5\nradial_gaussian_width = 0.5",
        )
        .expect("hypers");
        let basis = Basis::new(&hypers).expect("basis");
        let system = System::new(&frames, &basis).expect("system");
        let chunks = system.center_chunks(200);
        assert!(chunks.len() >= 6, "{} chunks", chunks.len());
        let plan = OutputPlan::new(&system, Quantity::PowerSpectrumPerCenter);
        let run = |fail_at: usize, in_stage: bool, device_search: bool| {
            let runner = FailingRunner {
                fail_at,
                in_stage,
                device_search,
                computed: AtomicUsize::new(0),
            };
            let mut applied = Vec::new();
            let result = run_overlapped(&system, &chunks, &runner, &plan, &mut |c, _| {
                applied.push(c.clone());
                Ok(())
            });
            (result, applied, runner.computed.into_inner())
        };
        for device_search in [false, true] {
            let (result, applied, computed) = run(usize::MAX, false, device_search);
            assert!(result.is_ok());
            assert_eq!(applied, chunks);
            assert_eq!(computed, chunks.len());
            for in_stage in [false, true] {
                let k = 3;
                let (result, applied, computed) = run(chunks[k].start, in_stage, device_search);
                let what = format!("in_stage {in_stage}, device search {device_search}");
                let message = result.expect_err("the failure comes back").to_string();
                assert!(message.contains("on purpose"), "{what}: {message}");
                assert_eq!(applied, chunks[..k].to_vec(), "{what}");
                assert_eq!(computed, k, "{what}");
            }
            // A failing sink (apply) stops the pipeline too.
            let runner = FailingRunner {
                fail_at: usize::MAX,
                in_stage: false,
                device_search,
                computed: AtomicUsize::new(0),
            };
            let mut calls = 0;
            let result = run_overlapped(&system, &chunks, &runner, &plan, &mut |_, _| {
                calls += 1;
                if calls == 2 {
                    Err(Error::Device("sink full".into()))
                } else {
                    Ok(())
                }
            });
            assert!(result.is_err());
            assert_eq!(calls, 2);
        }
    }
}
