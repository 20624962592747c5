//! Streaming, shards, merge and several workers, through the binary: every way of splitting a
//! run gives the same bytes as the single in-memory run.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn bin() -> Command {
    Command::cargo_bin("anisoap-candle").unwrap()
}

const HYPERS: [&str; 6] = ["--max-angular", "3", "--cutoff", "4.0", "--width", "1.2"];

/// A seeded 40-frame, 2-species trajectory of 20 particles per frame.
fn trajectory(dir: &Path) -> PathBuf {
    let path = dir.join("traj.xyz");
    bin()
        .args([
            "generate",
            "--kind",
            "liquid",
            "--particles",
            "20",
            "--species",
            "2",
        ])
        .args([
            "--frames",
            "40",
            "--periodic",
            "--density",
            "0.05",
            "--seed",
            "3",
            "-o",
        ])
        .arg(&path)
        .assert()
        .success();
    path
}

fn compute(input: &Path, out: &Path, extra: &[&str]) {
    bin()
        .args(["compute", "--quiet"])
        .args(HYPERS)
        .args(extra)
        .arg(input)
        .arg("-o")
        .arg(out)
        .assert()
        .success();
}

fn merge(shards: &[PathBuf], out: &Path) -> assert_cmd::assert::Assert {
    bin().arg("merge").args(shards).arg("-o").arg(out).assert()
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn small_batches_equal_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = trajectory(dir.path());
    // 50 particles per batch: 20 batches, the original's columns from a first pass. Frame
    // sums are accumulated chunk by chunk, so the comparison is at equal --chunk-pairs.
    for chunk in ["65536", "64"] {
        let one = dir.path().join(format!("one_{chunk}.npy"));
        compute(&input, &one, &["--chunk-pairs", chunk]);
        let many = dir.path().join(format!("many_{chunk}.npy"));
        compute(
            &input,
            &many,
            &["--batch-particles", "50", "--chunk-pairs", chunk],
        );
        assert!(bytes(&many) == bytes(&one), "chunk {chunk}: batches differ");
    }
    let pc_one = dir.path().join("pc_one.npz");
    let pc_many = dir.path().join("pc_many.npz");
    compute(&input, &pc_one, &["--per-center"]);
    compute(
        &input,
        &pc_many,
        &["--per-center", "--batch-particles", "30"],
    );
    let read = |p: &Path| -> Vec<Vec<u8>> {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
        ["power_spectrum.npy", "frame.npy", "center.npy"]
            .iter()
            .map(|m| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut zip.by_name(m).unwrap(), &mut v).unwrap();
                v
            })
            .collect()
    };
    assert!(read(&pc_one) == read(&pc_many), "per-centre batches differ");
}

#[test]
fn shards_merge_to_the_single_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = trajectory(d);
    for (n, ext, extra) in [
        (4usize, "npy", vec![]),
        (16, "npy", vec![]),
        (4, "npz", vec!["--per-center"]),
        (3, "safetensors", vec!["--density"]),
        (4, "csv", vec!["--per-center"]),
    ] {
        let mut species = vec!["--species", "1,6"];
        species.extend(&extra);
        let single = d.join(format!("single_{n}.{ext}"));
        compute(&input, &single, &species);
        let shards: Vec<PathBuf> = (0..n)
            .map(|k| {
                let out = d.join(format!("shard_{n}_{k}.{ext}"));
                let shard = format!("{k}/{n}");
                let mut args = species.clone();
                args.extend(["--shard", shard.as_str()]);
                compute(&input, &out, &args);
                out
            })
            .collect();
        let merged = d.join(format!("merged_{n}.{ext}"));
        let mut reversed = shards.clone();
        reversed.reverse();
        merge(&reversed, &merged).success();
        if ext == "npy" || ext == "csv" {
            assert!(bytes(&merged) == bytes(&single), "{n} {ext} shards differ");
        } else {
            // The archives also hold metadata (merged_from, shard), so compare their arrays:
            // both re-written as CSV (index columns and values, round-trip exact).
            let as_csv = |p: &Path| {
                let out = p.with_extension("csv");
                merge(&[p.to_path_buf()], &out).success();
                bytes(&out)
            };
            assert!(
                as_csv(&merged) == as_csv(&single),
                "{n} {ext} shards differ"
            );
        }
    }
}

#[test]
fn merge_refuses_shards_that_do_not_tile_or_agree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = trajectory(d);
    let shard = |k: usize, n: usize, extra: &[&str]| {
        let out = d.join(format!("s{k}_{n}_{}.npz", extra.len()));
        let spec = format!("{k}/{n}");
        let mut args = vec!["--species", "1,6", "--shard", spec.as_str()];
        args.extend(extra);
        compute(&input, &out, &args);
        out
    };
    let (s0, s1, s2, s3) = (
        shard(0, 4, &[]),
        shard(1, 4, &[]),
        shard(2, 4, &[]),
        shard(3, 4, &[]),
    );
    let out = d.join("m.npz");
    merge(&[s0.clone(), s1.clone(), s3.clone()], &out)
        .failure()
        .stderr(predicate::str::contains("frames 20..30 are missing"));
    merge(
        &[s0.clone(), s1.clone(), s1.clone(), s2.clone(), s3.clone()],
        &out,
    )
    .failure()
    .stderr(predicate::str::contains("overlaps the shards before it"));
    merge(&[s0.clone(), s1.clone(), s2.clone()], &out)
        .failure()
        .stderr(predicate::str::contains("frames 30..40 are missing"));
    let other_hypers = d.join("h.npz");
    bin()
        .args([
            "compute",
            "--quiet",
            "--max-angular",
            "2",
            "--cutoff",
            "4.0",
            "--width",
            "1.2",
        ])
        .args(["--species", "1,6", "--shard", "3/4"])
        .arg(&input)
        .arg("-o")
        .arg(&other_hypers)
        .assert()
        .success();
    merge(&[s0.clone(), s1.clone(), s2.clone(), other_hypers], &out)
        .failure()
        .stderr(predicate::str::contains("their 'hypers' differs"));
    let original_columns = d.join("o.npz");
    compute(&input, &original_columns, &["--shard", "3/4"]);
    merge(
        &[s0.clone(), s1.clone(), s2.clone(), original_columns],
        &out,
    )
    .failure()
    .stderr(predicate::str::contains("same --species list"));
    let per_center = shard(3, 4, &["--per-center"]);
    merge(&[s0, s1, s2, per_center], &out)
        .failure()
        .stderr(predicate::str::contains("their 'quantity' differs"));
    assert!(!out.exists(), "a refused merge left an output");
}

#[test]
fn several_workers_equal_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = trajectory(dir.path());
    for extra in [
        vec![],
        vec!["--per-center"],
        vec!["--density", "--dtype", "f32"],
    ] {
        let one = dir.path().join("one.npy");
        let three = dir.path().join("three.npy");
        let mut a = vec!["--chunk-pairs", "100"];
        a.extend(&extra);
        compute(&input, &one, &a);
        let mut b = a.clone();
        b.extend(["--device", "cpu,cpu,cpu"]);
        compute(&input, &three, &b);
        assert!(bytes(&one) == bytes(&three), "{extra:?}: workers differ");
    }
}

#[test]
fn semi_axes_for_files_without_diameters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ellipsoids.xyz");
    let text = std::fs::read_to_string(&example).unwrap();
    // The example with every diameter set to (2, 3, 4): the flag must give the same features.
    let uniform = d.join("uniform.xyz");
    let mut lines = Vec::new();
    let mut stripped_lines = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 11 {
            let mut f = fields.clone();
            f[8] = "2";
            f[9] = "3";
            f[10] = "4";
            lines.push(f.join(" "));
            stripped_lines.push(fields[..8].join(" "));
        } else {
            lines.push(line.to_string());
            stripped_lines
                .push(line.replace(":c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1", ""));
        }
    }
    std::fs::write(&uniform, lines.join("\n") + "\n").unwrap();
    let stripped = d.join("stripped.xyz");
    std::fs::write(&stripped, stripped_lines.join("\n") + "\n").unwrap();
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    compute(&uniform, &a, &[]);
    compute(&stripped, &b, &["--semi-axes", "1,1.5,2"]);
    assert!(
        bytes(&a) == bytes(&b),
        "--semi-axes differs from the columns"
    );
    let c = d.join("c.npy");
    bin()
        .args(["compute", "--quiet"])
        .args(HYPERS)
        .args(["--semi-axes", "1,1.5,2"])
        .arg(&uniform)
        .arg("-o")
        .arg(&c)
        .assert()
        .failure()
        .stderr(predicate::str::contains("never silently overridden"));
    assert!(!c.exists());
    for bad in ["1,2", "1,2,-3", "a,b,c"] {
        bin()
            .args(["compute", "--quiet"])
            .args(HYPERS)
            .args(["--semi-axes", bad])
            .arg(&stripped)
            .arg("-o")
            .arg(&c)
            .assert()
            .failure()
            .stderr(predicate::str::contains("--semi-axes"));
    }
}
