//! The `threads` sweep: each thread count runs in a child process of this binary with
//! `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` set, because rayon's global pool (our kernels,
//! the neighbour search) and candle's pools take their size once, when they start.

use super::BenchArgs;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// What to flag about a point of `requested` threads on `cpus` logical CPUs: oversubscription,
/// or a rayon pool of another size than requested.
pub fn note(requested: usize, cpus: usize) -> Option<String> {
    let rayon = anisoap_candle::device::rayon_threads();
    let mut notes = Vec::new();
    if requested > cpus {
        notes.push(format!(
            "oversubscribed: {requested} threads on {cpus} logical CPUs"
        ));
    }
    if rayon != requested {
        notes.push(format!("rayon's pool has {rayon} threads, not {requested}"));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Runs the `threads` sweep's points of `threads` in a child process (this binary, same
/// config and overrides, `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` = `threads`) and returns
/// the metrics files it wrote.
pub fn run_child(args: &BenchArgs, threads: usize) -> Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("threads sweep: cannot locate this binary")?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("bench");
    if let Some(preset) = &args.preset {
        cmd.args(["--preset", preset]);
    }
    if let Some(config) = &args.config {
        cmd.arg("--config").arg(config);
    }
    cmd.args([
        "--sweep",
        "threads",
        "--threads-child",
        &threads.to_string(),
    ]);
    if !args.backends.is_empty() {
        cmd.arg("--backends").arg(args.backends.join(","));
    }
    if !args.threads.is_empty() {
        let list: Vec<String> = args.threads.iter().map(usize::to_string).collect();
        cmd.arg("--threads").arg(list.join(","));
    }
    cmd.arg("--out").arg(&args.out);
    if let Some(data) = &args.data {
        cmd.arg("--data").arg(data);
    }
    if let Some(python) = &args.python {
        cmd.arg("--python").arg(python);
    }
    for (flag, value) in [
        ("--repeats", args.repeats),
        ("--warmup", args.warmup),
        ("--stage-repeats", args.stage_repeats),
    ] {
        if let Some(v) = value {
            cmd.arg(flag).arg(v.to_string());
        }
    }
    let n = threads.to_string();
    cmd.env("RAYON_NUM_THREADS", &n)
        .env("CANDLE_NUM_THREADS", &n);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "  threads {threads}: child process {}{}",
        exe.display(),
        if threads > cpus {
            format!(" (oversubscribed: {cpus} logical CPUs)")
        } else {
            String::new()
        }
    );
    let before = std::time::SystemTime::now();
    let status = cmd
        .status()
        .with_context(|| format!("threads sweep: cannot start {}", exe.display()))?;
    if !status.success() {
        bail!("threads sweep: the child process for {threads} threads failed ({status})");
    }
    // The child's files: this sweep's metrics of that thread count, written since it started.
    let logs = args.out.join("logs");
    let suffix = format!("_t{threads}.metrics.json");
    let mut written = Vec::new();
    for entry in
        std::fs::read_dir(&logs).with_context(|| format!("cannot read {}", logs.display()))?
    {
        let path = entry?.path();
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= before);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if fresh && name.ends_with(&suffix) && !name.starts_with('.') {
            written.push(path);
        }
    }
    Ok(written)
}
