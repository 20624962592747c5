//! Extended XYZ writer: frames that [`super::read_xyz_str`] reads back identically.

use std::fmt::Write as _;
use std::io;

use crate::elements;
use crate::frame::{Frame, PerParticle};

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

/// Write frames as extended XYZ, readable back by [`super::read_xyz_str`] into identical frames.
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
    use crate::xyz::read_xyz_str;
    use proptest::prelude::*;
    use std::path::Path;

    fn read(text: &str) -> crate::Result<Vec<Frame>> {
        read_xyz_str(text, Path::new("<memory>"))
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

    proptest! {
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
