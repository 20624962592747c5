//! The lines of one frame: count line, comment line and the particle lines, parsed into a
//! [`Frame`].
//!
//! The particle lines are the hot loop of reading a trajectory: tokens are slices of the line
//! (split on ASCII white space; a line with non-ASCII bytes falls back to Unicode white
//! space), reals go through `fast_float2` (exactly the `f64` of `str::parse`; anything it
//! rejects, and every non-finite value, is re-parsed by `str::parse` so the accepted syntax and
//! the error messages are std's), and the element symbol of the previous line is reused when
//! the next has the same. Frames of at least [`PARALLEL_MIN_LINES`] particles are cut into
//! blocks of [`BLOCK_LINES`] lines parsed by rayon's pool; the blocks are joined in order and
//! the error reported is the one of the first bad line, whatever the number of threads.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::comment::{self, ColType, Column, Role};
use super::{capitalize, quote};
use crate::elements;
use crate::error::{Error, Result};
use crate::frame::{Frame, PerParticle};
use crate::lines::is_space;

/// Particle lines from which a frame is parsed in parallel (when rayon has several threads).
pub(crate) const PARALLEL_MIN_LINES: usize = 16_384;

/// Particle lines per parallel task.
pub(crate) const BLOCK_LINES: usize = 4096;

/// The lines of a text, some of which form frames.
pub(super) struct Reader<'a> {
    /// Lines without their terminators.
    pub(super) lines: &'a [&'a str],
    /// Number of lines up to and including the last non-blank one.
    pub(super) end: usize,
    /// File named in errors.
    pub(super) path: &'a Path,
    /// Lines of the file before `lines[0]` (a streamed frame starts mid-file).
    pub(super) line_offset: usize,
}

/// The columns of the particle lines and what becomes of each.
struct Layout<'a> {
    columns: &'a [Column],
    roles: Vec<Role>,
    /// Tokens per line.
    total: usize,
    /// Columns of each extra array, in [`Role::Array`] order.
    array_ncols: Vec<usize>,
}

/// Parsed particle lines (a block of them, or a whole frame).
struct Rows {
    numbers: Vec<i32>,
    positions: Vec<[f64; 3]>,
    /// Values of each extra array, row-major, in [`Role::Array`] order.
    arrays: Vec<Vec<f64>>,
}

/// A bad particle line: its 0-based index in [`Reader::lines`] and what is wrong.
type LineError = (usize, String);

impl Reader<'_> {
    /// An [`Error::Xyz`] at 0-based line index `idx`.
    pub(super) fn err(&self, idx: usize, message: impl Into<String>) -> Error {
        Error::Xyz {
            path: self.path.to_path_buf(),
            line: self.line_offset + idx + 1,
            message: message.into(),
        }
    }

    /// Reads the frame whose count line is at `start`; returns it and the index after it.
    pub(super) fn frame(&self, start: usize) -> Result<(Frame, usize)> {
        let count_line = self.lines[start].trim();
        let natoms: usize = count_line.parse().map_err(|_| {
            self.err(
                start,
                format!(
                    "expected the number of particles (a non-negative integer), found {}",
                    quote(count_line)
                ),
            )
        })?;
        let comment_idx = start + 1;
        if comment_idx >= self.lines.len() {
            return Err(self.err(
                comment_idx,
                format!(
                    "truncated frame: missing the comment line after the particle count {natoms}"
                ),
            ));
        }
        let available = self.end.saturating_sub(comment_idx + 1);
        if available < natoms {
            return Err(self.err(
                comment_idx + 1 + available,
                format!("truncated frame: expected {natoms} particle lines, found {available}"),
            ));
        }
        let (mut frame, columns) =
            comment::parse_header(self.lines[comment_idx]).map_err(|m| self.err(comment_idx, m))?;
        self.atoms(&mut frame, &columns, comment_idx + 1, natoms)?;
        Ok((frame, comment_idx + 1 + natoms))
    }

    /// Parses the `natoms` particle lines starting at `first` into `frame`.
    fn atoms(
        &self,
        frame: &mut Frame,
        columns: &[Column],
        first: usize,
        natoms: usize,
    ) -> Result<()> {
        let comment_idx = first - 1;
        let roles = comment::roles(columns).map_err(|m| self.err(comment_idx, m))?;
        let mut total: usize = 0;
        for c in columns {
            total = total
                .checked_add(c.ncols)
                .ok_or_else(|| self.err(comment_idx, "Properties: too many columns"))?;
        }
        let array_ncols = columns
            .iter()
            .zip(&roles)
            .filter(|(_, r)| matches!(r, Role::Array(_)))
            .map(|(c, _)| c.ncols)
            .collect();
        let layout = Layout {
            columns,
            roles,
            total,
            array_ncols,
        };
        let lines = &self.lines[first..first + natoms];
        let rows = if natoms >= PARALLEL_MIN_LINES && rayon::current_num_threads() > 1 {
            let blocks: Vec<std::result::Result<Rows, LineError>> = lines
                .par_chunks(BLOCK_LINES)
                .enumerate()
                .map(|(k, block)| parse_rows(&layout, first + k * BLOCK_LINES, block))
                .collect();
            join_blocks(blocks, &layout, natoms)
        } else {
            parse_rows(&layout, first, lines)
        }
        .map_err(|(idx, message)| self.err(idx, message))?;
        frame.numbers = rows.numbers;
        frame.positions = rows.positions;
        frame.arrays = columns
            .iter()
            .zip(&layout.roles)
            .filter(|(_, r)| matches!(r, Role::Array(_)))
            .zip(rows.arrays)
            .map(|((c, _), values)| {
                (
                    c.name.clone(),
                    PerParticle {
                        ncols: c.ncols,
                        values,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        Ok(())
    }
}

/// Joins parsed blocks in order; the error of the first failed block (its first bad line)
/// wins.
fn join_blocks(
    blocks: Vec<std::result::Result<Rows, LineError>>,
    layout: &Layout,
    natoms: usize,
) -> std::result::Result<Rows, LineError> {
    let blocks = blocks
        .into_iter()
        .collect::<std::result::Result<Vec<Rows>, LineError>>()?;
    // Every value is parsed by now, so these sizes are those of real data.
    let mut rows = Rows {
        numbers: Vec::with_capacity(natoms),
        positions: Vec::with_capacity(natoms),
        arrays: (0..layout.array_ncols.len())
            .map(|a| Vec::with_capacity(blocks.iter().map(|b| b.arrays[a].len()).sum()))
            .collect(),
    };
    for block in &blocks {
        rows.numbers.extend_from_slice(&block.numbers);
        rows.positions.extend_from_slice(&block.positions);
        for (all, part) in rows.arrays.iter_mut().zip(&block.arrays) {
            all.extend_from_slice(part);
        }
    }
    Ok(rows)
}

/// The white-space separated tokens of `line` into `tokens`, as `str::split_whitespace`
/// gives them.
fn split_tokens<'a>(line: &'a str, tokens: &mut Vec<&'a str>) {
    tokens.clear();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return;
        }
        let start = i;
        while i < bytes.len() && !is_space(bytes[i]) {
            if !bytes[i].is_ascii() {
                // Unicode white space (e.g. U+00A0) may separate tokens here.
                tokens.clear();
                tokens.extend(line.split_whitespace());
                return;
            }
            i += 1;
        }
        // `start` and `i` sit next to ASCII bytes, so they are character boundaries.
        tokens.push(&line[start..i]);
    }
}

/// Parses the particle lines `lines`, the first of which is line index `first`.
fn parse_rows(
    layout: &Layout,
    first: usize,
    lines: &[&str],
) -> std::result::Result<Rows, LineError> {
    let n = lines.len();
    let mut rows = Rows {
        numbers: Vec::with_capacity(n),
        positions: Vec::with_capacity(n),
        arrays: layout
            .array_ncols
            .iter()
            .map(|&c| Vec::with_capacity(n.saturating_mul(c).min(1 << 20)))
            .collect(),
    };
    let mut tokens: Vec<&str> = Vec::with_capacity(layout.total.min(1 << 16));
    // The last element symbol and its number: lines of one species repeat it.
    let mut last_symbol: Option<(&[u8], i32)> = None;
    for (k, line) in lines.iter().enumerate() {
        let mark = rows.mark();
        if fast_line(layout, line.as_bytes(), &mut rows, &mut last_symbol).is_some() {
            continue;
        }
        // Anything unusual (non-ASCII, a token fast-float2 does not take, a bad line): the
        // exact path decides, and gives the error.
        rows.truncate(mark, layout);
        exact_line(layout, first + k, line, &mut tokens, &mut rows)?;
    }
    Ok(rows)
}

impl Rows {
    /// Lines parsed so far (each gives one type, one position and a row of every array).
    fn mark(&self) -> usize {
        self.numbers.len()
    }

    /// Drops what a partly parsed line pushed after the first `rows` lines.
    fn truncate(&mut self, rows: usize, layout: &Layout) {
        self.numbers.truncate(rows);
        self.positions.truncate(rows);
        for (values, &ncols) in self.arrays.iter_mut().zip(&layout.array_ncols) {
            values.truncate(rows * ncols);
        }
    }
}

/// The next token at or after `*pos` (skipping white space), as bytes; `None` at the end of
/// the line or when the token holds a non-ASCII byte.
fn next_token<'a>(line: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut i = *pos;
    while i < line.len() && is_space(line[i]) {
        i += 1;
    }
    let start = i;
    while i < line.len() && !is_space(line[i]) {
        if !line[i].is_ascii() {
            return None;
        }
        i += 1;
    }
    *pos = i;
    (i > start).then(|| &line[start..i])
}

/// The next real at or after `*pos`, read in place by `fast_float2`: `None` unless it is a
/// finite number that ends at white space or at the end of the line.
pub(super) fn next_real(line: &[u8], pos: &mut usize) -> Option<f64> {
    let mut i = *pos;
    while i < line.len() && is_space(line[i]) {
        i += 1;
    }
    let (v, n) = fast_float2::parse_partial::<f64, _>(&line[i..]).ok()?;
    let end = i + n;
    if n == 0 || !v.is_finite() || (end < line.len() && !is_space(line[end])) {
        return None;
    }
    *pos = end;
    Some(v)
}

/// The common case of a particle line, in one pass over its bytes; `None` (with part of the
/// line perhaps pushed) when anything is unusual, and [`exact_line`] then decides.
fn fast_line<'a>(
    layout: &Layout,
    line: &'a [u8],
    rows: &mut Rows,
    last_symbol: &mut Option<(&'a [u8], i32)>,
) -> Option<()> {
    let mut pos = 0;
    for (c, role) in layout.columns.iter().zip(&layout.roles) {
        match *role {
            Role::Species => {
                let token = next_token(line, &mut pos)?;
                let z = match *last_symbol {
                    Some((symbol, z)) if symbol == token => z,
                    _ => {
                        let z =
                            elements::atomic_number(&capitalize(std::str::from_utf8(token).ok()?))?;
                        *last_symbol = Some((token, z));
                        z
                    }
                };
                rows.numbers.push(z);
            }
            Role::Numbers => {
                let token = next_token(line, &mut pos)?;
                rows.numbers
                    .push(std::str::from_utf8(token).ok()?.parse::<i32>().ok()?);
            }
            Role::Positions => {
                let x = next_real(line, &mut pos)?;
                let y = next_real(line, &mut pos)?;
                let z = next_real(line, &mut pos)?;
                rows.positions.push([x, y, z]);
            }
            Role::Array(a) => {
                for _ in 0..c.ncols {
                    let v = match c.ty {
                        ColType::Int => {
                            let token = next_token(line, &mut pos)?;
                            std::str::from_utf8(token).ok()?.parse::<i64>().ok()? as f64
                        }
                        _ => next_real(line, &mut pos)?,
                    };
                    rows.arrays[a].push(v);
                }
            }
            Role::Ignore => {
                for _ in 0..c.ncols {
                    next_token(line, &mut pos)?;
                }
            }
        }
    }
    // Exactly the columns Properties gives: white space only after them.
    line[pos..].iter().all(|&b| is_space(b)).then_some(())
}

/// One particle line parsed token by token with std's parsers: the reference behaviour,
/// and the errors (column count first, then the first bad value in column order).
fn exact_line<'a>(
    layout: &Layout,
    idx: usize,
    line: &'a str,
    tokens: &mut Vec<&'a str>,
    rows: &mut Rows,
) -> std::result::Result<(), LineError> {
    let total = layout.total;
    split_tokens(line, tokens);
    if tokens.len() != total {
        return Err((
            idx,
            format!(
                "expected {total} columns as given by Properties, found {}",
                tokens.len()
            ),
        ));
    }
    let mut at = 0;
    for (c, role) in layout.columns.iter().zip(&layout.roles) {
        let toks = &tokens[at..at + c.ncols];
        at += c.ncols;
        match *role {
            Role::Species => {
                let z = elements::atomic_number(&capitalize(toks[0])).ok_or_else(|| {
                    (
                        idx,
                        format!("column species: unknown element symbol {}", quote(toks[0])),
                    )
                })?;
                rows.numbers.push(z);
            }
            Role::Numbers => {
                let z = toks[0].parse::<i32>().map_err(|_| {
                    (
                        idx,
                        format!(
                            "column {}: {} is not a 32-bit integer",
                            c.name,
                            quote(toks[0])
                        ),
                    )
                })?;
                rows.numbers.push(z);
            }
            Role::Positions => {
                let mut p = [0.0; 3];
                for (value, t) in p.iter_mut().zip(toks) {
                    *value = real(&c.name, t).map_err(|m| (idx, m))?;
                }
                rows.positions.push(p);
            }
            Role::Array(a) => {
                for t in toks {
                    let v = match c.ty {
                        ColType::Int => int(&c.name, t),
                        _ => real(&c.name, t),
                    }
                    .map_err(|m| (idx, m))?;
                    rows.arrays[a].push(v);
                }
            }
            Role::Ignore => {}
        }
    }
    Ok(())
}

/// Parses a finite real value of column `name`: the `f64` `str::parse` gives.
pub(super) fn real(name: &str, token: &str) -> std::result::Result<f64, String> {
    if let Ok(v) = fast_float2::parse::<f64, _>(token) {
        if v.is_finite() {
            return Ok(v);
        }
    }
    // Rare: let std decide what the token is, so syntax and messages are std's.
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "column {name}: {} is not a finite number",
            quote(token)
        )),
        Err(_) => Err(format!(
            "column {name}: cannot parse {} as a real number",
            quote(token)
        )),
    }
}

/// Parses an integer value of column `name`, returned as `f64`.
fn int(name: &str, token: &str) -> std::result::Result<f64, String> {
    token
        .parse::<i64>()
        .map(|v| v as f64)
        .map_err(|_| format!("column {name}: cannot parse {} as an integer", quote(token)))
}
