//! Frames of extended XYZ files read one at a time, so trajectories of any length pass through
//! bounded memory.
//!
//! [`XyzFrames`] splits a file into frames line by line (count line, comment line, particle
//! lines) and parses each with [`xyz::read_frame_lines`], so the accepted format, the checks and
//! the error messages (file and 1-based line) are exactly those of [`xyz::read_xyz_file`].
//! [`crate::pipeline::SelectedFrames`] chains several files, selects a frame range and
//! remembers where each frame came from ([`FrameOrigin`]).

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::xyz;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Most particles one frame may declare: the neighbour list of a larger frame could not be
/// held anyway (see [`crate::neighbors::DEFAULT_MAX_PAIRS`]).
pub const MAX_PARTICLES_PER_FRAME: usize = crate::neighbors::DEFAULT_MAX_PAIRS;

/// The frames of one extended XYZ source, parsed one at a time.
pub struct XyzFrames<R> {
    reader: R,
    path: PathBuf,
    /// Lines consumed so far.
    line: usize,
    /// Lines read ahead (by [`XyzFrames::has_more`]), with their 0-based numbers.
    pending: std::collections::VecDeque<(usize, String)>,
    started: bool,
    finished: bool,
}

impl XyzFrames<std::io::BufReader<std::fs::File>> {
    /// Opens `path` for streaming.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(XyzFrames::new(
            std::io::BufReader::with_capacity(1 << 20, file),
            path,
        ))
    }
}

impl<R: BufRead> XyzFrames<R> {
    /// Streams frames from `reader`; `path` names it in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        XyzFrames {
            reader,
            path: path.to_path_buf(),
            line: 0,
            pending: std::collections::VecDeque::new(),
            started: false,
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

    /// The next line without its line terminator, with its 0-based number; `None` at the end.
    fn next_line(&mut self) -> Result<Option<(usize, String)>> {
        if let Some(pending) = self.pending.pop_front() {
            return Ok(Some(pending));
        }
        self.read_new_line()
    }

    /// Reads a line from the source (not from the look-ahead).
    fn read_new_line(&mut self) -> Result<Option<(usize, String)>> {
        let mut text = String::new();
        let n = self
            .reader
            .read_line(&mut text)
            .map_err(|error| Error::Io {
                path: self.path.clone(),
                error,
            })?;
        if n == 0 {
            return Ok(None);
        }
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        let number = self.line;
        self.line += 1;
        Ok(Some((number, text)))
    }

    /// True when another frame follows (anything but blank lines is left). Reads ahead
    /// without consuming: the next [`Iterator::next`] sees the same lines.
    pub fn has_more(&mut self) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        if self.pending.iter().any(|(_, l)| !l.trim().is_empty()) {
            return Ok(true);
        }
        while let Some(line) = self.read_new_line()? {
            let blank = line.1.trim().is_empty();
            self.pending.push_back(line);
            if !blank {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Skips the next frame without parsing its particle lines; `false` at the end. Errors
    /// as [`Iterator::next`] would give them for the count line or a truncated frame.
    pub fn skip_frame(&mut self) -> Result<bool> {
        if self.finished || !self.has_more()? {
            self.finished = true;
            return Ok(false);
        }
        let (first, count_line) = loop {
            let line = self.next_line()?.expect("has_more saw a non-blank line");
            if !line.1.trim().is_empty() {
                break line;
            }
        };
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
        for k in 0..=natoms {
            if self.next_line()?.is_none() {
                self.finished = true;
                return Err(self.xyz_error(
                    first + k + 1,
                    format!("truncated frame: expected {natoms} particle lines"),
                ));
            }
        }
        Ok(true)
    }

    fn read_frame(&mut self) -> Result<Option<Frame>> {
        // Blank lines are allowed only after the last frame.
        let Some((first, count_line)) = self.next_line()? else {
            if !self.started {
                return Err(self.xyz_error(0, "empty file: expected the number of particles"));
            }
            return Ok(None);
        };
        if count_line.trim().is_empty() {
            loop {
                match self.next_line()? {
                    None if self.started => return Ok(None),
                    None => {
                        return Err(
                            self.xyz_error(0, "empty file: expected the number of particles")
                        )
                    }
                    Some((_, l)) if l.trim().is_empty() => continue,
                    Some(_) => {
                        return Err(self.xyz_error(
                            first,
                            "expected the number of particles (a non-negative integer), found \"\"",
                        ))
                    }
                }
            }
        }
        self.started = true;
        let natoms = count_line.trim().parse::<usize>().ok();
        if natoms.is_some_and(|n| n > MAX_PARTICLES_PER_FRAME) {
            return Err(self.xyz_error(
                first,
                format!(
                    "{} particles in one frame: more than the limit of {MAX_PARTICLES_PER_FRAME}",
                    count_line.trim()
                ),
            ));
        }
        // All lines of the frame in one buffer (one allocation, not one per line).
        let mut text = count_line;
        let mut ends = vec![text.len()];
        // A count line that does not parse is reported by the frame parser itself; the lines
        // that follow are read only as far as the file goes.
        let wanted = natoms.map_or(0, |n| n + 1);
        while ends.len() <= wanted {
            match self.next_line()? {
                Some((_, l)) => {
                    text.push_str(&l);
                    ends.push(text.len());
                }
                None => break,
            }
        }
        let line = |k: usize| &text[if k == 0 { 0 } else { ends[k - 1] }..ends[k]];
        // A truncated frame: trailing blank lines do not count as particle lines.
        let mut n_lines = ends.len();
        while n_lines > 2 && n_lines <= wanted && line(n_lines - 1).trim().is_empty() {
            n_lines -= 1;
        }
        let refs: Vec<&str> = (0..n_lines).map(line).collect();
        xyz::read_frame_lines(&refs, first, &self.path).map(Some)
    }
}

impl<R: BufRead> Iterator for XyzFrames<R> {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        if self.finished {
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
            let (a, b) = (stream(text), whole(text));
            match (&a, &b) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                _ => panic!("stream {a:?} vs whole {b:?} for {text:?}"),
            }
        }
    }
}
