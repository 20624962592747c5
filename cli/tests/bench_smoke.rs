//! Smoke test of the benchmark pipeline: `bench --preset tiny`, then `aggregate` and `plot` on
//! the same directory. Needs no Python: the tiny preset skips `upstream` explicitly, and that
//! skip must be recorded.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("anisoap-candle").unwrap();
    cmd.current_dir(repo());
    cmd
}

#[test]
fn bench_tiny_aggregate_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    bin()
        .args(["bench", "--preset", "tiny", "--out"])
        .arg(out)
        .assert()
        .success();
    let logs: Vec<_> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // 3 systems (sizes 8 and 16 at 1 species, 2 species at 16) x 3 backends.
    assert_eq!(logs.len(), 9, "{logs:?}");
    bin()
        .args(["aggregate", "--results"])
        .arg(out)
        .assert()
        .success();
    bin()
        .args(["plot", "--results"])
        .arg(out)
        .assert()
        .success();

    let mut reader = csv::Reader::from_path(out.join("tables/combined_from_metrics.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    for column in [
        "run_id",
        "status",
        "reason",
        "system",
        "n_particles",
        "pairs",
        "species",
        "backend",
        "dtype",
        "lmax",
        "median_s",
        "min_s",
        "max_s",
        "pairs_per_s",
        "stage_neighbor_list_s",
        "stage_moments_s",
        "stage_power_spectrum_s",
        "peak_rss_mb",
        "speedup_vs_reference",
        "git_commit",
        "cpu_model",
    ] {
        assert!(
            headers.iter().any(|h| h == column),
            "missing column {column}"
        );
    }
    let col: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 9);
    let mut ok_by_backend: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        let get = |c: &str| row.get(col[c]).unwrap();
        match get("backend") {
            "upstream" => {
                assert_eq!(get("status"), "skipped");
                assert!(get("reason").contains("tiny"), "{:?}", get("reason"));
            }
            "reference" | "candle-cpu" => {
                assert_eq!(get("status"), "ok", "{row:?}");
                assert_eq!(get("lmax"), "4");
                let median: f64 = get("median_s").parse().unwrap();
                assert!(median > 0.0);
                assert!(get("pairs").parse::<usize>().unwrap() > 0);
                // Stages are the production spans: the neighbour list of every backend, the
                // power spectrum of candle's chunks, the reference's whole chunk.
                assert!(get("stage_neighbor_list_s").parse::<f64>().unwrap() > 0.0);
                let last = match get("backend") {
                    "reference" => "stage_reference_chunk_s",
                    _ => "stage_power_spectrum_s",
                };
                assert!(get(last).parse::<f64>().unwrap() > 0.0, "{row:?}");
                *ok_by_backend.entry(get("backend").into()).or_default() += 1;
            }
            other => panic!("unexpected backend {other}"),
        }
        if get("backend") == "candle-cpu" {
            // The default CPU path runs the fused chunk kernel, not the tensor-op moments.
            assert!(get("stage_fused_pair_density_s").parse::<f64>().unwrap() > 0.0);
            assert_eq!(get("stage_moments_s"), "", "{row:?}");
            // The staged (production) output equals the reference backend's.
            assert!(get("stage_check_max_abs_diff").parse::<f64>().unwrap() < 1e-9);
        }
    }
    assert_eq!(ok_by_backend["reference"], 3);
    assert_eq!(ok_by_backend["candle-cpu"], 3);

    for name in [
        "wall_time_by_system.png",
        "wall_time_vs_species.png",
        "scaling.png",
        "speedup.png",
    ] {
        let bytes = std::fs::read(out.join("figures").join(name)).unwrap();
        assert!(bytes.len() > 1000, "{name} is {} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
    }
}

#[test]
fn bench_rejects_unknown_sweep_and_lists_runs() {
    bin()
        .args([
            "bench",
            "--preset",
            "tiny",
            "--sweep",
            "colour",
            "--dry-run",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains("unknown sweep 'colour'"));
    bin()
        .args([
            "bench",
            "--preset",
            "cpu",
            "--sweep",
            "lmax",
            "--dry-run",
            "--out",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .assert()
        .success()
        .stderr(predicates::str::contains("lmax 8"));
}

/// Span names in the library's source (`*_span!("name"`), to tell production spans apart.
fn production_span_names() -> BTreeSet<String> {
    fn walk(dir: &Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("_span!(\"").skip(1) {
                    names.insert(part.split('"').next().unwrap().to_string());
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(&repo().join("anisoap-candle/src"), &mut names);
    names
}

/// `--sweep threads` runs each thread count in its own process: distinct requested counts
/// that the pools really have, stages that are production spans with the production call
/// structure, and `aggregate` writes `threads_sweep.csv` with the figure's columns.
#[test]
fn threads_sweep_child_processes_and_production_spans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = dir.path().join("threads.toml");
    let tiny = std::fs::read_to_string(repo().join("configs/tiny.toml")).unwrap();
    let text = tiny
        .replace("name = \"tiny\"", "name = \"threads_test\"")
        .replace(
            "default = [\"size\", \"species\"]",
            "default = [\"threads\"]",
        )
        + "threads = [1, 2]\n";
    std::fs::write(&config, text).unwrap();
    bin()
        .args(["bench", "--backends", "reference,candle-cpu", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let production = production_span_names();
    for span in ["prepare", "neighbor_list", "chunk", "fused_pair_density"] {
        assert!(production.contains(span), "{span} not in {production:?}");
    }
    let mut requested = BTreeSet::new();
    for entry in std::fs::read_dir(out.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(m["status"], "ok", "{path:?}");
        let threads = m["threads_requested"].as_u64().unwrap();
        let backend = m["backend"].as_str().unwrap().to_string();
        requested.insert((backend.clone(), threads));
        // The child's pools have the requested size.
        assert_eq!(m["rayon_threads"].as_u64(), Some(threads), "{path:?}");
        assert_eq!(m["candle_threads"].as_u64(), Some(threads), "{path:?}");
        assert!(path
            .to_str()
            .unwrap()
            .ends_with(&format!("_t{threads}.metrics.json")));
        let stages = &m["stages"];
        let self_s = stages["median_s"].as_object().unwrap();
        let inclusive = stages["inclusive_median_s"].as_object().unwrap();
        let calls = stages["calls"].as_object().unwrap();
        let names: BTreeSet<String> = self_s.keys().cloned().collect();
        assert!(names.is_subset(&production), "{names:?} vs {production:?}");
        let expected: &[&str] = match backend.as_str() {
            "reference" => &[
                "prepare",
                "neighbor_list_pass",
                "neighbor_list",
                "reference_chunk",
            ],
            _ => &[
                "prepare",
                "neighbor_list_pass",
                "neighbor_list",
                "chunk",
                "fused_pair_density",
                "power_spectrum",
            ],
        };
        for name in expected {
            assert!(names.contains(*name), "{backend}: no {name} in {names:?}");
        }
        // One system preparation; one neighbour list per chunk.
        assert_eq!(calls["prepare"], 1);
        let chunk = if backend == "reference" {
            "reference_chunk"
        } else {
            "chunk"
        };
        assert_eq!(calls["neighbor_list"], calls[chunk], "{calls:?}");
        // Self times exclude the child spans: with one staged run, a parent's inclusive time
        // is at least its self time plus its children's (same thread).
        let t = |map: &serde_json::Map<String, Value>, k: &str| map[k].as_f64().unwrap();
        assert!(
            t(inclusive, "prepare")
                >= t(self_s, "prepare") + t(inclusive, "neighbor_list_pass") - 1e-9
        );
        if backend == "candle-cpu" {
            let children = t(inclusive, "fused_pair_density") + t(inclusive, "power_spectrum");
            assert!(t(inclusive, "chunk") >= t(self_s, "chunk") + children - 1e-9);
            assert!(stages["check_max_abs_diff"].as_f64().unwrap() < 1e-9);
        }
        // The stages account for the call: the traced self times sum to most of the wall
        // time and, summed over threads, to no more than all threads busy throughout.
        let wall = stages["wall_median_s"].as_f64().unwrap();
        let total = stages["total_median_s"].as_f64().unwrap();
        let sum: f64 = self_s.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - total).abs() <= 1e-9, "{sum} vs {total}");
        assert!(total >= 0.5 * wall, "{total} of {wall}");
        assert!(total <= wall * (threads as f64 + 1.0), "{total} of {wall}");
    }
    let expected: BTreeSet<(String, u64)> = ["reference", "candle-cpu"]
        .iter()
        .flat_map(|b| [(b.to_string(), 1), (b.to_string(), 2)])
        .collect();
    assert_eq!(requested, expected);

    bin()
        .args(["aggregate", "--results"])
        .arg(&out)
        .assert()
        .success();
    let mut reader = csv::Reader::from_path(out.join("tables/threads_sweep.csv")).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let figure_columns = [
        "host",
        "device",
        "threads",
        "system",
        "particles",
        "pairs",
        "lmax",
        "dtype",
        "backend",
        "wall_s",
        "pairs_per_s",
        "commit",
    ];
    assert_eq!(headers[..12], figure_columns.map(String::from));
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    let threads: BTreeSet<&str> = rows.iter().map(|r| r.get(2).unwrap()).collect();
    assert_eq!(threads, BTreeSet::from(["1", "2"]));
    for r in &rows {
        assert!(r.get(10).unwrap().parse::<f64>().unwrap() > 0.0, "{r:?}");
    }
}
