//! End-to-end tests of the `anisoap-candle` binary: the bundled example, output formats, and
//! a table of bad inputs, each asserting its error message and that no output is left behind.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    Command::cargo_bin("anisoap-candle").unwrap()
}

fn example() -> PathBuf {
    repo().join("examples/ellipsoids.xyz")
}

fn config() -> PathBuf {
    repo().join("configs/example.toml")
}

#[test]
fn example_runs_and_matches_reference_backend() {
    let dir = tempfile::tempdir().unwrap();
    let candle = dir.path().join("candle.npy");
    let reference = dir.path().join("reference.npy");
    bin()
        .arg("compute")
        .arg("--config")
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(&candle)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "3 rows x 352 features (candle-cpu)",
        ));
    bin()
        .args(["compute", "--quiet", "--reference", "--config"])
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(&reference)
        .assert()
        .success();
    let anisoap_candle::npy::NpyArray {
        shape,
        data: values,
    } = anisoap_candle::npy::read_npy(&candle).unwrap();
    assert_eq!(shape, vec![3, 352]);
    assert!(values.iter().all(|v| v.is_finite()) && values.iter().any(|v| *v != 0.0));
    bin()
        .arg("compare")
        .arg(&candle)
        .arg(&reference)
        .args(["--rtol", "1e-10"])
        .assert()
        .success();
}

#[test]
fn per_center_npz_and_csv_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("pc.npz");
    bin()
        .args(["compute", "--quiet", "--per-center", "--config"])
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(&npz)
        .assert()
        .success();
    let archive = zip::ZipArchive::new(std::fs::File::open(&npz).unwrap()).unwrap();
    let mut names: Vec<_> = archive.file_names().map(str::to_string).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "center.npy",
            "frame.npy",
            "metadata.json",
            "power_spectrum.npy"
        ]
    );
    let csv = dir.path().join("density.csv");
    bin()
        .args([
            "compute",
            "--quiet",
            "--density",
            "--max-angular",
            "2",
            "--cutoff",
            "4",
            "--width",
            "1.2",
        ])
        .arg(example())
        .arg("-o")
        .arg(&csv)
        .assert()
        .success();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("frame,center,c1_l0_m0_n0_u1,c1_l0_m0_n0_u6,"),
        "{header}"
    );
    assert_eq!(lines.count(), 72, "one row per centre (3 frames x 24)");
}

/// Writes `text` to a file in `dir` and returns its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn example_text() -> String {
    std::fs::read_to_string(example()).unwrap()
}

/// First frame of the example with `edit` applied to its lines.
fn first_frame(edit: impl Fn(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = example_text()
        .lines()
        .take(26)
        .map(str::to_string)
        .collect();
    edit(&mut lines);
    lines.join("\n") + "\n"
}

fn replace_last_field(line: &str, value: &str) -> String {
    let mut fields: Vec<&str> = line.split_whitespace().collect();
    let last = fields.len() - 1;
    fields[last] = value;
    fields.join(" ")
}

#[test]
fn bad_inputs_give_clear_errors_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, PathBuf, Vec<&str>, &str)> =
        vec![
        (
            "truncated frame",
            write(d, "truncated.xyz", &first_frame(|l| l.truncate(10))),
            vec![],
            "truncated.xyz:",
        ),
        (
            "wrong atom count",
            write(d, "count.xyz", &first_frame(|l| l[0] = "x3".into())),
            vec![],
            "count.xyz:1:",
        ),
        (
            "non-finite number",
            write(d, "nan.xyz", &first_frame(|l| l[4] = replace_last_field(&l[4], "nan"))),
            vec![],
            "nan.xyz:5: column c_diameter[3]",
        ),
        (
            "missing orientation column",
            write(d, "noq.xyz", &first_frame(|l| l[1] = l[1].replace("c_q:R:4", "q:R:4"))),
            vec![],
            "missing orientation column 'c_q'",
        ),
        (
            "missing diameter column",
            write(
                d,
                "nodiam.xyz",
                &first_frame(|l| l[1] = l[1].replace("c_diameter[3]", "size")),
            ),
            vec![],
            "missing required per-particle column 'c_diameter[3]'",
        ),
        (
            "zero axis",
            write(d, "zero.xyz", &first_frame(|l| l[3] = replace_last_field(&l[3], "0.0"))),
            vec![],
            "zero.xyz: frame 0 (0-based, in that file): particle 1: c_diameter[3] must be positive",
        ),
        (
            "zero quaternion",
            write(
                d,
                "zeroq.xyz",
                &first_frame(|l| {
                    let mut f: Vec<String> = l[2].split_whitespace().map(str::to_string).collect();
                    for v in &mut f[4..8] {
                        *v = "0".into();
                    }
                    l[2] = f.join(" ");
                }),
            ),
            vec![],
            "particle 0: 'c_q' is a zero or non-finite quaternion",
        ),
        (
            "singular cell",
            write(
                d,
                "cell.xyz",
                &first_frame(|l| {
                    let start = l[1].find("Lattice=\"").unwrap() + 9;
                    let end = start + l[1][start..].find('"').unwrap();
                    l[1].replace_range(start..end, "1 0 0 2 0 0 0 0 1");
                }),
            ),
            vec![],
            "cell is singular",
        ),
        ("huge cutoff", example(), vec!["--cutoff", "300"], "too large"),
        ("unknown device", example(), vec!["--device", "tpu"], "unknown device 'tpu'"),
        ("metal f64", example(), vec!["--device", "metal"], "Metal"),
        ("unknown dtype", example(), vec!["--dtype", "f16"], "unknown dtype 'f16'"),
    ];
    for (label, input, extra, message) in cases {
        let out = d.join(format!("{}.npy", label.replace(' ', "_")));
        bin()
            .args(["compute", "--quiet", "--config"])
            .arg(config())
            .args(&extra)
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message).from_utf8())
            .stderr(predicate::str::contains("panicked").not());
        assert!(!out.exists(), "{label}: output file left behind");
    }
    #[cfg(not(feature = "cuda"))]
    bin()
        .args(["compute", "--device", "cuda", "--config"])
        .arg(config())
        .arg(example())
        .assert()
        .failure()
        .stderr(predicate::str::contains("built without CUDA support"));
}

#[test]
fn bad_hypers_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let int_cutoff = write(
        d,
        "int.toml",
        "max_angular = 2\ncutoff_radius = 4\nradial_gaussian_width = 1.0\n",
    );
    let int_width = write(
        d,
        "w.json",
        r#"{"max_angular": 2, "cutoff_radius": 4.0, "radial_gaussian_width": 1}"#,
    );
    let mono_width = write(
        d,
        "m.toml",
        "max_angular = 2\ncutoff_radius = 4.0\nradial_basis_name = 'monomial'\nradial_gaussian_width = 1.0\n",
    );
    let typo = write(d, "typo.toml", "max_angular = 2\ncutof_radius = 4.0\n");
    let cases = [
        (int_cutoff, "r_cut is set as an integer"),
        (int_width, "radial_gaussian_width is set as an integer"),
        (
            mono_width,
            "Gaussian width can only be provided with GTO basis",
        ),
        (typo, "unknown key 'cutof_radius'"),
    ];
    for (cfg, message) in cases {
        bin()
            .arg("compute")
            .arg("--config")
            .arg(&cfg)
            .arg(example())
            .arg("-o")
            .arg(d.join("o.npy"))
            .assert()
            .failure()
            .stderr(predicate::str::contains(message));
    }
    bin()
        .args(["compute", "--config"])
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(d.join("missing-dir/o.npy"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("missing-dir"));
    bin()
        .args(["compute", "--config"])
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(d.join("o.txt"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown extension '.txt'"));
    assert!(!d.join("o.npy").exists());
}

#[test]
fn trace_records_every_stage() {
    // The default CPU path (fused chunk kernel) and the tensor-op path have their own spans.
    for (extra, stages) in [
        (
            vec![],
            vec![
                "prepare",
                "neighbor_list_pass",
                "neighbor_list",
                "chunk",
                "fused_pair_density",
                "power_spectrum",
            ],
        ),
        (
            vec!["--tensor-op-moments"],
            vec![
                "prepare",
                "neighbor_list",
                "gaussian_parameters",
                "moments",
                "contraction",
                "neighbor_sum",
                "power_spectrum",
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace.json");
        bin()
            .args(["compute", "--quiet", "--trace"])
            .arg(&trace)
            .arg("--config")
            .arg(config())
            .args(&extra)
            .arg(example())
            .arg("-o")
            .arg(dir.path().join("o.npy"))
            .assert()
            .success();
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        let names: std::collections::BTreeSet<&str> =
            events.iter().filter_map(|e| e["name"].as_str()).collect();
        for stage in stages {
            assert!(
                names.contains(stage),
                "{extra:?}: no span {stage} in {names:?}"
            );
        }
    }
}

/// One frame, two particles, the second with diameters `d2` (for singular / overflow cases).
fn two_particles(d2: &str) -> String {
    format!(
        "2\nLattice=\"6 0 0 0 6 0 0 0 6\" Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1 pbc=\"T T T\"\nH 0.1 0.2 0.3 1 0 0 0 1 1 2\nC 1.5 0.2 0.3 0.5 0.5 0.5 0.5 {d2} {d2} {d2}\n"
    )
}

/// A `.npy` header claiming `shape` over 6 float64 values.
fn crafted_npy(shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 48));
    bytes
}

/// The hostile inputs of issue 9, each an error that names what is wrong, never a crash, a
/// panic or an output file; the backends refuse the same inputs with the same message.
#[test]
fn hostile_inputs_are_refused_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = write(d, "big.xyz", &two_particles("1e5"));
    let tiny = write(d, "tiny.xyz", &two_particles("1e-300"));
    let small = write(d, "small.xyz", &two_particles("1e-20"));
    let flags = |extra: &[&str]| -> Vec<String> {
        ["--max-angular", "2", "--cutoff", "3.0", "--width", "1.0"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let singular = "pair (centre 0, neighbour 1): The given dilation matrix is singular";
    let cases: Vec<(&str, Vec<String>, PathBuf, &str)> = vec![
        (
            "max_radial 2^63 (wrapped the degree check, then overflowed an allocation)",
            [
                "--max-angular",
                "0",
                "--max-radial",
                "9223372036854775808",
                "--cutoff",
                "3.0",
                "--width",
                "1.0",
            ]
            .map(String::from)
            .to_vec(),
            example(),
            "max_radial=9223372036854775808 is too large",
        ),
        (
            "max_radial u64::MAX",
            flags(&["--max-radial", "18446744073709551615"]),
            example(),
            "max_radial=18446744073709551615 is too large",
        ),
        (
            "max_radial list entry too large",
            flags(&["--max-radial", "1,99999999999,1"]),
            example(),
            "max_radial[1]=99999999999 is too large",
        ),
        (
            "ordinal overflow",
            flags(&["--device", "cuda:99999999999999999999999"]),
            example(),
            "the device ordinal must be an integer",
        ),
        (
            "empty device",
            flags(&["--device", ""]),
            example(),
            "empty device;",
        ),
        (
            "singular, batched f64",
            [
                "--max-angular",
                "2",
                "--cutoff",
                "3.0",
                "--radial-basis",
                "monomial",
            ]
            .map(String::from)
            .to_vec(),
            big.clone(),
            singular,
        ),
        (
            "singular, reference",
            [
                "--max-angular",
                "2",
                "--cutoff",
                "3.0",
                "--radial-basis",
                "monomial",
                "--reference",
            ]
            .map(String::from)
            .to_vec(),
            big.clone(),
            singular,
        ),
        (
            "singular, batched f32",
            [
                "--max-angular",
                "2",
                "--cutoff",
                "3.0",
                "--radial-basis",
                "monomial",
                "--dtype",
                "f32",
            ]
            .map(String::from)
            .to_vec(),
            big.clone(),
            singular,
        ),
        (
            "diameters 1e-300 (NaN before)",
            flags(&[]),
            tiny.clone(),
            "frame 0 (0-based, in that file): particle 1: semi-axes",
        ),
        (
            "diameters 1e-300, reference",
            flags(&["--reference"]),
            tiny,
            "frame 0 (0-based, in that file): particle 1: semi-axes",
        ),
        (
            "f32 overflow gives non-finite features",
            flags(&["--dtype", "f32"]),
            small.clone(),
            "particle 0: its features are not finite",
        ),
        (
            "f32 overflow, per centre",
            flags(&["--dtype", "f32", "--per-center"]),
            small,
            "particle 0: its features are not finite",
        ),
        (
            "huge cutoff on an open system is refused before enumerating pairs",
            ["--max-angular", "2", "--cutoff", "1e9", "--width", "1.0"]
                .map(String::from)
                .to_vec(),
            {
                let path = d.join("open.xyz");
                bin()
                    .args(["generate", "--kind", "liquid", "--particles", "40000"])
                    .args([
                        "--species",
                        "1",
                        "--frames",
                        "1",
                        "--open",
                        "--seed",
                        "1",
                        "-o",
                    ])
                    .arg(&path)
                    .assert()
                    .success();
                path
            },
            "neighbour list would hold about 1.600e9 pairs",
        ),
    ];
    for (label, args, input, message) in cases {
        let out = d.join("out.npy");
        bin()
            .args(["compute", "--quiet"])
            .args(&args)
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message).from_utf8())
            .stderr(predicate::str::contains("panicked").not());
        assert!(!out.exists(), "{label}: output file left behind");
    }
    // --trace into a missing directory: an error before any work, no panic.
    bin()
        .args([
            "--trace",
            "/nonexistent-dir/t.json",
            "compute",
            "--quiet",
            "--config",
        ])
        .arg(config())
        .arg(example())
        .arg("-o")
        .arg(d.join("t.npy"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--trace /nonexistent-dir/t.json: cannot create",
        ))
        .stderr(predicate::str::contains("panicked").not());
    assert!(!d.join("t.npy").exists());
    // compare with crafted headers: shapes whose product wraps, or disagree with the data.
    let good = d.join("good.npy");
    std::fs::write(&good, crafted_npy("(2, 3)")).unwrap();
    for (name, shape, message) in [
        ("wrap.npy", "(4294967296, 4294967296)", "is too large"),
        ("wrap3.npy", "(18446744073709551615, 2, 1)", "is too large"),
        ("short.npy", "(3, 3)", "does not match shape"),
    ] {
        let path = d.join(name);
        std::fs::write(&path, crafted_npy(shape)).unwrap();
        bin()
            .arg("compare")
            .arg(&path)
            .arg(&good)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains("panicked").not());
    }
}

/// `--cutoff-function shifted_cosine:W` and the config key `cutoff_function`: the same
/// features both ways, equal to the reference backend, different from the default step, the
/// choice recorded in the metadata; bad values name the field.
#[test]
fn smooth_cutoff_flag_and_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |extra: &[&str], config: &Path, out: &Path| {
        bin()
            .args(["compute", "--quiet", "--config"])
            .arg(config)
            .args(extra)
            .arg(example())
            .arg("-o")
            .arg(out)
            .assert()
            .success();
        anisoap_candle::npy::read_npy(out).unwrap().data
    };
    let with_key = write(
        d,
        "smooth.toml",
        &(std::fs::read_to_string(config()).unwrap()
            + "cutoff_function = { shifted_cosine = { width = 1.5 } }\n"),
    );
    let step = run(&[], &config(), &d.join("step.npy"));
    let flag = run(
        &["--cutoff-function", "shifted_cosine:1.5"],
        &config(),
        &d.join("flag.npy"),
    );
    let key = run(&[], &with_key, &d.join("key.npy"));
    let reference = run(&["--reference"], &with_key, &d.join("reference.npy"));
    // The flag overrides the file: `step` on the smooth config gives the default back.
    let back = run(
        &["--cutoff-function", "step"],
        &with_key,
        &d.join("back.npy"),
    );
    assert_eq!(flag, key);
    assert_eq!(back, step);
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    assert!(worst(&flag, &reference) <= 1e-10 * scale);
    assert!(
        worst(&flag, &step) > 1e-3 * scale,
        "the smooth cutoff changed nothing"
    );
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("flag.npy.json")).unwrap()).unwrap();
    let text = metadata.to_string();
    assert!(
        text.contains(r#""cutoff_function":{"shifted_cosine":{"width":1.5}}"#),
        "{text}"
    );
    let default_meta = std::fs::read_to_string(d.join("step.npy.json")).unwrap();
    assert!(!default_meta.contains("cutoff_function"), "{default_meta}");
    for (value, message) in [
        (
            "shifted_cosine:0",
            "cutoff_function.shifted_cosine.width must be positive",
        ),
        (
            "shifted_cosine:9",
            "cutoff_function.shifted_cosine.width = 9 exceeds cutoff_radius",
        ),
        ("shifted_cosine:x", "expected NAME:WIDTH with a number"),
        ("shifted_cosine", "needs a table with its width"),
        (
            "gaussian:1",
            "unknown cutoff function 'gaussian'; known cutoff functions: step, shifted_cosine",
        ),
    ] {
        let out = d.join("bad.npy");
        bin()
            .args(["compute", "--quiet", "--config"])
            .arg(config())
            .args(["--cutoff-function", value])
            .arg(example())
            .arg("-o")
            .arg(&out)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains("panicked").not());
        assert!(!out.exists(), "{value}: output left behind");
    }
}
