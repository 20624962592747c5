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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::elements;
use crate::error::{Error, Result};
use crate::frame::{Frame, PerParticle};

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

/// Column type of a `Properties` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    Str,
    Real,
    Int,
    Logical,
}

/// One `Properties` entry.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: ColType,
    ncols: usize,
}

/// What the reader does with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Species,
    Numbers,
    Positions,
    /// Index into the list of extra arrays.
    Array(usize),
    Ignore,
}

/// Parse the comment line into ordered `(key, value)` pairs.
fn parse_comment(line: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        if first == '=' {
            return Err("comment line: '=' without a key".to_string());
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            pairs.push((key, "T".to_string()));
            continue;
        }
        chars.next(); // '='
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        match chars.peek().copied() {
            Some(q) if q == '"' || q == '\'' => {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == q {
                        closed = true;
                        break;
                    }
                    if c == '\\' {
                        match chars.peek().copied() {
                            Some(e) if e == q || e == '\\' => {
                                value.push(e);
                                chars.next();
                            }
                            Some('n') => {
                                value.push('\n');
                                chars.next();
                            }
                            _ => value.push('\\'),
                        }
                    } else {
                        value.push(c);
                    }
                }
                if !closed {
                    return Err(format!(
                        "comment line: unterminated quoted value of key {key:?}"
                    ));
                }
                if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                    return Err(format!(
                        "comment line: unexpected text after the quoted value of key {key:?}"
                    ));
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Remove backslash escapes from a column name (`c_diameter\[1\]` → `c_diameter[1]`).
fn unescape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(e) = chars.next() {
                out.push(e);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse a `Properties` value into columns.
fn parse_properties(value: &str) -> std::result::Result<Vec<Column>, String> {
    let parts: Vec<&str> = value.split(':').collect();
    let triples = parts.chunks_exact(3);
    if value.is_empty() || !triples.remainder().is_empty() {
        return Err(format!(
            "malformed Properties {}: expected name:type:ncols triplets",
            quote(value)
        ));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(parts.len() / 3);
    for triple in triples {
        let name = unescape_name(triple[0]);
        if name.is_empty() {
            return Err(format!(
                "malformed Properties {}: empty column name",
                quote(value)
            ));
        }
        let ty = match triple[1] {
            "S" | "s" => ColType::Str,
            "R" | "r" => ColType::Real,
            "I" | "i" => ColType::Int,
            "L" | "l" => ColType::Logical,
            other => {
                return Err(format!(
                    "unknown Properties type {} for column {name:?} (expected S, R, I or L)",
                    quote(other)
                ))
            }
        };
        let ncols = match triple[2].parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "Properties column {name:?}: number of columns {} is not a positive integer",
                    quote(triple[2])
                ))
            }
        };
        if columns.iter().any(|c| c.name == name) {
            return Err(format!("Properties: duplicate column {name:?}"));
        }
        columns.push(Column { name, ty, ncols });
    }
    Ok(columns)
}

/// Where a frame's particle types are, from its comment line: the token index of the
/// `species` (element symbols) or `Z`/`numbers` (integers) column, and whether it holds
/// symbols. `None` when the comment line does not say (the full parser reports why).
pub fn type_token(comment: &str) -> Option<(usize, bool)> {
    let pairs = parse_comment(comment).ok()?;
    let columns = match pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("properties"))
    {
        Some((_, v)) => parse_properties(v).ok()?,
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

/// Parse a boolean token of `pbc`.
fn parse_bool(token: &str) -> Option<bool> {
    match token.to_ascii_lowercase().as_str() {
        "t" | "true" | "1" => Some(true),
        "f" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parse the `pbc` value: one or three booleans.
fn parse_pbc(value: &str) -> std::result::Result<[bool; 3], String> {
    let tokens: Vec<&str> = value.split_whitespace().collect();
    let parsed: Option<Vec<bool>> = tokens.iter().map(|t| parse_bool(t)).collect();
    match (tokens.len(), parsed) {
        (1, Some(v)) => Ok([v[0]; 3]),
        (3, Some(v)) => Ok([v[0], v[1], v[2]]),
        _ => Err(format!(
            "malformed pbc {}: expected 1 or 3 of T/F/True/False/1/0",
            quote(value)
        )),
    }
}

/// Parse the `Lattice` value: nine finite numbers, rows = cell vectors.
fn parse_lattice(value: &str) -> std::result::Result<[[f64; 3]; 3], String> {
    let tokens: Vec<&str> = value.split_whitespace().collect();
    if tokens.len() != 9 {
        return Err(format!(
            "malformed Lattice: expected 9 numbers, found {} in {}",
            tokens.len(),
            quote(value)
        ));
    }
    let mut cell = [[0.0; 3]; 3];
    for (k, tok) in tokens.iter().enumerate() {
        match tok.parse::<f64>() {
            Ok(v) if v.is_finite() => cell[k / 3][k % 3] = v,
            _ => {
                return Err(format!(
                    "malformed Lattice: {} is not a finite number",
                    quote(tok)
                ))
            }
        }
    }
    Ok(cell)
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

/// Reader state shared by the frames of one file.
struct Reader<'a> {
    lines: Vec<&'a str>,
    /// Number of lines up to and including the last non-blank one.
    end: usize,
    path: &'a Path,
    /// Lines of the file before `lines[0]` (a streamed frame starts mid-file).
    line_offset: usize,
}

impl Reader<'_> {
    /// An [`Error::Xyz`] at 0-based line index `idx`.
    fn err(&self, idx: usize, message: impl Into<String>) -> Error {
        Error::Xyz {
            path: self.path.to_path_buf(),
            line: self.line_offset + idx + 1,
            message: message.into(),
        }
    }

    /// Read the frame whose count line is at `start`; returns it and the index after it.
    fn frame(&self, start: usize) -> Result<(Frame, usize)> {
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
        let (mut frame, columns) = self.header(comment_idx)?;
        self.atoms(&mut frame, &columns, comment_idx + 1, natoms)?;
        Ok((frame, comment_idx + 1 + natoms))
    }

    /// Parse the comment line: cell, pbc, info and the column layout.
    fn header(&self, idx: usize) -> Result<(Frame, Vec<Column>)> {
        let pairs = parse_comment(self.lines[idx]).map_err(|m| self.err(idx, m))?;
        let mut frame = Frame::default();
        let mut lattice: Option<[[f64; 3]; 3]> = None;
        let mut pbc: Option<[bool; 3]> = None;
        let mut properties: Option<Vec<Column>> = None;
        for (key, value) in pairs {
            let lower = key.to_ascii_lowercase();
            let duplicate =
                |key: &str| self.err(idx, format!("comment line: duplicate key {key:?}"));
            match lower.as_str() {
                "lattice" => {
                    if lattice.is_some() {
                        return Err(duplicate(&key));
                    }
                    lattice = Some(parse_lattice(&value).map_err(|m| self.err(idx, m))?);
                }
                "pbc" => {
                    if pbc.is_some() {
                        return Err(duplicate(&key));
                    }
                    pbc = Some(parse_pbc(&value).map_err(|m| self.err(idx, m))?);
                }
                "properties" => {
                    if properties.is_some() {
                        return Err(duplicate(&key));
                    }
                    properties = Some(parse_properties(&value).map_err(|m| self.err(idx, m))?);
                }
                _ => {
                    frame.info.insert(key, value);
                }
            }
        }
        match lattice {
            Some(cell) => {
                frame.cell = cell;
                frame.pbc = pbc.unwrap_or([true; 3]);
            }
            None => {
                let pbc = pbc.unwrap_or([false; 3]);
                if pbc.iter().any(|&p| p) {
                    return Err(self.err(
                        idx,
                        "pbc is true along some direction but there is no Lattice",
                    ));
                }
                frame.pbc = pbc;
            }
        }
        let columns = properties.unwrap_or_else(|| {
            vec![
                Column {
                    name: "species".into(),
                    ty: ColType::Str,
                    ncols: 1,
                },
                Column {
                    name: "pos".into(),
                    ty: ColType::Real,
                    ncols: 3,
                },
            ]
        });
        Ok((frame, columns))
    }

    /// Decide the role of each column, checking the required ones.
    fn roles(&self, idx: usize, columns: &[Column]) -> Result<Vec<Role>> {
        let find = |name: &str| columns.iter().position(|c| c.name == name);
        let check = |i: usize, ty: ColType, ncols: usize, what: &str| {
            let c = &columns[i];
            if c.ty == ty && c.ncols == ncols {
                Ok(())
            } else {
                Err(self.err(
                    idx,
                    format!(
                        "Properties column {:?} must be {what}, found {:?}:{}",
                        c.name, c.ty, c.ncols
                    ),
                ))
            }
        };
        let species = find("species");
        if let Some(i) = species {
            check(i, ColType::Str, 1, "S:1")?;
        }
        let numbers = if species.is_some() {
            None
        } else {
            let i = find("Z").or_else(|| find("numbers"));
            if let Some(i) = i {
                check(i, ColType::Int, 1, "I:1")?;
            }
            i
        };
        if species.is_none() && numbers.is_none() {
            return Err(self.err(
                idx,
                "Properties has no species (S:1) nor Z/numbers (I:1) column for the particle types",
            ));
        }
        let pos = find("pos").or_else(|| find("positions")).ok_or_else(|| {
            self.err(
                idx,
                "Properties has no pos (or positions) R:3 column for the positions",
            )
        })?;
        check(pos, ColType::Real, 3, "R:3")?;
        let mut n_arrays = 0;
        let roles = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if Some(i) == species {
                    Role::Species
                } else if Some(i) == numbers {
                    Role::Numbers
                } else if i == pos {
                    Role::Positions
                } else if matches!(c.ty, ColType::Real | ColType::Int) {
                    n_arrays += 1;
                    Role::Array(n_arrays - 1)
                } else {
                    Role::Ignore
                }
            })
            .collect();
        Ok(roles)
    }

    /// Parse `natoms` particle lines starting at `first`.
    fn atoms(
        &self,
        frame: &mut Frame,
        columns: &[Column],
        first: usize,
        natoms: usize,
    ) -> Result<()> {
        let comment_idx = first - 1;
        let roles = self.roles(comment_idx, columns)?;
        let mut total: usize = 0;
        for c in columns {
            total = total
                .checked_add(c.ncols)
                .ok_or_else(|| self.err(comment_idx, "Properties: too many columns"))?;
        }
        let mut arrays: Vec<(String, PerParticle)> = columns
            .iter()
            .zip(&roles)
            .filter(|(_, r)| matches!(r, Role::Array(_)))
            .map(|(c, _)| {
                let values = Vec::with_capacity(natoms.saturating_mul(c.ncols).min(1 << 20));
                (
                    c.name.clone(),
                    PerParticle {
                        ncols: c.ncols,
                        values,
                    },
                )
            })
            .collect();
        let mut tokens: Vec<&str> = Vec::with_capacity(total.min(1 << 16));
        for idx in first..first + natoms {
            tokens.clear();
            tokens.extend(self.lines[idx].split_whitespace());
            if tokens.len() != total {
                return Err(self.err(
                    idx,
                    format!(
                        "expected {total} columns as given by Properties, found {}",
                        tokens.len()
                    ),
                ));
            }
            let mut at = 0;
            for (c, role) in columns.iter().zip(&roles) {
                let toks = &tokens[at..at + c.ncols];
                at += c.ncols;
                match *role {
                    Role::Species => {
                        let symbol = capitalize(toks[0]);
                        let z = elements::atomic_number(&symbol).ok_or_else(|| {
                            self.err(
                                idx,
                                format!(
                                    "column species: unknown element symbol {}",
                                    quote(toks[0])
                                ),
                            )
                        })?;
                        frame.numbers.push(z);
                    }
                    Role::Numbers => {
                        let z = toks[0].parse::<i32>().map_err(|_| {
                            self.err(
                                idx,
                                format!(
                                    "column {}: {} is not a 32-bit integer",
                                    c.name,
                                    quote(toks[0])
                                ),
                            )
                        })?;
                        frame.numbers.push(z);
                    }
                    Role::Positions => {
                        let mut p = [0.0; 3];
                        for (k, t) in toks.iter().enumerate() {
                            p[k] = self.real(idx, &c.name, t)?;
                        }
                        frame.positions.push(p);
                    }
                    Role::Array(a) => {
                        for t in toks {
                            let v = match c.ty {
                                ColType::Int => self.int(idx, &c.name, t)?,
                                _ => self.real(idx, &c.name, t)?,
                            };
                            arrays[a].1.values.push(v);
                        }
                    }
                    Role::Ignore => {}
                }
            }
        }
        frame.arrays = arrays.into_iter().collect::<BTreeMap<_, _>>();
        Ok(())
    }

    /// Parse a finite real value of column `name`.
    fn real(&self, idx: usize, name: &str, token: &str) -> Result<f64> {
        match token.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.err(
                idx,
                format!("column {name}: {} is not a finite number", quote(token)),
            )),
            Err(_) => Err(self.err(
                idx,
                format!(
                    "column {name}: cannot parse {} as a real number",
                    quote(token)
                ),
            )),
        }
    }

    /// Parse an integer value of column `name`, returned as `f64`.
    fn int(&self, idx: usize, name: &str, token: &str) -> Result<f64> {
        token.parse::<i64>().map(|v| v as f64).map_err(|_| {
            self.err(
                idx,
                format!("column {name}: cannot parse {} as an integer", quote(token)),
            )
        })
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
        lines,
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
        lines: lines.to_vec(),
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

/// Format a finite `f64` so that parsing it back gives the same value.
fn fmt_real(out: &mut String, v: f64) {
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// An `InvalidInput` I/O error.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// True when `name` can be written as a Properties column name or info key unchanged.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\'' | '\\'))
}

/// Order in which a frame's arrays are written: `c_q`, `c_diameter[1..3]`, then the rest.
fn array_order(frame: &Frame) -> Vec<(&String, &PerParticle)> {
    const FIRST: [&str; 4] = ["c_q", "c_diameter[1]", "c_diameter[2]", "c_diameter[3]"];
    let mut order: Vec<(&String, &PerParticle)> = FIRST
        .iter()
        .filter_map(|name| frame.arrays.get_key_value(*name))
        .collect();
    order.extend(
        frame
            .arrays
            .iter()
            .filter(|(name, _)| !FIRST.contains(&name.as_str())),
    );
    order
}

/// Write one frame into `out`.
fn write_frame(out: &mut String, index: usize, frame: &Frame) -> io::Result<()> {
    let n = frame.positions.len();
    let bad = |what: String| invalid(format!("frame {index}: {what}"));
    if frame.numbers.len() != n {
        return Err(bad(format!(
            "{} numbers for {n} positions",
            frame.numbers.len()
        )));
    }
    let arrays = array_order(frame);
    for (name, array) in &arrays {
        if !plain_name(name) || matches!(name.as_str(), "species" | "pos") {
            return Err(bad(format!("array name {name:?} cannot be written")));
        }
        if array.ncols == 0 || Some(array.values.len()) != n.checked_mul(array.ncols) {
            return Err(bad(format!(
                "array {name:?} has {} values, expected {n} rows of {} columns",
                array.values.len(),
                array.ncols
            )));
        }
        if array.values.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!("array {name:?} holds a non-finite value")));
        }
    }
    if frame.positions.iter().flatten().any(|v| !v.is_finite()) {
        return Err(bad("non-finite position".into()));
    }
    if frame.cell.iter().flatten().any(|v| !v.is_finite()) {
        return Err(bad("non-finite cell".into()));
    }
    let _ = writeln!(out, "{n}");
    let has_lattice = frame.is_periodic() || frame.cell.iter().flatten().any(|&v| v != 0.0);
    if has_lattice {
        out.push_str("Lattice=\"");
        for (k, v) in frame.cell.iter().flatten().enumerate() {
            if k > 0 {
                out.push(' ');
            }
            fmt_real(out, *v);
        }
        out.push_str("\" ");
    }
    out.push_str("Properties=species:S:1:pos:R:3");
    for (name, array) in &arrays {
        let _ = write!(out, ":{name}:R:{}", array.ncols);
    }
    let tf = |p: bool| if p { 'T' } else { 'F' };
    let _ = write!(
        out,
        " pbc=\"{} {} {}\"",
        tf(frame.pbc[0]),
        tf(frame.pbc[1]),
        tf(frame.pbc[2])
    );
    for (key, value) in &frame.info {
        let lower = key.to_ascii_lowercase();
        if !plain_name(key) || matches!(lower.as_str(), "lattice" | "properties" | "pbc") {
            return Err(bad(format!("info key {key:?} cannot be written")));
        }
        let _ = write!(out, " {key}=\"");
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => {
                    return Err(bad(format!(
                        "info value of {key:?} contains a carriage return"
                    )))
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('\n');
    for i in 0..n {
        let z = frame.numbers[i];
        let symbol = elements::symbol(z)
            .ok_or_else(|| bad(format!("particle {i}: no element symbol for number {z}")))?;
        out.push_str(symbol);
        for v in frame.positions[i] {
            out.push(' ');
            fmt_real(out, v);
        }
        for (_, array) in &arrays {
            for &v in array.row(i) {
                out.push(' ');
                fmt_real(out, v);
            }
        }
        out.push('\n');
    }
    Ok(())
}

/// Write frames as extended XYZ, readable back by [`read_xyz_str`] into identical frames.
///
/// The comment line holds `Lattice` (when the frame is periodic or has a non-zero cell),
/// `Properties=species:S:1:pos:R:3` followed by every array of [`Frame::arrays`] as `R` columns
/// (`c_q` first, then `c_diameter[1]`, `c_diameter[2]`, `c_diameter[3]`, then the others in name
/// order, names written plain), `pbc`, and the [`Frame::info`] pairs as quoted values. Numbers
/// are written with the shortest representation that parses back to the same `f64`.
///
/// Fails with [`io::ErrorKind::InvalidInput`] (before writing the offending frame) when a frame
/// cannot be represented: a type number without element symbol, inconsistent lengths,
/// non-finite values, array names or info keys that are empty or contain white space, `:`,
/// `=`, quotes or backslashes, arrays named `species`/`pos`, or info keys named
/// `Lattice`/`Properties`/`pbc`.
pub fn write_xyz<W: io::Write>(mut w: W, frames: &[Frame]) -> io::Result<()> {
    let mut out = String::new();
    for (index, frame) in frames.iter().enumerate() {
        out.clear();
        write_frame(&mut out, index, frame)?;
        w.write_all(out.as_bytes())?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MEM: &str = "<memory>";

    fn read(text: &str) -> Result<Vec<Frame>> {
        read_xyz_str(text, Path::new(MEM))
    }

    /// The error line and message, panicking if the result is not an `Error::Xyz`.
    fn xyz_err(text: &str) -> (usize, String) {
        match read(text) {
            Err(Error::Xyz {
                line,
                message,
                path,
            }) => {
                assert_eq!(path, Path::new(MEM));
                (line, message)
            }
            other => panic!("expected an Xyz error, got {other:?}"),
        }
    }

    const REFERENCE: &str = "2
Lattice=\"9.0000000000 0.0000000000 0.0000000000 0.0000000000 9.0000000000 0.0000000000 0.0000000000 0.0000000000 9.0000000000\" Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1 pbc=\"T T T\"
H 0.770842504293 2.131294559365 7.211470186858 0.545953191642 0.141574979718 0.812005901053 -0.150126794109 2.195205074890 1.735166537968 6.403577858482
X 5.239458324579 0.847157780164 3.898142462128 -0.735694871709 0.464077008381 0.462869342827 -0.170697268590 2.250530991356 2.010077964764 6.923315957965
1
Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter\\[1\\]:R:1:c_diameter\\[2\\]:R:1:c_diameter\\[3\\]:R:1 pbc=\"F F F\" energy=-1.5 name='two words'
He 4.094572997602 7.603709570607 1.153276901757 0.357082155458 -0.276809895958 -0.887544477470 0.090185454847 2.265019867732 1.684736989366 7.190738856285


";

    #[test]
    fn reads_reference_format() {
        let frames = read(REFERENCE).unwrap();
        assert_eq!(frames.len(), 2);
        let f = &frames[0];
        assert_eq!(f.len(), 2);
        assert_eq!(f.numbers, vec![1, 0]);
        assert_eq!(f.pbc, [true; 3]);
        assert_eq!(f.cell, [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]]);
        assert_eq!(
            f.positions[1],
            [5.239458324579, 0.847157780164, 3.898142462128]
        );
        let names: Vec<&str> = f.arrays.keys().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["c_diameter[1]", "c_diameter[2]", "c_diameter[3]", "c_q"]
        );
        assert_eq!(f.arrays["c_q"].ncols, 4);
        assert_eq!(
            f.arrays["c_q"].row(0),
            &[
                0.545953191642,
                0.141574979718,
                0.812005901053,
                -0.150126794109
            ]
        );
        assert_eq!(
            f.arrays["c_diameter[3]"].values,
            vec![6.403577858482, 6.923315957965]
        );
        assert!(f.info.is_empty());

        let g = &frames[1];
        assert_eq!(g.numbers, vec![2]);
        assert_eq!(g.pbc, [false; 3]);
        assert_eq!(g.cell, [[0.0; 3]; 3]);
        assert_eq!(g.arrays["c_diameter[1]"].values, vec![2.265019867732]);
        assert_eq!(g.info["energy"], "-1.5");
        assert_eq!(g.info["name"], "two words");
        assert_eq!(g.info.len(), 2);
    }

    fn check_ellipsoid_file(path: &Path) {
        let frames = read_xyz_file(path).unwrap();
        assert!(!frames.is_empty(), "{}", path.display());
        for f in &frames {
            // Quaternions (w, x, y, z) or, for rotation_type = "matrix", 3x3 matrices.
            let ncols = f.arrays["c_q"].ncols;
            assert!(
                ncols == 4 || ncols == 9,
                "{}: c_q has {ncols}",
                path.display()
            );
            for k in 1..=3 {
                assert_eq!(f.arrays[&format!("c_diameter[{k}]")].values.len(), f.len());
            }
        }
    }

    /// The repository's own inputs: the bundled example and every fixture's `input.xyz`.
    #[test]
    fn reads_repository_inputs() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        check_ellipsoid_file(&repo.join("examples/ellipsoids.xyz"));
        let mut n = 0;
        for entry in std::fs::read_dir(repo.join("tests/fixtures")).unwrap() {
            let path = entry.unwrap().path().join("input.xyz");
            if path.exists() {
                check_ellipsoid_file(&path);
                n += 1;
            }
        }
        assert!(n >= 13, "only {n} fixture inputs found");
    }

    /// The shared reference inputs next to the repository (`../shared/reference`), which are not
    /// part of it: skipped, with the reason printed, when absent.
    #[test]
    fn reads_shared_reference_inputs_if_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!(
                "SKIPPED reads_shared_reference_inputs_if_present: {} is absent (not part of \
                 the repository)",
                dir.display()
            );
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path().join("input.xyz");
            if path.exists() {
                check_ellipsoid_file(&path);
            }
        }
    }

    #[test]
    fn defaults_and_header_variants() {
        // Plain XYZ: default Properties, free-text comment becomes bare keys.
        let frames = read("2\nwater molecule\nO 0 0 0\nh 1 0 0.5\n").unwrap();
        let f = &frames[0];
        assert_eq!(f.numbers, vec![8, 1]);
        assert_eq!(f.positions, vec![[0.0; 3], [1.0, 0.0, 0.5]]);
        assert_eq!(f.info["water"], "T");
        assert_eq!(f.info["molecule"], "T");
        assert!(f.arrays.is_empty());

        // Lattice without pbc: periodic everywhere; lower-case keys; Z column; I and L columns.
        let text = "1\nlattice=\"2 0 0 0 3 0 0.5 0 4\" properties=Z:I:1:positions:R:3:tag:I:1:flag:L:1:label:S:1\n6 0.1 0.2 0.3 7 T foo\n";
        let f = &read(text).unwrap()[0];
        assert_eq!(f.numbers, vec![6]);
        assert_eq!(f.pbc, [true; 3]);
        assert_eq!(f.cell[2], [0.5, 0.0, 4.0]);
        assert_eq!(f.positions, vec![[0.1, 0.2, 0.3]]);
        assert_eq!(f.arrays.len(), 1);
        assert_eq!(
            f.arrays["tag"],
            PerParticle {
                ncols: 1,
                values: vec![7.0]
            }
        );

        // Mixed pbc spellings.
        for (pbc, expect) in [
            ("\"T F True\"", [true, false, true]),
            ("F", [false; 3]),
            ("\"1 0 false\"", [true, false, false]),
            ("True", [true; 3]),
        ] {
            let text = format!("0\nLattice=\"1 0 0 0 1 0 0 0 1\" PBC={pbc}\n");
            assert_eq!(read(&text).unwrap()[0].pbc, expect, "{pbc}");
        }

        // Zero-particle frames, CRLF line ends, several frames.
        let frames = read("0\n\r\n1\r\nX=1\r\nC 1 2 3\r\n0\n\n").unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].numbers, vec![6]);
        assert_eq!(frames[1].info["X"], "1");
        assert!(frames[2].is_empty());

        // species wins over Z, which is then an ordinary array.
        let f = &read("1\nProperties=species:S:1:Z:I:1:pos:R:3\nNa 3 0 0 0\n").unwrap()[0];
        assert_eq!(f.numbers, vec![11]);
        assert_eq!(f.arrays["Z"].values, vec![3.0]);

        // Quoted values with escapes and spaces around '='.
        let f = &read("0\na = \"x \\\"y\\\" \\\\ z\" b='c d'\n").unwrap()[0];
        assert_eq!(f.info["a"], "x \"y\" \\ z");
        assert_eq!(f.info["b"], "c d");
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty file"),
            ("\n  \n", 1, "empty file"),
            ("abc\n", 1, "number of particles"),
            ("-1\n\n", 1, "number of particles"),
            ("2\n", 2, "missing the comment line"),
            ("2\n\nH 0 0 0\n", 4, "expected 2 particle lines, found 1"),
            ("2\n\nH 0 0 0\n\nH 0 0 0\n", 4, "expected 4 columns"),
            ("1\n\nH 0 0\n", 3, "expected 4 columns"),
            ("1\n\nH 0 0 0 0\n", 3, "expected 4 columns"),
            ("1\n\nH 0 x 0\n", 3, "column pos"),
            ("1\n\nH 0 nan 0\n", 3, "not a finite number"),
            ("1\n\nH 0 inf 0\n", 3, "not a finite number"),
            ("1\n\nQq 0 0 0\n", 3, "unknown element symbol \"Qq\""),
            (
                "1\nProperties=species:S:1:pos:R:3:c_q:R:4\nH 0 0 0 1 0 0 NaN\n",
                3,
                "column c_q",
            ),
            (
                "1\nProperties=species:S:1:pos:R:3:n:I:1\nH 0 0 0 1.5\n",
                3,
                "column n",
            ),
            ("1\nProperties=Z:I:1:pos:R:3\nH 0 0 0\n", 3, "column Z"),
            (
                "1\nLattice=\"1 0 0 0 1 0 0 0\"\nH 0 0 0\n",
                2,
                "malformed Lattice",
            ),
            (
                "1\nLattice=\"1 0 0 0 1 0 0 0 inf\"\nH 0 0 0\n",
                2,
                "malformed Lattice",
            ),
            (
                "1\nProperties=species:S:1:pos:X:3\nH 0 0 0\n",
                2,
                "unknown Properties type",
            ),
            (
                "1\nProperties=species:S:1:pos:R\nH 0 0 0\n",
                2,
                "malformed Properties",
            ),
            (
                "1\nProperties=species:S:1:pos:R:0\nH\n",
                2,
                "positive integer",
            ),
            (
                "1\nProperties=species:S:1:pos:R:3:a:R:1:a:R:1\nH 0 0 0 1 1\n",
                2,
                "duplicate column",
            ),
            (
                "1\nProperties=species:S:1:pos:R:2\nH 0 0\n",
                2,
                "must be R:3",
            ),
            ("1\nProperties=species:S:1\nH\n", 2, "no pos"),
            ("1\nProperties=pos:R:3\n0 0 0\n", 2, "no species"),
            ("1\npbc=T\nH 0 0 0\n", 2, "no Lattice"),
            (
                "1\npbc=\"T T\" Lattice=\"1 0 0 0 1 0 0 0 1\"\nH 0 0 0\n",
                2,
                "malformed pbc",
            ),
            ("1\na=\"unterminated\nH 0 0 0\n", 2, "unterminated"),
            (
                "1\nLattice=\"1 0 0 0 1 0 0 0 1\" lattice=\"1 0 0 0 1 0 0 0 1\"\nH 0 0 0\n",
                2,
                "duplicate key",
            ),
            ("1\n\nH 0 0 0\nH 1 1 1\n", 4, "number of particles"),
            ("1\n\nH 0 0 0\n\ngarbage\n", 4, "number of particles"),
        ];
        for &(text, line, needle) in cases {
            let (l, m) = xyz_err(text);
            assert_eq!(l, line, "{text:?}: {m}");
            assert!(m.contains(needle), "{text:?}: {m:?} lacks {needle:?}");
        }
    }

    #[test]
    fn io_error_names_file() {
        let path = Path::new("/nonexistent/dir/file.xyz");
        match read_xyz_file(path) {
            Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    fn sample_frames() -> Vec<Frame> {
        let mut periodic = Frame {
            positions: vec![[0.1, -2.5, 3.0e-7], [1.0 / 3.0, 1e20, -0.0]],
            numbers: vec![1, 0],
            cell: [[9.0, 0.0, 0.0], [0.3, 8.5, 0.0], [-1.25, 0.1, 7.0]],
            pbc: [true, false, true],
            ..Frame::default()
        };
        periodic.arrays.insert(
            "c_q".into(),
            PerParticle {
                ncols: 4,
                values: vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0],
            },
        );
        for (k, d) in [(1, 2.0), (2, 3.5), (3, 6.25)] {
            periodic.arrays.insert(
                format!("c_diameter[{k}]"),
                PerParticle {
                    ncols: 1,
                    values: vec![d, d * 1.1],
                },
            );
        }
        periodic.arrays.insert(
            "a_matrix".into(),
            PerParticle {
                ncols: 9,
                values: (0..18).map(|v| v as f64 * 0.7 - 3.0).collect(),
            },
        );
        periodic.info.insert("energy".into(), "-12.5".into());
        periodic
            .info
            .insert("comment".into(), "a \"quoted\" \\ text\nline".into());
        let open = Frame {
            positions: vec![[1.0, 2.0, 3.0]],
            numbers: vec![118],
            ..Frame::default()
        };
        let empty = Frame::default();
        let mut cell_no_pbc = open.clone();
        cell_no_pbc.cell = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]];
        vec![periodic, open, empty, cell_no_pbc]
    }

    #[test]
    fn write_then_read_is_identity() {
        let frames = sample_frames();
        let mut buf = Vec::new();
        write_xyz(&mut buf, &frames).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let header = text.lines().nth(1).unwrap();
        assert!(
            header.starts_with("Lattice=\"9 0 0 0.3 8.5 0 -1.25 0.1 7\" "),
            "{header}"
        );
        assert!(header.contains(
            "Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1:a_matrix:R:9 pbc=\"T F T\""
        ), "{header}");
        assert!(text
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("H 0.1 -2.5 3e-7 0.5 0.5"));
        let back = read(&text).unwrap();
        assert_eq!(back, frames);
        assert_eq!(back[1].positions[0][2], 3.0);
        assert!(back[0].positions[1][2].is_sign_negative());
    }

    #[test]
    fn writer_rejects_unrepresentable_frames() {
        let base = Frame {
            positions: vec![[0.0; 3]],
            numbers: vec![1],
            ..Frame::default()
        };
        let mut bad = Vec::new();
        let mut f = base.clone();
        f.numbers = vec![200];
        bad.push(f);
        let mut f = base.clone();
        f.numbers.push(1);
        bad.push(f);
        let mut f = base.clone();
        f.arrays.insert(
            "a b".into(),
            PerParticle {
                ncols: 1,
                values: vec![1.0],
            },
        );
        bad.push(f);
        let mut f = base.clone();
        f.arrays.insert(
            "x".into(),
            PerParticle {
                ncols: 2,
                values: vec![1.0],
            },
        );
        bad.push(f);
        let mut f = base.clone();
        f.positions[0][1] = f64::NAN;
        bad.push(f);
        let mut f = base.clone();
        f.info.insert("PBC".into(), "T".into());
        bad.push(f);
        for f in bad {
            let err = write_xyz(Vec::new(), &[f]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e3..1e3f64,
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            Just(0.0),
            Just(-0.0),
        ]
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            0usize..5,
            any::<[bool; 3]>(),
            prop::collection::vec(finite(), 9),
        )
            .prop_flat_map(|(n, pbc, cell)| {
                (
                    prop::collection::vec(prop::array::uniform3(finite()), n),
                    prop::collection::vec(0i32..=118, n),
                    prop::collection::vec(finite(), 4 * n),
                    prop::collection::btree_map("[a-z_]{1,6}", "[ -~\n]{0,12}", 0..3),
                    Just(pbc),
                    Just(cell),
                )
            })
            .prop_map(|(positions, numbers, q, info, pbc, cell)| {
                let mut f = Frame {
                    positions,
                    numbers,
                    pbc,
                    info: info
                        .into_iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "pbc"))
                        .collect(),
                    ..Frame::default()
                };
                if pbc.iter().any(|&p| p) {
                    for (k, v) in cell.into_iter().enumerate() {
                        f.cell[k / 3][k % 3] = v;
                    }
                }
                f.arrays.insert(
                    "c_q".into(),
                    PerParticle {
                        ncols: 4,
                        values: q,
                    },
                );
                f
            })
    }

    fn mutate(text: &str, ops: &[(usize, u8)]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for &(pos, b) in ops {
            if bytes.is_empty() {
                bytes.push(b);
                continue;
            }
            let p = pos % bytes.len();
            match b % 3 {
                0 => bytes[p] = b,
                1 => {
                    bytes.remove(p);
                }
                _ => bytes.insert(p, b),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC*") {
            let _ = read(&text);
        }

        #[test]
        fn never_panics_on_xyzish_text(text in "[0-9 \nHXC.=\":a-zRSIL\\-TFe]{0,200}") {
            let _ = read(&text);
        }

        #[test]
        fn never_panics_on_mutated_files(ops in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let _ = read(&mutate(REFERENCE, &ops));
        }

        #[test]
        fn round_trip(frames in prop::collection::vec(arb_frame(), 0..3)) {
            let mut buf = Vec::new();
            write_xyz(&mut buf, &frames).unwrap();
            let text = String::from_utf8(buf).unwrap();
            if frames.is_empty() {
                prop_assert!(text.is_empty());
            } else {
                prop_assert_eq!(read(&text).unwrap(), frames);
            }
        }
    }
}
