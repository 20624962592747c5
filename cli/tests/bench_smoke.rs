//! Smoke test of the benchmark pipeline: `bench --preset tiny`, then `aggregate` and `plot` on
//! the same directory. Needs no Python: the tiny preset skips `upstream` explicitly, and that
//! skip must be recorded.

use assert_cmd::Command;
use std::collections::HashMap;
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
                assert!(get("stage_neighbor_list_s").parse::<f64>().unwrap() > 0.0);
                assert!(get("stage_power_spectrum_s").parse::<f64>().unwrap() > 0.0);
                *ok_by_backend.entry(get("backend").into()).or_default() += 1;
            }
            other => panic!("unexpected backend {other}"),
        }
        if get("backend") == "candle-cpu" {
            // Moments are either their own stage or fused with the contraction (CPU kernel).
            // (On 200 pairs the fused stage can time as 0 s on a busy machine: present and
            // non-negative is what can be asserted.)
            let moments: Vec<f64> = ["stage_moments_s", "stage_moments_contraction_fused_s"]
                .iter()
                .filter_map(|c| get(c).parse::<f64>().ok())
                .collect();
            assert!(
                !moments.is_empty() && moments.iter().all(|&t| t >= 0.0),
                "{row:?}"
            );
            // The staged pipeline reproduces the library's density.
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
