//! The `<run>.metrics.json` record of one (system, backend, setting) run, and the machine and
//! build facts every record carries.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the metrics layout.
pub const SCHEMA: u32 = 1;

/// Stage names of the breakdown table, in pipeline order: the production spans of
/// `anisoap-candle` that the bench records (`bench::spans`), then the stages of older metrics
/// files and of `upstream` (a run fills those it has).
pub const STAGES: [&str; 20] = [
    "prepare",
    "neighbor_list_pass",
    "neighbor_list",
    "chunk",
    "reference_chunk",
    "fused_pair_density",
    "cuda_upload",
    "cuda_pair_coefficients",
    "cuda_neighbor_sum",
    "gaussian_parameters",
    "moments_and_contraction",
    "moments",
    "contraction",
    "neighbor_sum",
    "power_spectrum",
    "setup",
    "gather",
    "moments_contraction_fused",
    "pair_expansion",
    "lowdin",
];

/// The system of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Name used in run ids.
    pub name: String,
    /// `benzene`, `liquid` or `file`.
    pub kind: String,
    /// XYZ file (user data, or the file written for `upstream`).
    pub file: Option<String>,
    /// Frames computed together.
    pub frames: usize,
    /// Particles per frame (first frame) for synthetic systems.
    pub particles_per_frame: usize,
    /// Generator seed (synthetic systems).
    pub seed: Option<u64>,
    /// Number density (synthetic systems).
    pub density: Option<f64>,
    /// Periodic box.
    pub periodic: Option<bool>,
}

/// Wall times of the timed calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Times {
    /// Every timed repeat, seconds.
    pub all_s: Vec<f64>,
    /// Median of `all_s`.
    pub median_s: Option<f64>,
    /// Minimum of `all_s`.
    pub min_s: Option<f64>,
    /// Maximum of `all_s`.
    pub max_s: Option<f64>,
}

impl Times {
    /// Summarises a list of times.
    pub fn from(all: Vec<f64>) -> Self {
        let median = median(&all);
        let min = all.iter().copied().reduce(f64::min);
        let max = all.iter().copied().reduce(f64::max);
        Times {
            all_s: all,
            median_s: median,
            min_s: min,
            max_s: max,
        }
    }
}

/// Median (mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// Per-stage breakdown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageBreakdown {
    /// How the stages were measured.
    pub method: String,
    /// Median over the stage repeats of each stage's time, seconds: for the Rust backends the
    /// self time of each production span (its busy time minus its child spans'), summed over
    /// threads.
    pub median_s: BTreeMap<String, f64>,
    /// Every stage repeat, seconds.
    pub all_s: BTreeMap<String, Vec<f64>>,
    /// Median of the staged run's total (sum of its stages; with spans on several threads at
    /// once this exceeds `wall_median_s`).
    pub total_median_s: Option<f64>,
    /// Median busy time of each span including its child spans, seconds (Rust backends).
    #[serde(default)]
    pub inclusive_median_s: BTreeMap<String, f64>,
    /// Entries of each span in one staged run (Rust backends).
    #[serde(default)]
    pub calls: BTreeMap<String, u64>,
    /// Distinct threads each span ran on, most over the staged runs (Rust backends).
    #[serde(default)]
    pub threads: BTreeMap<String, usize>,
    /// Median wall time of the staged computation, seconds (Rust backends).
    #[serde(default)]
    pub wall_median_s: Option<f64>,
    /// Largest |difference| between the staged run's output (the production per-frame mean
    /// power spectrum) and the reference backend's, over all values (candle backends on
    /// systems of at most `check_max_pairs` pairs: checks that the stages timed are
    /// the real computation).
    pub check_max_abs_diff: Option<f64>,
}

/// Memory use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Peak resident set size during the run, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Where `peak_rss_bytes` comes from.
    pub rss_source: String,
    /// GPU memory in use, bytes: not measured by the bench (fill from `nvidia-smi` later).
    pub gpu_memory_bytes: Option<u64>,
    /// How to fill `gpu_memory_bytes`.
    pub gpu_memory_note: Option<String>,
}

/// Machine and build facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    /// `git rev-parse HEAD` of the working directory, else `$ANISOAP_BENCH_COMMIT`, if any.
    pub git_commit: Option<String>,
    /// Whether `git status --porcelain` listed changes.
    pub git_dirty: Option<bool>,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// Logical CPUs available to the process.
    pub cpu_count: usize,
    /// GPU name from nvidia-smi, when a CUDA run happened.
    pub gpu_model: Option<String>,
    /// `linux-x86_64` etc.
    pub os: String,
    /// Versions of the crates that matter (from the workspace Cargo.lock at build time).
    pub crate_versions: BTreeMap<String, String>,
    /// Cargo features compiled into this binary (cuda, metal).
    pub features: Vec<String>,
    /// Hostname.
    pub hostname: Option<String>,
}

/// One `<run>.metrics.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Layout version ([`SCHEMA`]).
    pub schema: u32,
    /// File stem of this record.
    pub run_id: String,
    /// Config name (`tiny`, `cpu`, `gpu`, ...).
    pub preset: String,
    /// Config file or `builtin:<preset>`.
    pub config_source: String,
    /// UTC time the run finished, RFC 3339.
    pub timestamp: String,
    /// `ok`, `skipped` or `failed`.
    pub status: String,
    /// Why a run was skipped or failed.
    pub reason: Option<String>,
    /// Sweeps this point belongs to (`base` when none).
    pub sweeps: Vec<String>,
    /// The system.
    pub system: SystemInfo,
    /// Particles of all frames.
    pub n_particles: usize,
    /// Pairs of all frames (this crate's neighbour list; strict `< cutoff`).
    pub pairs: usize,
    /// Distinct species.
    pub species: usize,
    /// `reference`, `candle-cpu`, `candle-cuda`, `candle-metal` or `upstream`.
    pub backend: String,
    /// `cpu`, `cuda:0`, `metal:0`, `python`.
    pub device: String,
    /// `f64` or `f32`.
    pub dtype: String,
    /// Threads the backend may use (rayon's pool for the candle backends, 1 for the
    /// reference's chunk loop, the largest Python thread pool for upstream).
    pub threads: Option<usize>,
    /// Threads asked for by the `threads` sweep (`RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS`
    /// of the child process that ran this point); `None` outside the sweep.
    #[serde(default)]
    pub threads_requested: Option<usize>,
    /// Threads of rayon's global pool in the process that ran (our kernels, neighbour search).
    #[serde(default)]
    pub rayon_threads: Option<usize>,
    /// `candle_core::utils::get_num_threads()` in that process (candle's CPU ops: it reads
    /// `RAYON_NUM_THREADS`; candle's own pools prefer `CANDLE_NUM_THREADS`, which the sweep sets
    /// to the same value).
    #[serde(default)]
    pub candle_threads: Option<usize>,
    /// Set when the requested threads exceed the logical CPUs, or the pools differ from the
    /// request.
    #[serde(default)]
    pub threads_note: Option<String>,
    /// `max_angular`.
    pub lmax: u64,
    /// Pairs per chunk (candle backends).
    pub chunk_pairs: Option<usize>,
    /// Hyperparameters as passed (the original's keyword names).
    pub hypers: Map<String, Value>,
    /// Untimed calls.
    pub warmup: usize,
    /// Timed calls.
    pub repeats: usize,
    /// Wall time of one whole `power_spectrum` call (neighbour list included).
    pub times: Times,
    /// Pairs per second at the median time.
    pub pairs_per_s: Option<f64>,
    /// Building the calculator (basis constants, upload), seconds; not part of `times`.
    pub setup_s: Option<f64>,
    /// Stage breakdown.
    pub stages: StageBreakdown,
    /// Memory.
    pub memory: Memory,
    /// Machine and build.
    pub env: Environment,
    /// Backend-specific extras (upstream: package versions, mean method, pair count).
    pub extra: Map<String, Value>,
}

impl Metrics {
    /// Writes `<dir>/<run_id>.metrics.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.metrics.json", self.run_id));
        let tmp = dir.join(format!(".{}.metrics.json.tmp", self.run_id));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Peak RSS of this process (`VmHWM` of /proc/self/status), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5), so the next
/// [`peak_rss_bytes`] covers one run only. Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// GPU name from `nvidia-smi` (first GPU), if the tool is there.
pub fn gpu_model() -> Option<String> {
    command_output("nvidia-smi", &["--query-gpu=name", "--format=csv,noheader"])
        .and_then(|s| s.lines().next().map(str::to_string))
        .filter(|s| !s.is_empty())
}

fn lock_versions() -> BTreeMap<String, String> {
    let lock = include_str!("../../../Cargo.lock");
    let wanted = [
        "anisoap-candle",
        "candle-core",
        "gemm",
        "nalgebra",
        "plotters",
        "clap",
    ];
    let mut out = BTreeMap::new();
    for package in lock.split("[[package]]") {
        let field = |key: &str| {
            package.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(name), Some(version)) = (field("name = "), field("version = ")) {
            if wanted.contains(&name.as_str()) {
                out.entry(name).or_insert(version);
            }
        }
    }
    out.insert(
        "anisoap-candle-cli".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    out
}

/// Collects the machine and build facts (git, CPU, crate versions).
pub fn environment() -> Environment {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
    });
    let features = [
        cfg!(feature = "cuda").then_some("cuda"),
        cfg!(feature = "metal").then_some("metal"),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .collect();
    Environment {
        // Outside a checkout (a prebuilt binary on another host) the caller may say which
        // commit the binary was built from.
        git_commit: command_output("git", &["rev-parse", "HEAD"])
            .or_else(|| std::env::var("ANISOAP_BENCH_COMMIT").ok()),
        git_dirty: command_output("git", &["status", "--porcelain"]).map(|s| !s.is_empty()),
        cpu_model,
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        gpu_model: None,
        os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        crate_versions: lock_versions(),
        features,
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

/// Current UTC time as RFC 3339 (`2024-01-31T12:00:00Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn timestamp_shape() {
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }

    #[test]
    fn lock_has_candle() {
        assert!(lock_versions().contains_key("candle-core"));
    }
}
