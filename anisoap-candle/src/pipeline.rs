//! Trajectories of any length in bounded memory: frames are read in batches, computed with
//! the calculator's chunk loop, and rows are handed to a [`RowSink`] as soon as they are done.
//!
//! The feature columns depend on the set of types (and, in the original, on which pair types
//! occur) in the frames computed together. A run that does not fit in one batch therefore fixes
//! its columns before computing ([`Columns`]):
//! * [`Columns::Original`] (the default): the original's columns for all selected frames. When
//!   the selection fits in one batch it is exactly today's in-memory computation; otherwise a
//!   first pass (parse + neighbour search, no descriptor) collects the types and pair types.
//! * [`Columns::Species`]: every listed type is a centre block with every listed type as a
//!   neighbour column ([`Layout::full`]); the columns are then the same for any subset of frames,
//!   which is what shards of one run need.
//!
//! Frames are selected by a global range (`--frames`, `--shard`), skipped without parsing.

use crate::descriptor::{Calculator, Quantity, RowBlock};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::stream::{FrameOrigin, XyzFrames};
use crate::system::{Layout, System};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;

/// How the feature columns are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// The original's batch-dependent columns, over all selected frames.
    Original,
    /// A fixed species list: every type a centre block, every type a neighbour column.
    Species(Vec<i32>),
}

/// Receives the output of a run: its columns once, then rows in order.
pub trait RowSink {
    /// Called once, before any rows, with the feature columns and the row width.
    fn columns(&mut self, layout: &Layout, width: usize) -> Result<()>;
    /// Finished rows; `block.frame` holds global frame indices (over all input files).
    fn rows(&mut self, block: RowBlock) -> Result<()>;
}

/// Bounds of one batch of frames held in memory at once.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// A batch stops growing once it holds this many particles (a larger frame is a batch of
    /// its own).
    pub max_particles: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_particles: 1024,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Frames computed.
    pub frames: usize,
    /// Pairs computed.
    pub pairs: usize,
    /// Rows written.
    pub rows: usize,
    /// Columns written.
    pub width: usize,
    /// The feature columns.
    pub layout: Layout,
}

/// Frames of the input files with global indices, restricted to a range, skipping the frames
/// before it without parsing them.
pub struct SelectedFrames {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, XyzFrames<std::io::BufReader<std::fs::File>>, usize)>,
    next_global: usize,
    range: Range<usize>,
}

impl SelectedFrames {
    /// Frames `range` (global, 0-based, over `files` in order).
    pub fn new(files: &[PathBuf], range: Range<usize>) -> Self {
        SelectedFrames {
            files: Vec::from(files).into_iter(),
            current: None,
            next_global: 0,
            range,
        }
    }
}

impl Iterator for SelectedFrames {
    /// `(global frame index, origin, frame)`.
    type Item = Result<(usize, FrameOrigin, Frame)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next_global >= self.range.end {
                return None;
            }
            if self.current.is_none() {
                let file = self.files.next()?;
                match XyzFrames::open(&file) {
                    Ok(frames) => self.current = Some((file, frames, 0)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (file, frames, index) = self.current.as_mut().expect("current file");
            if self.next_global < self.range.start {
                match frames.skip_frame() {
                    Ok(true) => {
                        *index += 1;
                        self.next_global += 1;
                    }
                    Ok(false) => self.current = None,
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            match frames.next() {
                Some(Ok(frame)) => {
                    let origin = FrameOrigin {
                        file: file.clone(),
                        index: *index,
                    };
                    *index += 1;
                    let global = self.next_global;
                    self.next_global += 1;
                    return Some(Ok((global, origin, frame)));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => self.current = None,
            }
        }
    }
}

/// A batch of consecutive selected frames.
struct Batch {
    first_global: usize,
    frames: Vec<Frame>,
    origins: Vec<FrameOrigin>,
}

/// Reads the next batch (`None` at the end). `prepare` may edit each frame (e.g. set default
/// semi-axes) and fails with the frame's origin.
fn next_batch(
    source: &mut SelectedFrames,
    limits: BatchLimits,
    prepare: &dyn Fn(&mut Frame, &FrameOrigin) -> Result<()>,
) -> Result<Option<Batch>> {
    let mut batch = Batch {
        first_global: 0,
        frames: Vec::new(),
        origins: Vec::new(),
    };
    let mut particles = 0usize;
    while particles < limits.max_particles.max(1) {
        let Some(item) = source.next() else { break };
        let (global, origin, mut frame) = item?;
        prepare(&mut frame, &origin)?;
        if batch.frames.is_empty() {
            batch.first_global = global;
        }
        particles = particles.saturating_add(frame.len());
        batch.frames.push(frame);
        batch.origins.push(origin);
    }
    Ok((!batch.frames.is_empty()).then_some(batch))
}

/// Rewrites a library error about frame `k` of a batch to name its file and index there.
fn locate(error: Error, origins: &[FrameOrigin]) -> Error {
    match error {
        Error::Frame { frame, message } if frame < origins.len() => Error::InFile {
            path: origins[frame].file.clone(),
            frame: origins[frame].index,
            message,
        },
        other => other,
    }
}

/// Everything a run needs besides the calculator and the sink.
pub struct RunOptions<'a> {
    /// Input files, in order.
    pub files: &'a [PathBuf],
    /// Global frame range to compute.
    pub frames: Range<usize>,
    /// What to compute.
    pub quantity: Quantity,
    /// How the columns are chosen.
    pub columns: Columns,
    /// Batch bounds.
    pub limits: BatchLimits,
    /// Per-frame edit applied after parsing (e.g. default semi-axes).
    pub prepare: &'a dyn Fn(&mut Frame, &FrameOrigin) -> Result<()>,
    /// Every particle type of the selected frames, when known in advance (lets the columns
    /// pass stop early); `None` reads until the end.
    pub known_types: Option<&'a BTreeSet<i32>>,
}

/// Progress of a run: `(frames done, pairs done)`.
pub type RunProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Computes `options.quantity` for the selected frames of `options.files`, streaming rows to
/// `sink`. Memory is bounded by one batch (frames and their per-particle data) and one chunk.
pub fn run(
    calculator: &Calculator,
    options: &RunOptions,
    sink: &mut dyn RowSink,
    progress: RunProgress,
) -> Result<RunSummary> {
    let basis = calculator.basis();
    let mut source = SelectedFrames::new(options.files, options.frames.clone());
    let first = next_batch(&mut source, options.limits, options.prepare)?;
    let Some(first) = first else {
        return Err(Error::Frame {
            frame: options.frames.start,
            message: "no frames selected".into(),
        });
    };
    let fits_in_one_batch = !source_has_more(&mut source)?;
    let columns: Option<Layout> = match &options.columns {
        Columns::Species(types) => Some(Layout::full(types.clone(), basis.n_radial.clone())),
        Columns::Original if fits_in_one_batch => None,
        Columns::Original => Some(original_columns(calculator, options)?),
    };
    let mut summary = RunSummary {
        frames: 0,
        pairs: 0,
        rows: 0,
        width: 0,
        layout: Layout::full(Vec::new(), basis.n_radial.clone()),
    };
    let mut started = false;
    // The first batch was read before the columns were known; it is computed first, then
    // reading continues where it stopped.
    let mut batch = Some(first);
    while let Some(current) = batch.take() {
        let system = {
            let _span = tracing::info_span!("prepare", frames = current.frames.len()).entered();
            System::with_counter(
                &current.frames,
                basis,
                columns.as_ref(),
                calculator.pair_counter(),
            )
            .map_err(|e| locate(e, &current.origins))?
        };
        if !started {
            let plan_width = crate::backend::OutputPlan::new(&system, options.quantity).width;
            let mut layout = system.layout.clone();
            layout.is_sample.clear();
            layout.n_frames = 0;
            sink.columns(&layout, plan_width)?;
            summary.layout = layout;
            summary.width = plan_width;
            started = true;
        }
        let offset = current.first_global;
        let mut global_frames = Vec::new();
        let mut rows = 0;
        calculator
            .compute_streaming(
                &system,
                options.quantity,
                &mut |block| {
                    global_frames.clear();
                    global_frames.extend(block.frame.iter().map(|&f| f + offset));
                    rows += block.rows();
                    sink.rows(RowBlock {
                        frame: &global_frames,
                        ..block
                    })
                },
                &mut |_, _| {},
            )
            .map_err(|e| locate(e, &current.origins))?;
        summary.frames += current.frames.len();
        summary.pairs += system.n_pairs();
        summary.rows += rows;
        progress(summary.frames, summary.pairs);
        drop(system);
        batch = next_batch(&mut source, options.limits, options.prepare)?;
    }
    Ok(summary)
}

/// True when `source` has at least one more selected frame (nothing is consumed: the file
/// readers keep what they looked at).
fn source_has_more(source: &mut SelectedFrames) -> Result<bool> {
    if source.next_global >= source.range.end {
        return Ok(false);
    }
    loop {
        if let Some((_, frames, _)) = source.current.as_mut() {
            if frames.has_more()? {
                return Ok(true);
            }
            source.current = None;
        }
        let Some(file) = source.files.next() else {
            return Ok(false);
        };
        source.current = Some((file.clone(), XyzFrames::open(&file)?, 0));
    }
}

/// The original's columns over all selected frames: a first pass that parses batches and runs
/// the neighbour counting pass (no descriptor) to collect types and pair types. When the types
/// of the selection are known in advance (`options.known_types`, from [`scan_inputs`]), the
/// pass stops as soon as every pair of them has been seen: then the columns are complete.
fn original_columns(calculator: &Calculator, options: &RunOptions) -> Result<Layout> {
    let _span = tracing::info_span!("columns_pass").entered();
    let basis = calculator.basis();
    let mut source = SelectedFrames::new(options.files, options.frames.clone());
    let mut types = BTreeSet::new();
    let mut pair_types = BTreeSet::new();
    let complete = |types: &BTreeSet<i32>, pairs: &BTreeSet<(i32, i32)>| match options.known_types {
        Some(known) => types == known && pairs.len() == known.len() * known.len(),
        None => false,
    };
    while let Some(batch) = next_batch(&mut source, options.limits, options.prepare)? {
        let system = System::new(&batch.frames, basis).map_err(|e| locate(e, &batch.origins))?;
        types.extend(system.layout.types.iter().copied());
        pair_types.extend(system.layout.pair_types());
        if complete(&types, &pair_types) {
            break;
        }
    }
    Ok(Layout::from_pair_types(
        &types,
        &pair_types,
        basis.n_radial.clone(),
    ))
}

/// Frame range of shard `k` of `n` over `total` frames: contiguous, in order, sizes differing
/// by at most one, tiling `0..total`.
pub fn shard_range(k: usize, n: usize, total: usize) -> Result<Range<usize>> {
    if n == 0 || k >= n {
        return Err(Error::Hypers(format!(
            "shard {k}/{n}: expected K/N with 0 <= K < N"
        )));
    }
    let bound = |i: usize| -> Result<usize> {
        // i * total / n without overflow (i <= n).
        (i as u128 * total as u128 / n as u128)
            .try_into()
            .map_err(|_| Error::TooLarge("shard bounds".into()))
    };
    Ok(bound(k)?..bound(k + 1)?)
}

/// What a quick scan of one input file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputScan {
    /// The file.
    pub path: PathBuf,
    /// Number of frames (count lines followed by their lines; not parsed).
    pub frames: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// XXH3-128 of the bytes, as 32 hex digits (identifies the input in output metadata).
    pub xxh3_128: String,
    /// Particle types found (read from the type column only; a token that is not a type is
    /// left to the full parser to report).
    pub types: BTreeSet<i32>,
}

/// Counts the frames of each file without parsing them and checksums its bytes: one
/// sequential read (this is what `--shard` splits and what output metadata records).
pub fn scan_inputs(files: &[PathBuf]) -> Result<Vec<InputScan>> {
    files.iter().map(|file| scan_input(file)).collect()
}

fn scan_input(path: &std::path::Path) -> Result<InputScan> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let xyz = |line: usize, message: String| Error::Xyz {
        path: path.to_path_buf(),
        line,
        message,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // One walk over the bytes: lines found in blocks, every byte hashed as it is read.
    let mut lines = crate::lines::LineReader::new(file, true);
    let mut frames = 0usize;
    let mut trailing_blank = false;
    let mut types = BTreeSet::new();
    loop {
        let number = lines.line_number() + 1;
        let Some(line) = lines.next_line().map_err(io)? else {
            break;
        };
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            trailing_blank = true;
            continue;
        }
        if trailing_blank && frames > 0 {
            return Err(xyz(number, "unexpected text after blank lines".into()));
        }
        let count: usize = text.parse().map_err(|_| {
            xyz(
                number,
                format!(
                    "expected the number of particles (a non-negative integer), found {text:?}"
                ),
            )
        })?;
        // Comment line + particle lines.
        let remaining = count
            .checked_add(1)
            .ok_or_else(|| xyz(number, "particle count too large".into()))?;
        frames += 1;
        let missing = |got: usize| {
            xyz(
                number,
                format!(
                    "truncated frame: {} lines missing at the end of the file",
                    remaining - got
                ),
            )
        };
        let Some(comment) = lines.next_line().map_err(io)? else {
            return Err(missing(0));
        };
        let Some((k, symbol)) = crate::xyz::type_token(String::from_utf8_lossy(comment).trim_end())
        else {
            // No type column to read: the particle lines are only counted.
            let skipped = lines.skip_lines(count, false).map_err(io)?;
            if skipped < count {
                return Err(missing(1 + skipped));
            }
            continue;
        };
        // The type token of the previous line: consecutive particles mostly share it.
        let mut last: Vec<u8> = Vec::new();
        for got in 1..remaining {
            let Some(line) = lines.next_line().map_err(io)? else {
                return Err(missing(got));
            };
            let token = match crate::lines::ascii_token(line, k) {
                Ok(Some(token)) if token == last.as_slice() => continue,
                Ok(Some(token)) => {
                    last.clear();
                    last.extend_from_slice(token);
                    std::str::from_utf8(token).ok().map(str::to_string)
                }
                Ok(None) => None,
                Err(()) => String::from_utf8_lossy(line)
                    .split_whitespace()
                    .nth(k)
                    .map(str::to_string),
            };
            if let Some(t) = token.and_then(|tok| crate::xyz::type_of_token(&tok, symbol)) {
                types.insert(t);
            }
        }
    }
    Ok(InputScan {
        path: path.to_path_buf(),
        frames,
        bytes: lines.bytes_read(),
        xxh3_128: format!("{:032x}", lines.digest128()),
        types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_the_frames() {
        for total in [0usize, 1, 7, 16, 1000] {
            for n in [1usize, 2, 3, 4, 16] {
                let mut next = 0;
                for k in 0..n {
                    let r = shard_range(k, n, total).unwrap();
                    assert_eq!(r.start, next);
                    assert!(r.len() <= total / n + 1);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
        assert!(shard_range(4, 4, 10).is_err());
        assert!(shard_range(0, 0, 10).is_err());
        assert_eq!(shard_range(1, 2, usize::MAX).unwrap().end, usize::MAX);
    }
}
