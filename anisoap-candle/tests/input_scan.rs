//! `pipeline::scan_inputs`, the first pass over every input: frame counts, bytes, XXH3-128 and
//! particle types without parsing, and its errors (file and 1-based line). Inputs are written
//! to a fresh folder under the system's temporary directory, removed at the end.

use anisoap_candle::pipeline::{scan_inputs, InputScan};
use anisoap_candle::stream::XyzFrames;
use anisoap_candle::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("anisoap_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scan(path: &Path) -> anisoap_candle::Result<InputScan> {
    scan_inputs(&[path.to_path_buf()]).map(|mut v| v.remove(0))
}

/// What the full parser finds: frame count and particle types.
fn parsed(path: &Path) -> (usize, BTreeSet<i32>) {
    let mut types = BTreeSet::new();
    let mut frames = 0;
    for frame in XyzFrames::open(path).unwrap() {
        types.extend(frame.unwrap().numbers);
        frames += 1;
    }
    (frames, types)
}

#[test]
fn counts_hashes_and_types_as_the_parser_sees_them() {
    let dir = TempDir::new("input_scan_ok");
    let species = "3\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nH 0 0 0\nc 1 0 0\nH 2 0 0\n";
    let numbers = "2\r\nProperties=pos:R:3:Z:I:1\r\n0 0 0 8\r\n1 1 1 26\r\n";
    // Unicode white space before the type column: the scan splits the decoded text.
    let nbsp = "1\nProperties=q:R:1:species:S:1:pos:R:3\n0.5\u{a0}N 0 0 0\n";
    let no_newline = "1\n\nHe 0 0 0";
    // Large enough to cross the walker's 1 MiB blocks, with one odd type late.
    let mut big = String::from("40000\n\n");
    for i in 0..40_000 {
        let symbol = if i == 39_999 { "Fe" } else { "O" };
        big.push_str(&format!("{symbol} {} {} 0.125\n", i as f64 * 0.5, i % 17));
    }
    let cases: Vec<(&str, String, usize, Vec<i32>)> = vec![
        ("species.xyz", species.repeat(3) + "\n\n  \n", 3, vec![1, 6]),
        (
            "numbers.xyz",
            numbers.to_string() + species,
            2,
            vec![1, 6, 8, 26],
        ),
        ("nbsp.xyz", nbsp.to_string(), 1, vec![7]),
        ("no_newline.xyz", no_newline.to_string(), 1, vec![2]),
        ("big.xyz", big.clone() + &big, 2, vec![8, 26]),
        ("empty_frames.xyz", "0\n\n0\nx=1\n".to_string(), 2, vec![]),
    ];
    for (name, text, frames, types) in cases {
        let path = dir.write(name, text.as_bytes());
        let s = scan(&path).unwrap();
        assert_eq!(s.path, path);
        assert_eq!(s.frames, frames, "{name}");
        assert_eq!(s.bytes, text.len() as u64, "{name}");
        assert_eq!(
            s.xxh3_128,
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes())),
            "{name}"
        );
        let want: BTreeSet<i32> = types.into_iter().collect();
        assert_eq!(s.types, want, "{name}");
        assert_eq!(parsed(&path), (frames, want), "{name}");
    }
}

/// A frame without a type column is counted by skipping its lines; bytes that are not UTF-8
/// are the parser's business, not the scan's.
#[test]
fn frames_without_types_and_odd_bytes_are_counted() {
    let dir = TempDir::new("input_scan_skip");
    let no_types = "2\nProperties=pos:R:3\n0 0 0\n1 1 1\n1\n\nC 0 0 0\n";
    let path = dir.write("no_types.xyz", no_types.as_bytes());
    let s = scan(&path).unwrap();
    assert_eq!((s.frames, s.types), (2, BTreeSet::from([6])));
    let mut bytes = b"2\n\nH 0 0 0\nH 0 0 0\n".to_vec();
    bytes[12] = 0xff;
    let path = dir.write("not_utf8.xyz", &bytes);
    let s = scan(&path).unwrap();
    assert_eq!((s.frames, s.types), (1, BTreeSet::from([1])));
    assert_eq!(s.bytes, bytes.len() as u64);
}

#[test]
fn errors_name_file_and_line() {
    let dir = TempDir::new("input_scan_err");
    let cases: &[(&str, usize, &str)] = &[
        ("x\n\n", 1, "expected the number of particles"),
        (
            "1\n\nH 0 0 0\n\n1\n\nH 0 0 0\n",
            5,
            "unexpected text after blank lines",
        ),
        (
            "1\n\nH 0 0 0\n3\n\nH 0 0 0\n",
            4,
            "truncated frame: 2 lines missing",
        ),
        ("3\n", 1, "truncated frame: 4 lines missing"),
        (
            "2\nProperties=pos:R:3\n0 0 0\n",
            1,
            "truncated frame: 1 lines missing",
        ),
        ("18446744073709551615\n", 1, "particle count too large"),
    ];
    for (k, &(text, line, needle)) in cases.iter().enumerate() {
        let path = dir.write(&format!("bad{k}.xyz"), text.as_bytes());
        match scan(&path) {
            Err(Error::Xyz {
                path: p,
                line: l,
                message,
            }) => {
                assert_eq!((p, l), (path.clone(), line), "{text:?}: {message}");
                assert!(message.contains(needle), "{text:?}: {message}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let missing = dir.0.join("missing.xyz");
    assert!(matches!(scan(&missing), Err(Error::Io { path, .. }) if path == missing));
}
