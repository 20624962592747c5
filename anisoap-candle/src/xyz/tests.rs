//! Tests of the reader: the accepted format, the errors (line and field), the repository's
//! inputs, the serial and parallel particle-line paths, and the float parser against std.

use super::*;
use crate::frame::PerParticle;
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
}

/// Tokens where float parsers disagree if any: signs, missing digits, exponents at and past
/// the limits, halfway cases, subnormals, long mantissas, special values and junk.
const TRICKY_REALS: &[&str] = &[
    "0",
    "-0",
    "+0",
    "0.0",
    "-0.0",
    "1",
    "+1",
    "-1",
    "1.",
    ".5",
    "-.5",
    "+.5",
    "1e5",
    "1E5",
    "1e+5",
    "1e-5",
    "1.e5",
    "00001.5",
    "0.1",
    "0.30000000000000004",
    "1.5e308",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "2.2250738585072014e-308",
    "2.2250738585072011e-308",
    "4.9e-324",
    "5e-324",
    "2.4703282292062327e-324",
    "2.4703282292062328e-324",
    "1e-400",
    "1e-99999999999999999999",
    "1e0000000000000000000001",
    "9007199254740993",
    "9007199254740992.5",
    "9007199254740995",
    "7.2057594037927933e16",
    "123456789012345678901234567890e-20",
    "3.141592653589793238462643383279502884197169399375105820974944",
    "0.000000000000000000000000000000000000001e39",
    "1.369057231704836",
    "-0.14020109917285012",
    "1e5000",
    "-1e5000",
    "inf",
    "-inf",
    "+inf",
    "Infinity",
    "INF",
    "NaN",
    "nan",
    "-nan",
    "1_0",
    "1e",
    "1e+",
    "e5",
    ".",
    "-",
    "+",
    "",
    "1.2.3",
    "0x10",
    "1,5",
    "--1",
    "1e5.0",
    "١",
];

/// `real` gives exactly what `str::parse::<f64>` gives (finite values), and the in-place
/// fast path never accepts a token std reads differently.
fn check_real(token: &str) -> std::result::Result<(), TestCaseError> {
    let ours = frame::real("c", token);
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            prop_assert_eq!(ours.map(f64::to_bits), Ok(v.to_bits()), "{:?}", token)
        }
        Ok(_) => prop_assert_eq!(
            ours,
            Err(format!("column c: {} is not a finite number", quote(token)))
        ),
        Err(_) => prop_assert_eq!(
            ours,
            Err(format!(
                "column c: cannot parse {} as a real number",
                quote(token)
            ))
        ),
    }
    let mut pos = 0;
    if let Some(v) = frame::next_real(token.as_bytes(), &mut pos) {
        prop_assert_eq!(
            token.parse::<f64>().map(f64::to_bits),
            Ok(v.to_bits()),
            "{:?}",
            token
        );
        prop_assert_eq!(pos, token.len());
    }
    Ok(())
}

#[test]
fn reals_are_std_exactly_on_tricky_tokens() {
    for token in TRICKY_REALS {
        check_real(token).unwrap();
    }
    // In a frame too: the fast path or the exact one, the same values and errors.
    for token in TRICKY_REALS.iter().filter(|t| !t.is_empty()) {
        let text = format!("1\n\nH {token} 0 0\n");
        match (read(&text), token.parse::<f64>()) {
            (Ok(frames), Ok(v)) if v.is_finite() => {
                assert_eq!(frames[0].positions[0][0].to_bits(), v.to_bits(), "{token}")
            }
            (
                Err(Error::Xyz {
                    line: 3, message, ..
                }),
                _,
            ) => {
                assert!(message.starts_with("column pos: "), "{token}: {message}")
            }
            (other, _) => panic!("{token}: {other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn reals_are_std_exactly_on_formatted_f64(bits in any::<u64>(), digits in 0usize..25) {
        let v = f64::from_bits(bits);
        for token in [
            format!("{v}"),
            format!("{v:e}"),
            format!("{v:.digits$e}"),
            format!("{v:.digits$}"),
            format!("{:E}", -v),
        ] {
            check_real(&token)?;
        }
    }

    #[test]
    fn reals_are_std_exactly_on_float_like_text(token in "[-+]?[0-9]{0,22}[.]?[0-9]{0,22}([eE][-+]?[0-9]{1,4})?|[-+0-9.eEinfatyINFATY_x]{0,12}") {
        check_real(&token)?;
    }
}

/// A frame of `n` particles with four real columns and an integer one; particle `i`'s
/// position is `position(i)`, written with `{}` (which reads back exactly).
fn big_frame(n: usize, edit: impl Fn(usize, String) -> String) -> String {
    let mut text = format!(
        "{n}\nLattice=\"50 0 0 0 50 0 0 0 50\" Properties=species:S:1:pos:R:3:c_q:R:4:tag:I:1:label:S:1 pbc=\"T T T\"\n"
    );
    for i in 0..n {
        let [x, y, z] = position(i);
        let symbol = ["C", "H", "o"][i % 3];
        let line = format!("{symbol} {x} {y} {z} 1 0 0 {} {i} l{i}", i as f64 * 1e-3);
        text.push_str(&edit(i, line));
        text.push('\n');
    }
    text
}

fn position(i: usize) -> [f64; 3] {
    let i = i as f64;
    [i * 0.37 - 5000.0, (i * 1.618).sin() * 25.0, 1.0 / (i + 3.0)]
}

/// Runs `f` in a rayon pool of `threads` threads.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Large frames take the parallel path; it gives the frame the serial one gives, values and
/// all, including lines only the exact path reads (non-ASCII white space, `+`, `E`).
#[test]
fn parallel_frames_equal_serial_ones() {
    let n = 3 * frame::PARALLEL_MIN_LINES + 17;
    let text = big_frame(n, |i, line| match i % 5000 {
        7 => line.replacen(' ', "\u{a0}", 2),
        8 => line.replacen(" 1 0 0 ", " +1 0E0 0 ", 1),
        _ => line,
    });
    let serial = in_pool(1, || read(&text)).unwrap();
    let parallel = in_pool(4, || read(&text)).unwrap();
    assert_eq!(serial, parallel);
    let f = &parallel[0];
    assert_eq!(f.len(), n);
    for i in [
        0,
        7,
        8,
        frame::BLOCK_LINES - 1,
        frame::BLOCK_LINES,
        n / 2,
        n - 1,
    ] {
        assert_eq!(f.positions[i], position(i), "particle {i}");
        assert_eq!(f.numbers[i], [6, 1, 8][i % 3], "particle {i}");
        assert_eq!(f.arrays["tag"].values[i], i as f64);
        assert_eq!(f.arrays["c_q"].row(i), &[1.0, 0.0, 0.0, i as f64 * 1e-3]);
    }
    assert!(!f.arrays.contains_key("label"));
}

/// The error of a large frame is that of its first bad line, whatever the threads and
/// however the blocks finish.
#[test]
fn parallel_errors_name_the_first_bad_line() {
    let n = 3 * frame::PARALLEL_MIN_LINES;
    let first_line = |particle: usize| particle + 3;
    type Case = (Vec<usize>, fn(String) -> String, &'static str);
    let cases: Vec<Case> = vec![
        // A bad value late, a wrong column count earlier: the earlier wins.
        (
            vec![40_000, 9_001],
            |l| l.replacen(" 1 0 0 ", " 1 0 x ", 1),
            "column c_q: cannot parse \"x\"",
        ),
        (
            vec![n - 1],
            |l| l + " extra",
            "expected 10 columns as given by Properties, found 11",
        ),
        (
            vec![frame::BLOCK_LINES, 3 * frame::BLOCK_LINES + 1],
            |l| {
                l.replacen('C', "Qq", 1)
                    .replacen('H', "Qq", 1)
                    .replacen('o', "Qq", 1)
            },
            "column species: unknown element symbol \"Qq\"",
        ),
        (
            vec![20_000, 20_001],
            |l| l.replacen(" l", " ", 1).replacen(" 1 0 0 ", " 1 0 nan ", 1),
            "column c_q: \"nan\" is not a finite number",
        ),
    ];
    for (bad, edit, message) in cases {
        let text = big_frame(
            n,
            |i, line| if bad.contains(&i) { edit(line) } else { line },
        );
        let want = first_line(*bad.iter().min().unwrap());
        for threads in [1, 2, 4, 7] {
            for _ in 0..3 {
                match in_pool(threads, || read(&text)) {
                    Err(Error::Xyz {
                        line, message: m, ..
                    }) => {
                        assert_eq!(line, want, "{threads} threads: {m}");
                        assert!(
                            m.starts_with(message),
                            "{threads} threads: {m:?} vs {message:?}"
                        );
                    }
                    other => panic!("{threads} threads: {other:?}"),
                }
            }
        }
    }
}
