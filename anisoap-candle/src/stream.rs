//! Frames of extended XYZ files read one at a time, so trajectories of any length pass through
//! bounded memory.
//!
//! [`XyzFrames`] splits a file into frames (count line, comment line, particle lines) with the
//! block line walker of `lines`, and parses each with [`xyz::read_frame_lines`], so
//! the accepted format, the checks and the error messages (file and 1-based line) are exactly
//! those of [`xyz::read_xyz_file`]. A frame's lines stay where they were read (one buffer, no
//! copy per line); a large frame has its text checked as UTF-8 and its particle lines parsed
//! in parallel. [`crate::pipeline::SelectedFrames`] chains several files, selects a frame
//! range and remembers where each frame came from ([`FrameOrigin`]).

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::lines::{self, LineReader};
use crate::xyz;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most particles one frame may declare: the neighbour list of a larger frame could not be
/// held anyway (see [`crate::neighbors::DEFAULT_MAX_PAIRS`]).
pub const MAX_PARTICLES_PER_FRAME: usize = crate::neighbors::DEFAULT_MAX_PAIRS;

/// The frames of one extended XYZ source, parsed one at a time.
pub struct XyzFrames<R> {
    lines: LineReader<R>,
    path: PathBuf,
    /// Blank lines consumed by [`XyzFrames::has_more`] ahead of the next frame: the 0-based
    /// number of the first.
    blank: Option<usize>,
    /// Line ends of the frame being read (reused from frame to frame).
    ends: Vec<usize>,
    started: bool,
    /// Frames read ahead by [`XyzFrames::read_batch`], parsed, in order (an error last).
    queue: std::collections::VecDeque<Result<Frame>>,
    /// The source has nothing more for the queue (its end or an error was reached).
    source_done: bool,
    finished: bool,
}

impl XyzFrames<std::io::BufReader<std::fs::File>> {
    /// Opens `path` for streaming.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let size = file.metadata().map(|m| m.len()).ok();
        // The line walker reads blocks far larger than this buffer, which they bypass.
        let mut frames = XyzFrames::new(std::io::BufReader::with_capacity(1 << 16, file), path);
        if let Some(size) = size {
            frames.lines = frames.lines.with_size(size);
        }
        Ok(frames)
    }
}

/// The lines of a frame's text as `&str`, checked as UTF-8 (in parallel for a large frame:
/// blocks of whole lines are checked on their own).
fn frame_lines<'a>(span: &'a [u8], ends: &[usize]) -> std::io::Result<Vec<&'a str>> {
    let block_lines = xyz::BLOCK_LINES;
    let start_of = |k: usize| if k == 0 { 0 } else { ends[k - 1] + 1 };
    let to_lines = |from: usize, to: usize| -> std::io::Result<Vec<&'a str>> {
        if from == to {
            return Ok(Vec::new());
        }
        let base = start_of(from);
        let text = std::str::from_utf8(&span[base..ends[to - 1]]).map_err(|_| lines::not_utf8())?;
        Ok((from..to)
            .map(|k| {
                let line = &text[start_of(k) - base..ends[k] - base];
                line.trim_end_matches('\r')
            })
            .collect())
    };
    if ends.len() < xyz::PARALLEL_MIN_LINES || rayon::current_num_threads() < 2 {
        return to_lines(0, ends.len());
    }
    let blocks: Vec<std::io::Result<Vec<&'a str>>> = (0..ends.len().div_ceil(block_lines))
        .into_par_iter()
        .map(|b| to_lines(b * block_lines, ((b + 1) * block_lines).min(ends.len())))
        .collect();
    let mut all = Vec::with_capacity(ends.len());
    for block in blocks {
        all.extend(block?);
    }
    Ok(all)
}

/// An I/O failure on `path`.
fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl<R: Read> XyzFrames<R> {
    /// Streams frames from `reader`; `path` names it in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        XyzFrames {
            lines: LineReader::new(reader, false),
            path: path.to_path_buf(),
            blank: None,
            ends: Vec::new(),
            started: false,
            queue: std::collections::VecDeque::new(),
            source_done: false,
            finished: false,
        }
    }

    fn xyz_error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Xyz {
            path: self.path.clone(),
            line: line + 1,
            message: message.into(),
        }
    }

    fn io_error(&self, error: std::io::Error) -> Error {
        io_error(&self.path, error)
    }

    /// Consumes the blank lines ahead; returns the 0-based number of the first blank line
    /// consumed (by this call or an earlier [`XyzFrames::has_more`]), `None` when there was
    /// none. Leaves the reader on a non-blank line or at the end.
    fn skip_blank_lines(&mut self) -> Result<Option<usize>> {
        loop {
            let number = self.lines.line_number();
            let blank = match self.lines.peek_line() {
                Ok(Some(line)) => lines::is_blank(line),
                Ok(None) => return Ok(self.blank),
                Err(e) => Err(e),
            }
            .map_err(|e| self.io_error(e))?;
            if !blank {
                return Ok(self.blank);
            }
            self.blank.get_or_insert(number);
            self.lines
                .skip_lines(1, true)
                .map_err(|e| self.io_error(e))?;
        }
    }

    /// True when a non-blank line is ahead (checked as UTF-8, as reading it would).
    fn line_ahead(&mut self) -> Result<bool> {
        match self.lines.peek_line() {
            Ok(Some(line)) => std::str::from_utf8(line)
                .map(|_| true)
                .map_err(|_| self.io_error(lines::not_utf8())),
            Ok(None) => Ok(false),
            Err(e) => Err(self.io_error(e)),
        }
    }

    /// True when another frame follows (anything but blank lines is left). Reads ahead
    /// without consuming: the next [`Iterator::next`] sees the same lines.
    pub fn has_more(&mut self) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        if !self.queue.is_empty() {
            return Ok(true);
        }
        if self.source_done {
            return Ok(false);
        }
        self.skip_blank_lines()?;
        self.line_ahead()
    }

    /// Skips the next frame without parsing its particle lines; `false` at the end. Errors
    /// as [`Iterator::next`] would give them for the count line or a truncated frame. (A
    /// frame that [`Iterator::next`] already read ahead and parsed is dropped, or its error
    /// returned.)
    pub fn skip_frame(&mut self) -> Result<bool> {
        if let Some(frame) = self.queue.pop_front() {
            self.finished = frame.is_err();
            return frame.map(|_| true);
        }
        if self.finished || self.source_done || !self.has_more()? {
            self.finished = true;
            return Ok(false);
        }
        self.blank = None;
        let first = self.lines.line_number();
        let count_line = match self.lines.next_line() {
            Ok(line) => line.map(|l| String::from_utf8_lossy(lines::trim_cr(l)).into_owned()),
            Err(e) => return Err(io_error(&self.path, e)),
        }
        .expect("has_more saw a non-blank line");
        self.started = true;
        let natoms: usize = count_line.trim().parse().map_err(|_| {
            self.xyz_error(
                first,
                format!(
                    "expected the number of particles (a non-negative integer), found {:?}",
                    count_line.trim()
                ),
            )
        })?;
        let wanted = natoms.saturating_add(1);
        let skipped = self
            .lines
            .skip_lines(wanted, true)
            .map_err(|e| self.io_error(e))?;
        if skipped < wanted {
            self.finished = true;
            return Err(self.xyz_error(
                first + skipped + 1,
                format!("truncated frame: expected {natoms} particle lines"),
            ));
        }
        Ok(true)
    }

    /// The sequential part of reading a frame: blank lines, the count line, and the frame's
    /// lines taken from the source (`ends` gets their ends). Returns the 0-based number of
    /// the count line, the number of lines wanted (fewer were there if the frame is
    /// truncated) and the lines' bytes; `None` at the end.
    fn take_frame(&mut self, ends: &mut Vec<usize>) -> Result<Option<(usize, usize, &[u8])>> {
        // Blank lines are allowed only after the last frame.
        if let Some(first) = self.skip_blank_lines()? {
            self.blank = None;
            return match self.line_ahead()? {
                true => Err(self.xyz_error(
                    first,
                    "expected the number of particles (a non-negative integer), found \"\"",
                )),
                false if self.started => Ok(None),
                false => Err(self.xyz_error(0, "empty file: expected the number of particles")),
            };
        }
        let first = self.lines.line_number();
        let count_line = match self.lines.peek_line() {
            Ok(line) => {
                line.map(|l| std::str::from_utf8(lines::trim_cr(l)).map(|t| t.trim().to_string()))
            }
            Err(e) => return Err(io_error(&self.path, e)),
        };
        let natoms = match count_line {
            None => {
                if !self.started {
                    return Err(self.xyz_error(0, "empty file: expected the number of particles"));
                }
                return Ok(None);
            }
            Some(Err(_)) => return Err(self.io_error(lines::not_utf8())),
            Some(Ok(text)) => match text.parse::<usize>() {
                Ok(n) if n > MAX_PARTICLES_PER_FRAME => {
                    return Err(self.xyz_error(
                        first,
                        format!(
                            "{text} particles in one frame: more than the limit of \
                             {MAX_PARTICLES_PER_FRAME}"
                        ),
                    ))
                }
                n => n.ok(),
            },
        };
        self.started = true;
        // A count line that does not parse is reported by the frame parser itself; the lines
        // that follow are read only as far as the file goes.
        let wanted = natoms.map_or(1, |n| n + 2);
        let span = self
            .lines
            .take_lines(wanted, ends)
            .map_err(|error| io_error(&self.path, error))?;
        Ok(Some((first, wanted, span)))
    }

    fn read_frame(&mut self) -> Result<Option<Frame>> {
        let path = self.path.clone();
        let mut ends = std::mem::take(&mut self.ends);
        let parsed = match self.take_frame(&mut ends) {
            Ok(Some((first, wanted, span))) => {
                parse_frame(&path, first, wanted, span, &ends).map(Some)
            }
            other => other.map(|_| None),
        };
        self.ends = ends;
        self.lines.release();
        parsed
    }

    /// Reads frames ahead into the queue: small frames (up to [`BATCH_LINES`] lines in all)
    /// are taken one after the other and parsed in parallel, each on its own; a large one
    /// (parsed in parallel by itself) or the end closes the batch. What the frames would
    /// give one at a time, in order: after the first error, nothing.
    fn read_batch(&mut self) {
        let path = self.path.clone();
        let mut pending: Vec<(usize, usize, Vec<u8>, Vec<usize>)> = Vec::new();
        let mut lines_taken = 0usize;
        // What closed the batch: a large frame, the end (`Ok(None)`) or an error.
        let mut last: Option<Result<Option<Frame>>> = None;
        while pending.len() < BATCH_FRAMES && lines_taken < BATCH_LINES {
            let mut ends = std::mem::take(&mut self.ends);
            match self.take_frame(&mut ends) {
                Ok(Some((first, wanted, span))) if ends.len() < xyz::PARALLEL_MIN_LINES => {
                    lines_taken += ends.len();
                    pending.push((first, wanted, span.to_vec(), ends));
                    continue;
                }
                Ok(Some((first, wanted, span))) => {
                    last = Some(parse_frame(&path, first, wanted, span, &ends).map(Some));
                    self.ends = ends;
                }
                other => last = Some(other.map(|_| None)),
            }
            break;
        }
        self.lines.release();
        let parsed: Vec<Result<Frame>> = pending
            .par_iter()
            .map(|(first, wanted, text, ends)| parse_frame(&path, *first, *wanted, text, ends))
            .collect();
        for frame in parsed {
            let failed = frame.is_err();
            self.queue.push_back(frame);
            if failed {
                self.source_done = true;
                return;
            }
        }
        match last {
            Some(Ok(Some(frame))) => self.queue.push_back(Ok(frame)),
            Some(Ok(None)) => self.source_done = true,
            Some(Err(e)) => {
                self.queue.push_back(Err(e));
                self.source_done = true;
            }
            None => {}
        }
    }
}

/// Frames read ahead and parsed together at most (when rayon has several threads).
pub(crate) const BATCH_FRAMES: usize = 4096;

/// Lines of small frames read ahead and parsed together at most.
pub(crate) const BATCH_LINES: usize = 1 << 16;

/// Parses a frame taken by [`XyzFrames::take_frame`].
fn parse_frame(
    path: &Path,
    first: usize,
    wanted: usize,
    span: &[u8],
    ends: &[usize],
) -> Result<Frame> {
    let mut refs = frame_lines(span, ends).map_err(|error| io_error(path, error))?;
    // A truncated frame: trailing blank lines do not count as particle lines.
    while refs.len() > 2 && refs.len() < wanted && refs[refs.len() - 1].trim().is_empty() {
        refs.pop();
    }
    xyz::read_frame_lines(&refs, first, path)
}

impl<R: Read> Iterator for XyzFrames<R> {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        if self.finished {
            return None;
        }
        if self.queue.is_empty() && !self.source_done && rayon::current_num_threads() > 1 {
            self.read_batch();
        }
        if let Some(frame) = self.queue.pop_front() {
            self.finished = frame.is_err();
            return Some(frame);
        }
        if self.source_done {
            self.finished = true;
            return None;
        }
        match self.read_frame() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

/// Where a frame came from: its file and its 0-based index in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameOrigin {
    /// Input file.
    pub file: PathBuf,
    /// 0-based frame index within `file`.
    pub index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> Result<Vec<Frame>> {
        XyzFrames::new(std::io::Cursor::new(text.as_bytes()), Path::new("<s>")).collect()
    }

    fn whole(text: &str) -> Result<Vec<Frame>> {
        xyz::read_xyz_str(text, Path::new("<s>"))
    }

    /// The streaming reader gives the same frames and the same errors as the whole-file one.
    #[test]
    fn agrees_with_the_whole_file_reader() {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ellipsoids.xyz"),
        )
        .unwrap();
        let frames = stream(&example).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames, whole(&example).unwrap());
        let lines: Vec<&str> = example.lines().collect();
        let variants = [
            format!("{example}\n\n  \n"),
            format!("{example}\n\nx\n"),
            lines[..10].join("\n"),
            lines[..27].join("\n"),
            format!("\n{example}"),
            String::new(),
            "\n\n".into(),
            example.replacen("24\n", "25\n", 1),
            example.replacen("24\n", "x\n", 1),
            example.replacen("24\n", "99999999999999999999999\n", 1),
            lines[..26].join("\r\n"),
        ];
        for text in &variants {
            same_as_whole(text);
        }
    }

    fn same_as_whole(text: &str) {
        let (a, b) = (stream(text), whole(text));
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
            _ => panic!("stream {a:?} vs whole {b:?} for {text:?}"),
        }
    }

    /// `n` particle lines of one frame, then a small frame.
    fn two_frames(n: usize, edit: impl Fn(usize, String) -> String) -> String {
        let mut text = format!("{n}\nProperties=species:S:1:pos:R:3:q:R:1\n");
        for i in 0..n {
            let line = format!("C {} {} 0.5 {}", i as f64 * 0.25, -(i as f64), i % 7);
            text.push_str(&edit(i, line));
            text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
        }
        text.push_str("1\n\nH 0 0 0\n\n");
        text
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// A frame large enough for the parallel paths (UTF-8 check, particle lines): the same
    /// frames and errors as the whole-file reader, with 1 or 4 threads.
    #[test]
    fn large_frames_agree_with_the_whole_file_reader() {
        let n = 2 * xyz::PARALLEL_MIN_LINES + 5;
        let good = two_frames(n, |_, l| l);
        let truncated = good[..good.len() / 2].to_string();
        let bad = two_frames(n, |i, l| match i {
            30_000 => l.replace("0.5", "0.5.5"),
            31_000 => l + " 1",
            _ => l,
        });
        let blank_lines_inside = two_frames(n, |i, l| if i == n - 3 { String::new() } else { l });
        for threads in [1, 4] {
            in_pool(threads, || {
                let frames = stream(&good).unwrap();
                assert_eq!(frames.len(), 2);
                assert_eq!(frames[0].len(), n);
                assert_eq!(
                    frames[0].positions[n - 1],
                    [(n - 1) as f64 * 0.25, -((n - 1) as f64), 0.5]
                );
                for text in [&good, &truncated, &bad, &blank_lines_inside] {
                    same_as_whole(text);
                }
                let err = stream(&bad).unwrap_err().to_string();
                assert!(
                    err.starts_with("<s>:30003: column pos: cannot parse \"0.5.5\""),
                    "{err}"
                );
            });
        }
    }

    proptest::proptest! {
        /// On mutated inputs (bytes replaced, dropped or inserted, so also line breaks, CRLF,
        /// blank lines and text that is not UTF-8), streaming gives what the whole-file
        /// reader gives, frame for frame and error for error, and never panics.
        #[test]
        fn mutated_inputs_agree_with_the_whole_file_reader(
            ops in proptest::collection::vec((0usize..10_000, proptest::prelude::any::<u8>(), 0u8..3), 1..6)
        ) {
            let seed = "2\nLattice=\"5 0 0 0 5 0 0 0 5\" Properties=species:S:1:pos:R:3:c_q:R:4\nH 0.5 1 1.5 1 0 0 0\r\nC 2 2.5 3 0.5 0.5 0.5 0.5\n\n1\n\nO 0 0 0 1 0 0 0\n";
            let mut bytes = seed.as_bytes().to_vec();
            for (at, byte, op) in ops {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            let streamed: Vec<std::result::Result<Frame, String>> =
                XyzFrames::new(std::io::Cursor::new(&bytes), Path::new("<s>"))
                    .map(|r| r.map_err(|e| e.to_string()))
                    .collect();
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let whole = whole(text).map_err(|e| e.to_string());
                    match whole {
                        Ok(frames) => proptest::prop_assert_eq!(streamed, frames.into_iter().map(Ok).collect::<Vec<_>>()),
                        Err(e) => proptest::prop_assert_eq!(streamed.last(), Some(&Err(e))),
                    }
                }
                // The bytes that are not UTF-8 end the stream with an I/O error, unless an
                // error before them does (the one the whole-file reader finds first too).
                Err(_) => match streamed.last() {
                    Some(Err(m)) if m.contains("UTF-8") => {}
                    Some(Err(m)) => {
                        let lossy = String::from_utf8_lossy(&bytes);
                        let first = whole(&lossy).map_err(|e| e.to_string()).err();
                        proptest::prop_assert_eq!(first.as_ref(), Some(m));
                    }
                    other => proptest::prop_assert!(false, "{:?}", other),
                },
            }
        }
    }

    /// Every result, in order, as `next` gives them (errors as text).
    fn results(text: &str) -> Vec<std::result::Result<Frame, String>> {
        XyzFrames::new(std::io::Cursor::new(text.as_bytes()), Path::new("<s>"))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    /// Small frames are read ahead and parsed in parallel batches when rayon has threads:
    /// the same frames, then the same error, as one at a time, wherever the error is (inside
    /// a batch, at its end, after a large frame) and whatever ends the file.
    #[test]
    fn batches_of_small_frames_read_as_one_at_a_time() {
        let small = |k: usize| format!("2\nk={k}\nH {k} 0 0\nC 0 {k}.5 1\n");
        let many: String = (0..3 * super::BATCH_FRAMES / 2).map(small).collect();
        let large = two_frames(xyz::PARALLEL_MIN_LINES, |_, l| l);
        let variants = [
            many.clone(),
            format!("{many}\n\n"),
            format!("{many}\n\nx\n"),
            many.replacen("H 70 0 0", "H 70 y 0", 1),
            many.replacen("H 5000 0 0", "Qq 5000 0 0", 1),
            many.replacen("C 0 4095.5 1\n", "C 0 4095.5 1\n\n", 1),
            format!("{many}3\nx\nH 0 0 0\n"),
            format!(
                "{}{large}{}",
                &many[..many.len() / 3],
                many.replacen("H 10 0 0", "H 10", 1)
            ),
            many.replacen("2\nk=100\n", "x\nk=100\n", 1),
        ];
        for text in &variants {
            let one = in_pool(1, || results(text));
            let batched = in_pool(4, || results(text));
            assert_eq!(one, batched);
            assert!(one.len() > 70, "{}", one.len());
        }
        let last = in_pool(4, || results(&variants[3]))
            .pop()
            .unwrap()
            .unwrap_err();
        assert!(last.starts_with("<s>:283: column pos"), "{last}");
    }

    /// Text that is not UTF-8 is an I/O error naming the file, in a large frame (checked in
    /// parallel blocks) as in a small one, and in a skipped frame.
    #[test]
    fn invalid_utf8_is_an_io_error() {
        let n = 2 * xyz::PARALLEL_MIN_LINES;
        let mut bytes = two_frames(n, |_, l| l).into_bytes();
        let at = bytes.len() - 100;
        bytes[at] = 0xff;
        for threads in [1, 4] {
            let result: Result<Vec<Frame>> = in_pool(threads, || {
                XyzFrames::new(std::io::Cursor::new(&bytes), Path::new("<s>")).collect()
            });
            match result {
                Err(Error::Io { path, error }) => {
                    assert_eq!(path, Path::new("<s>"));
                    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
                }
                other => panic!("{other:?}"),
            }
        }
        let small = b"1\n\nH 0 0 0\n1\n\nH 0 \xff 0\n";
        let mut frames = XyzFrames::new(std::io::Cursor::new(&small[..]), Path::new("<s>"));
        assert!(frames.skip_frame().unwrap());
        assert!(matches!(frames.skip_frame(), Err(Error::Io { .. })));
    }

    /// Skipping counts frames and reports a truncated one at its first missing line, as
    /// reading does; blank lines between frames are passed over.
    #[test]
    fn skip_frame_counts_and_reports() {
        let text = "2\n\nH 0 0 0\nH 1 1 1\n\n\n1\nc\nC 0 0 0\n3\nx\nH 0 0 0\n";
        let mut frames = XyzFrames::new(std::io::Cursor::new(text.as_bytes()), Path::new("<s>"));
        assert!(frames.skip_frame().unwrap());
        assert!(frames.has_more().unwrap());
        assert!(frames.skip_frame().unwrap());
        let err = frames.skip_frame().unwrap_err().to_string();
        assert_eq!(err, "<s>:13: truncated frame: expected 3 particle lines");
        assert!(!frames.skip_frame().unwrap());
        // After skipping, reading goes on from the next frame with the right line numbers.
        let text = "1\n\nH 0 0 0\n1\n\nH 0 x 0\n";
        let mut frames = XyzFrames::new(std::io::Cursor::new(text.as_bytes()), Path::new("<s>"));
        assert!(frames.skip_frame().unwrap());
        let err = frames.next().unwrap().unwrap_err().to_string();
        assert!(err.starts_with("<s>:6: column pos"), "{err}");
    }
}
