//! `aggregate` subcommand: every `<results>/logs/*.metrics.json` into one table,
//! `<results>/tables/combined_from_metrics.csv` (one row per run, skipped and failed runs
//! included with their reason), and the `threads` sweep's runs (those files and the ones kept
//! in `<results>/logs/threads_sweep/`, where the sweeps of several hosts are collected) into
//! `<results>/tables/threads_sweep.csv`.

use crate::bench::metrics::{Metrics, STAGES};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Arguments of `anisoap-candle aggregate`.
#[derive(clap::Args, Debug)]
pub struct AggregateArgs {
    /// Results directory (reads DIR/logs/*.metrics.json, writes
    /// DIR/tables/combined_from_metrics.csv).
    #[arg(long, visible_alias = "out", default_value = "results")]
    pub results: PathBuf,
    /// Output CSV (default: DIR/tables/combined_from_metrics.csv).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Columns of `threads_sweep.csv` (the figure script reads them by name): the first twelve
/// are the sweep's point; the rest say what the pools really had.
pub const THREADS_COLUMNS: [&str; 18] = [
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
    "rayon_threads",
    "candle_threads",
    "cpu_count",
    "oversubscribed",
    "cpu_model",
    "run_id",
];

/// One `threads_sweep.csv` row of an `ok` run of the threads sweep (`None` otherwise).
pub fn threads_row(m: &Metrics) -> Option<Vec<String>> {
    let threads = m.threads_requested?;
    let wall = m.times.median_s.filter(|_| m.status == "ok")?;
    Some(vec![
        m.env.hostname.clone().unwrap_or_default(),
        m.device.clone(),
        threads.to_string(),
        m.system.name.clone(),
        m.n_particles.to_string(),
        m.pairs.to_string(),
        m.lmax.to_string(),
        m.dtype.clone(),
        m.backend.clone(),
        wall.to_string(),
        opt(m.pairs_per_s),
        m.env.git_commit.clone().unwrap_or_default(),
        opt(m.rayon_threads),
        opt(m.candle_threads),
        m.env.cpu_count.to_string(),
        (threads > m.env.cpu_count).to_string(),
        m.env.cpu_model.clone().unwrap_or_default(),
        m.run_id.clone(),
    ])
}

/// Writes `rows` under `columns` to `path` atomically (temp file + rename).
fn write_csv(path: &Path, columns: &[String], rows: &[Vec<String>]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("csv.tmp");
    {
        let mut w = csv::Writer::from_path(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        w.write_record(columns)?;
        for r in rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Stage columns of the table: the bench's stages plus `other` (upstream's remainder).
pub fn stage_columns() -> Vec<String> {
    STAGES
        .iter()
        .chain(["density", "other"].iter())
        .map(|s| format!("stage_{s}_s"))
        .collect()
}

/// Column names of the combined table, in order.
pub fn columns() -> Vec<String> {
    let mut c: Vec<String> = [
        "run_id",
        "preset",
        "status",
        "reason",
        "system",
        "kind",
        "frames",
        "n_particles",
        "pairs",
        "species",
        "backend",
        "device",
        "dtype",
        "label",
        "threads",
        "threads_requested",
        "lmax",
        "chunk_pairs",
        "sweeps",
        "warmup",
        "repeats",
        "median_s",
        "min_s",
        "max_s",
        "pairs_per_s",
        "time_per_n2_s",
        "setup_s",
        "stage_total_s",
        "stage_wall_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    c.extend(stage_columns());
    c.extend(
        [
            "stage_check_max_abs_diff",
            "peak_rss_mb",
            "gpu_memory_mb",
            "speedup_vs_upstream",
            "speedup_vs_reference",
            "git_commit",
            "cpu_model",
            "gpu_model",
            "timestamp",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    c
}

/// Reads all metrics files of `logs`, sorted by run id.
pub fn read_metrics(logs: &Path) -> Result<Vec<Metrics>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(logs).with_context(|| format!("cannot read {}", logs.display()))?;
    for entry in entries {
        let path = entry?.path();
        let is_metrics = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".metrics.json") && !n.starts_with('.'));
        if !is_metrics {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let m: Metrics = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a metrics file", path.display()))?;
        out.push(m);
    }
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(out)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Median time of the `ok` run of `backend` on the same preset, system and lmax.
fn baseline(all: &[Metrics], m: &Metrics, backend: &str) -> Option<f64> {
    all.iter()
        .filter(|o| {
            o.status == "ok"
                && o.backend == backend
                && o.preset == m.preset
                && o.system.name == m.system.name
                && o.lmax == m.lmax
        })
        .filter_map(|o| o.times.median_s)
        .reduce(f64::min)
}

/// One table row for `m` (speedups against the other runs of `all`).
pub fn row(all: &[Metrics], m: &Metrics) -> Vec<String> {
    let median = m.times.median_s.filter(|_| m.status == "ok");
    let speedup = |backend: &str| {
        median
            .zip(baseline(all, m, backend))
            .map(|(t, base)| base / t)
    };
    let n = m.n_particles as f64;
    let mut r = vec![
        m.run_id.clone(),
        m.preset.clone(),
        m.status.clone(),
        m.reason.clone().unwrap_or_default().replace('\n', " "),
        m.system.name.clone(),
        m.system.kind.clone(),
        m.system.frames.to_string(),
        m.n_particles.to_string(),
        m.pairs.to_string(),
        m.species.to_string(),
        m.backend.clone(),
        m.device.clone(),
        m.dtype.clone(),
        format!("{} {}", m.backend, m.dtype),
        opt(m.threads),
        opt(m.threads_requested),
        m.lmax.to_string(),
        opt(m.chunk_pairs),
        m.sweeps.join(";"),
        m.warmup.to_string(),
        m.repeats.to_string(),
        opt(median),
        opt(m.times.min_s.filter(|_| m.status == "ok")),
        opt(m.times.max_s.filter(|_| m.status == "ok")),
        opt(m.pairs_per_s.filter(|_| m.status == "ok")),
        opt(median.filter(|_| n > 0.0).map(|t| t / (n * n))),
        opt(m.setup_s),
        opt(m.stages.median_s.values().copied().reduce(|a, b| a + b)),
        opt(m.stages.wall_median_s),
    ];
    for c in stage_columns() {
        let stage = c.trim_start_matches("stage_").trim_end_matches("_s");
        r.push(opt(m.stages.median_s.get(stage)));
    }
    r.extend([
        opt(m.stages.check_max_abs_diff),
        opt(m
            .memory
            .peak_rss_bytes
            .map(|b| b as f64 / (1024.0 * 1024.0))),
        opt(m
            .memory
            .gpu_memory_bytes
            .map(|b| b as f64 / (1024.0 * 1024.0))),
        opt(speedup("upstream")),
        opt(speedup("reference")),
        m.env.git_commit.clone().unwrap_or_default(),
        m.env.cpu_model.clone().unwrap_or_default(),
        m.env.gpu_model.clone().unwrap_or_default(),
        m.timestamp.clone(),
    ]);
    r
}

/// Runs the `aggregate` subcommand.
pub fn run(args: &AggregateArgs) -> Result<()> {
    let logs = args.results.join("logs");
    let all = read_metrics(&logs)?;
    if all.is_empty() {
        anyhow::bail!("no *.metrics.json in {}", logs.display());
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.results.join("tables/combined_from_metrics.csv"));
    let rows: Vec<Vec<String>> = all.iter().map(|m| row(&all, m)).collect();
    write_csv(&output, &columns(), &rows)?;
    // The threads sweep: these logs plus the collected sweeps of other hosts.
    let collected = logs.join("threads_sweep");
    let mut sweep = all.clone();
    if collected.is_dir() {
        for m in read_metrics(&collected)? {
            let same = |o: &Metrics| {
                (&o.run_id, &o.timestamp, &o.env.hostname)
                    == (&m.run_id, &m.timestamp, &m.env.hostname)
            };
            if !sweep.iter().any(same) {
                sweep.push(m);
            }
        }
    }
    sweep.sort_by(|a, b| {
        let key = |m: &Metrics| {
            (
                m.env.hostname.clone(),
                m.n_particles,
                m.system.name.clone(),
                m.backend.clone(),
                m.dtype.clone(),
                m.lmax,
                m.threads_requested,
            )
        };
        key(a).cmp(&key(b))
    });
    let threads_rows: Vec<Vec<String>> = sweep.iter().filter_map(threads_row).collect();
    if !threads_rows.is_empty() {
        let path = args.results.join("tables/threads_sweep.csv");
        let columns: Vec<String> = THREADS_COLUMNS.iter().map(|c| c.to_string()).collect();
        write_csv(&path, &columns, &threads_rows)?;
        eprintln!(
            "aggregate: {} threads-sweep runs -> {}",
            threads_rows.len(),
            path.display()
        );
    }
    let ok = all.iter().filter(|m| m.status == "ok").count();
    eprintln!(
        "aggregate: {} runs ({ok} ok, {} skipped/failed) -> {}",
        all.len(),
        all.len() - ok,
        output.display()
    );
    Ok(())
}
