//! The comment line of a frame: `key=value` pairs, `Properties` (the column layout),
//! `Lattice` and `pbc`, and the role each column plays for the particle-line parser.

use crate::frame::Frame;

use super::quote;

/// Column type of a `Properties` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColType {
    Str,
    Real,
    Int,
    Logical,
}

/// One `Properties` entry.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) ty: ColType,
    pub(super) ncols: usize,
}

/// What the reader does with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Species,
    Numbers,
    Positions,
    /// Index into the list of extra arrays.
    Array(usize),
    Ignore,
}

/// Parse the comment line into ordered `(key, value)` pairs.
pub(super) fn parse_comment(line: &str) -> std::result::Result<Vec<(String, String)>, String> {
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
pub(super) fn parse_properties(value: &str) -> std::result::Result<Vec<Column>, String> {
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

/// Parses a comment line: the frame's cell, pbc and info, and its column layout (the default
/// `species:S:1:pos:R:3` without `Properties`).
pub(super) fn parse_header(line: &str) -> std::result::Result<(Frame, Vec<Column>), String> {
    let pairs = parse_comment(line)?;
    let mut frame = Frame::default();
    let mut lattice: Option<[[f64; 3]; 3]> = None;
    let mut pbc: Option<[bool; 3]> = None;
    let mut properties: Option<Vec<Column>> = None;
    for (key, value) in pairs {
        let lower = key.to_ascii_lowercase();
        let duplicate = |key: &str| format!("comment line: duplicate key {key:?}");
        match lower.as_str() {
            "lattice" => {
                if lattice.is_some() {
                    return Err(duplicate(&key));
                }
                lattice = Some(parse_lattice(&value)?);
            }
            "pbc" => {
                if pbc.is_some() {
                    return Err(duplicate(&key));
                }
                pbc = Some(parse_pbc(&value)?);
            }
            "properties" => {
                if properties.is_some() {
                    return Err(duplicate(&key));
                }
                properties = Some(parse_properties(&value)?);
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
                return Err("pbc is true along some direction but there is no Lattice".into());
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

/// Decides the role of each column, checking the required ones.
pub(super) fn roles(columns: &[Column]) -> std::result::Result<Vec<Role>, String> {
    let find = |name: &str| columns.iter().position(|c| c.name == name);
    let check = |i: usize, ty: ColType, ncols: usize, what: &str| {
        let c = &columns[i];
        if c.ty == ty && c.ncols == ncols {
            Ok(())
        } else {
            Err(format!(
                "Properties column {:?} must be {what}, found {:?}:{}",
                c.name, c.ty, c.ncols
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
        return Err(
            "Properties has no species (S:1) nor Z/numbers (I:1) column for the particle types"
                .into(),
        );
    }
    let pos = find("pos")
        .or_else(|| find("positions"))
        .ok_or("Properties has no pos (or positions) R:3 column for the positions")?;
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
