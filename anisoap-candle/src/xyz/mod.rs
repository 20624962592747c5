//! Extended XYZ reader and writer following ASE's conventions.
//!
//! A file holds any number of frames. Each frame is
//!
//! ```text
//! <number of particles>
//! Lattice="ax ay az bx by bz cx cy cz" Properties=species:S:1:pos:R:3:c_q:R:4 pbc="T T T" key=value
//! <one line per particle, columns as described by Properties>
//! ```
//!
//! Reader rules:
//!
//! * The comment line holds `key=value` pairs separated by white space; values may be quoted
//!   with `"` or `'` (inside quotes `\"`, `\'`, `\\` and `\n` are escapes). A bare word is a key
//!   with value `T`. `Lattice`, `Properties` and `pbc` are matched case-insensitively; every
//!   other pair is stored verbatim in [`Frame::info`].
//! * `Properties=name:type:ncols:...` with types `S` (string), `R` (real), `I` (integer), `L`
//!   (logical). Without `Properties` the columns are `species:S:1:pos:R:3`. Column names may
//!   escape characters with a backslash (`c_diameter\[1\]` is read as `c_diameter[1]`).
//! * `Lattice` gives the cell vectors as rows. When `Lattice` is present and `pbc` is not, all
//!   directions are periodic (as in ASE). Without `Lattice` the cell is zero and `pbc` must be
//!   false. `pbc` accepts one or three of `T`/`F`/`True`/`False`/`1`/`0`.
//! * Types come from the `species` column (element symbols, capitalised as ASE does before
//!   lookup) or, when there is none, from an integer `Z` or `numbers` column. Positions come
//!   from `pos` (or `positions` when there is no `pos`). Every other `R` or `I` column goes to
//!   [`Frame::arrays`] as `f64`; other `S` and `L` columns are ignored.
//! * Real values must be finite. Errors are [`Error::Xyz`] with the 1-based line number.
//!
//! Layout: `comment` reads the comment line (pairs, `Properties`, `Lattice`, `pbc`), `frame`
//! the count and particle lines (the hot loop, in parallel for large frames), `write` the
//! writer; this file holds the public entry points.

use std::path::Path;

use crate::elements;
use crate::error::{Error, Result};
use crate::frame::Frame;

mod comment;
mod frame;
mod write;

pub use write::write_xyz;

use frame::Reader;
pub(crate) use frame::{BLOCK_LINES, PARALLEL_MIN_LINES};

/// Longest excerpt of offending input quoted in an error message.
const MAX_QUOTE: usize = 40;

/// Quote at most [`MAX_QUOTE`] characters of `s` for an error message.
fn quote(s: &str) -> String {
    if s.chars().count() > MAX_QUOTE {
        let head: String = s.chars().take(MAX_QUOTE).collect();
        format!("{head:?}...")
    } else {
        format!("{s:?}")
    }
}

/// Where a frame's particle types are, from its comment line: the token index of the
/// `species` (element symbols) or `Z`/`numbers` (integers) column, and whether it holds
/// symbols. `None` when the comment line does not say (the full parser reports why).
pub fn type_token(comment: &str) -> Option<(usize, bool)> {
    let pairs = comment::parse_comment(comment).ok()?;
    let columns = match pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("properties"))
    {
        Some((_, v)) => comment::parse_properties(v).ok()?,
        None => return Some((0, true)),
    };
    let mut token = 0;
    let mut numbers = None;
    for c in &columns {
        if c.name == "species" {
            return Some((token, true));
        }
        if (c.name == "Z" || c.name == "numbers") && numbers.is_none() {
            numbers = Some(token);
        }
        token += c.ncols;
    }
    numbers.map(|t| (t, false))
}

/// The particle type of a type token ([`type_token`]): an atomic number from a symbol (as
/// ASE capitalises it) or an integer.
pub fn type_of_token(token: &str, symbol: bool) -> Option<i32> {
    if symbol {
        elements::atomic_number(&capitalize(token))
    } else {
        token.parse().ok()
    }
}

/// ASE's `str.capitalize()`: first character upper case, the rest lower case.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// Read every frame of an extended XYZ text. `path` is only used in error messages (pass
/// `Path::new("<memory>")` for in-memory text).
///
/// Blank lines after the last frame are allowed; anything else after it is an error. See the
/// module documentation for the accepted format.
pub fn read_xyz_str(text: &str, path: &Path) -> Result<Vec<Frame>> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |p| p + 1);
    let reader = Reader {
        lines: &lines,
        end,
        path,
        line_offset: 0,
    };
    if end == 0 {
        return Err(reader.err(0, "empty file: expected the number of particles"));
    }
    let mut frames = Vec::new();
    let mut idx = 0;
    while idx < end {
        let (frame, next) = reader.frame(idx)?;
        frames.push(frame);
        idx = next;
    }
    Ok(frames)
}

/// Parses one frame from its lines (count line, comment line, particle lines, nothing else),
/// where `lines[0]` is line `line_offset + 1` of `path` (for error messages). Used by the
/// streaming reader ([`crate::stream`]), which splits a file into frames without holding it.
pub fn read_frame_lines(lines: &[&str], line_offset: usize, path: &Path) -> Result<Frame> {
    let reader = Reader {
        lines,
        end: lines.len(),
        path,
        line_offset,
    };
    let (frame, next) = reader.frame(0)?;
    if next != lines.len() {
        return Err(reader.err(next, "unexpected line after the frame"));
    }
    Ok(frame)
}

/// Read every frame of an extended XYZ file (see [`read_xyz_str`]).
///
/// I/O failures (including text that is not UTF-8) are [`Error::Io`].
pub fn read_xyz_file(path: &Path) -> Result<Vec<Frame>> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    read_xyz_str(&text, path)
}

#[cfg(test)]
mod tests;
