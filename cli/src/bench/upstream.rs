//! The `upstream` backend: the original Python AniSOAP, timed by `scripts/bench_upstream.py`
//! in a Python that has `anisoap` and `ase`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The script, compiled in for when `scripts/bench_upstream.py` is not under the working
/// directory.
const SCRIPT: &str = include_str!("../../../scripts/bench_upstream.py");

/// What the script reports.
#[derive(Debug, Deserialize)]
pub struct UpstreamReport {
    /// Timed repeats, seconds.
    pub times_s: Vec<f64>,
    /// Per stage, each repeat, seconds.
    pub stages_s: BTreeMap<String, Vec<f64>>,
    /// Pairs of the featomic neighbour list.
    pub n_pairs: Option<usize>,
    /// Peak RSS of the Python process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// threadpoolctl's view: API → threads.
    pub threads: Option<BTreeMap<String, Option<usize>>>,
    /// Everything else (versions, mean method, shapes).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Chooses the interpreter: `--python`, then `ANISOAP_PYTHON`, then `.venv-anisoap/bin/python`
/// in the working directory or its parent. `Err` carries the reason to record as "skipped".
pub fn find_python(explicit: Option<&Path>) -> std::result::Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--python {} does not exist", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("ANISOAP_PYTHON") {
        let p = PathBuf::from(p);
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!("ANISOAP_PYTHON={} does not exist", p.display()))
        };
    }
    let candidates = [
        PathBuf::from(".venv-anisoap/bin/python"),
        PathBuf::from("../.venv-anisoap/bin/python"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            "no Python with AniSOAP: pass --python PATH or set ANISOAP_PYTHON \
         (looked for .venv-anisoap/bin/python here and in the parent directory)"
                .to_string()
        })
}

/// `scripts/bench_upstream.py` if present, else the compiled-in copy written under `scratch`.
pub fn script_path(scratch: &Path) -> Result<PathBuf> {
    let local = PathBuf::from("scripts/bench_upstream.py");
    if local.exists() {
        return Ok(local);
    }
    std::fs::create_dir_all(scratch)?;
    let path = scratch.join("bench_upstream.py");
    std::fs::write(&path, SCRIPT).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Runs the script on `xyz` with `hypers_json`; fails with the tail of its stderr.
pub fn run(
    python: &Path,
    script: &Path,
    xyz: &Path,
    hypers_json: &Path,
    warmup: usize,
    repeats: usize,
) -> Result<UpstreamReport> {
    let output_file = tempfile::Builder::new()
        .prefix("anisoap-upstream-")
        .suffix(".json")
        .tempfile()?;
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--xyz".as_ref(), xyz.as_os_str()])
        .args(["--hypers".as_ref(), hypers_json.as_os_str()])
        .args([
            "--warmup",
            &warmup.to_string(),
            "--repeats",
            &repeats.to_string(),
        ])
        .arg("--output")
        .arg(output_file.path())
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        bail!(
            "{} {} exited with {}: {}",
            python.display(),
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    let text = std::fs::read_to_string(output_file.path())?;
    serde_json::from_str(&text).context("bench_upstream.py wrote unreadable JSON")
}
