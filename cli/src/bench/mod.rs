//! `bench` subcommand: named systems × backends × settings from a config, with warm-up,
//! repeats, a per-stage breakdown read from the production spans ([`spans`]), and one
//! `<run>.metrics.json` per run under `<out>/logs/`. The `threads` sweep runs each thread
//! count in a child process (this binary again, with `RAYON_NUM_THREADS` and
//! `CANDLE_NUM_THREADS` set), because rayon's and candle's pools take their size once, when
//! they start.
//!
//! Backends: `reference` (plain Rust f64), `candle-cpu`, `candle-cuda`, `candle-metal` (the
//! batched path; GPU ones are recorded as skipped, with the reason, when the binary or machine
//! lacks them) and `upstream` (the original Python AniSOAP through
//! `scripts/bench_upstream.py`).

pub mod config;
pub mod metrics;
pub mod spans;
pub mod staged;
pub mod threads;
pub mod upstream;

use crate::compute::{HyperArgs, RunArgs};
use anisoap_candle::system::System;
use anisoap_candle::{xyz, Backend, Calculator, Frame, Hypers, Quantity};
use anyhow::{bail, Context, Result};
use config::{Setting, Source};
use metrics::{Memory, Metrics, StageBreakdown, SystemInfo, Times};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Backend names accepted in configs and `--backends`.
pub const BACKENDS: [&str; 5] = [
    "reference",
    "candle-cpu",
    "candle-cuda",
    "candle-metal",
    "upstream",
];

/// Arguments of `anisoap-candle bench`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  anisoap-candle bench --preset tiny --out /tmp/bench\n  \
    anisoap-candle bench --preset cpu --python ../.venv-anisoap/bin/python\n  \
    anisoap-candle bench --config configs/batch_gpu.toml --sweep size --sweep lmax\n\n\
    Then `anisoap-candle aggregate` and `anisoap-candle plot` on the same --out directory."
)]
pub struct BenchArgs {
    /// Named preset: tiny (CI smoke, seconds), cpu (the CPU study), gpu (CUDA study); reads
    /// configs/tiny.toml, configs/batch_cpu.toml or configs/batch_gpu.toml (the copy built
    /// into the binary when the file is not there).
    #[arg(long, value_parser = ["tiny", "cpu", "gpu"], conflicts_with = "config")]
    pub preset: Option<String>,
    /// Benchmark config file (TOML; see configs/batch_cpu.toml for the keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Sweep to run over the values in the config's `[sweep]` table: species, size, lmax,
    /// chunk, dtype or threads (each thread count in a child process); repeat the flag (or use
    /// commas) for several. Default: the config's sweep.default list.
    #[arg(long = "sweep", value_delimiter = ',')]
    pub sweeps: Vec<String>,
    /// Thread counts of the `threads` sweep (comma list) instead of the config's
    /// sweep.threads.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Only these backends (comma list) instead of the config's.
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Results directory: metrics go to DIR/logs, generated XYZ/hypers to DIR/data.
    #[arg(long, visible_alias = "results", default_value = "results")]
    pub out: PathBuf,
    /// Benchmark the extended XYZ files of this directory instead of synthetic systems
    /// (default: $DATA_ROOT when set).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Python interpreter with the original AniSOAP for the upstream backend (default:
    /// $ANISOAP_PYTHON, else .venv-anisoap/bin/python here or in the parent directory).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Override the config's timed repeats.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Override the config's warm-up calls.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Override the config's staged runs (span-recorded production calls: the stage
    /// breakdown).
    #[arg(long)]
    pub stage_repeats: Option<usize>,
    /// List the runs without running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Internal: run only the `threads` sweep's points of this thread count (set by the parent
    /// process of `--sweep threads`, with RAYON_NUM_THREADS and CANDLE_NUM_THREADS).
    #[arg(long, hide = true)]
    pub threads_child: Option<usize>,
}

/// Everything a run needs that is shared by all backends of one setting.
struct Prepared<'a> {
    setting: &'a Setting,
    frames: Vec<Frame>,
    hypers: Hypers,
    hypers_json: PathBuf,
    system_info: SystemInfo,
    n_particles: usize,
    pairs: usize,
    species: usize,
}

/// Shared state of one `bench` invocation.
struct Harness {
    preset: String,
    config_source: String,
    warmup: usize,
    repeats: usize,
    stage_repeats: usize,
    check_max_pairs: usize,
    logs: PathBuf,
    data_dir: PathBuf,
    python: std::result::Result<PathBuf, String>,
    env: metrics::Environment,
    skip: BTreeMap<String, String>,
    max_pairs: BTreeMap<String, usize>,
    backend_repeats: BTreeMap<String, usize>,
    written: Vec<PathBuf>,
}

fn data_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read data directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xyz")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .xyz files in {}", dir.display());
    }
    Ok(files)
}

/// Runs the `bench` subcommand.
pub fn run(args: &BenchArgs) -> Result<()> {
    let loaded = config::load(args.preset.as_deref(), args.config.as_deref())?;
    let mut cfg = loaded.config.clone();
    if !args.backends.is_empty() {
        for b in &args.backends {
            if !BACKENDS.contains(&b.as_str()) {
                bail!(
                    "unknown backend '{b}'; expected one of {}",
                    BACKENDS.join(", ")
                );
            }
        }
        cfg.backends = args.backends.clone();
    }
    if !args.threads.is_empty() {
        if let Some(bad) = args
            .threads
            .iter()
            .find(|&&t| t == 0 || t > config::MAX_THREADS)
        {
            bail!("--threads {bad} is not in 1..={}", config::MAX_THREADS);
        }
        cfg.sweep.threads = args.threads.clone();
    }
    let data_dir = args
        .data
        .clone()
        .or_else(|| std::env::var_os("DATA_ROOT").map(PathBuf::from));
    let data = match &data_dir {
        Some(dir) => data_files(dir)?,
        None => Vec::new(),
    };
    let sweeps = if args.sweeps.is_empty() {
        cfg.sweep.default.clone()
    } else {
        args.sweeps.clone()
    };
    let mut settings = config::expand(&cfg, &sweeps, &data)?;
    if let Some(t) = args.threads_child {
        let env = std::env::var("RAYON_NUM_THREADS").ok();
        if env.as_deref() != Some(t.to_string().as_str()) {
            bail!(
                "--threads-child {t} is internal to `bench --sweep threads` (it expects \
                 RAYON_NUM_THREADS={t}, found {env:?})"
            );
        }
        settings.retain(|s| s.threads == Some(t));
    }
    let mut harness = Harness {
        preset: cfg.name.clone(),
        config_source: loaded.source.clone(),
        warmup: args.warmup.unwrap_or(cfg.warmup),
        repeats: args.repeats.unwrap_or(cfg.repeats).max(1),
        stage_repeats: args.stage_repeats.unwrap_or(cfg.stage_repeats),
        check_max_pairs: cfg.check_max_pairs,
        logs: args.out.join("logs"),
        data_dir: args.out.join("data"),
        python: upstream::find_python(args.python.as_deref()),
        env: metrics::environment(),
        skip: cfg.skip.clone(),
        max_pairs: cfg.max_pairs.clone(),
        backend_repeats: if args.repeats.is_some() {
            BTreeMap::new()
        } else {
            cfg.backend_repeats.clone()
        },
        written: Vec::new(),
    };
    eprintln!(
        "bench '{}' ({}; {}): {} settings x backends [{}], sweeps [{}], warm-up {}, \
         repeats {}, staged {}",
        cfg.name,
        loaded.source,
        cfg.description,
        settings.len(),
        cfg.backends.join(", "),
        sweeps.join(", "),
        harness.warmup,
        harness.repeats,
        harness.stage_repeats
    );
    if args.dry_run {
        for s in &settings {
            eprintln!(
                "  {} lmax {} chunk {} dtypes [{}] sweeps [{}]{}",
                s.system.name,
                s.lmax(),
                s.chunk_pairs,
                s.dtypes.join(","),
                s.sweeps.join(","),
                s.threads
                    .map(|t| format!(" threads {t} (child process)"))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let start = Instant::now();
    let in_child = args.threads_child.is_some();
    let mut children = Vec::new();
    for setting in &settings {
        if let (Some(t), false) = (setting.threads, in_child) {
            if !children.contains(&t) {
                children.push(t);
            }
            continue;
        }
        let prepared = harness.prepare(setting)?;
        for backend in &cfg.backends {
            if backend.starts_with("candle-") {
                for dtype in &setting.dtypes {
                    harness.run_one(&prepared, backend, dtype)?;
                }
            } else {
                harness.run_one(&prepared, backend, "f64")?;
            }
        }
    }
    for &t in &children {
        harness.written.extend(threads::run_child(args, t)?);
    }
    eprintln!(
        "bench '{}': {} metrics files in {} ({:.1} s)",
        cfg.name,
        harness.written.len(),
        harness.logs.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `compute`'s device flags, parsed like the command line (so defaults of flags added there
/// apply here too).
fn run_args(device: &str, dtype: &str, chunk_pairs: usize) -> Result<RunArgs> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        run: RunArgs,
    }
    let chunk = chunk_pairs.to_string();
    let args = [
        "bench",
        "--device",
        device,
        "--dtype",
        dtype,
        "--chunk-pairs",
        chunk.as_str(),
    ];
    Ok(<Wrapper as clap::Parser>::try_parse_from(args)?.run)
}

/// The error chain on one line, without the backtraces candle appends.
fn first_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Harness {
    fn prepare<'a>(&self, setting: &'a Setting) -> Result<Prepared<'a>> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        let hypers_json = self.data_dir.join(format!(
            "{}_l{}.hypers.json",
            sanitize(&self.preset),
            setting.lmax()
        ));
        std::fs::write(
            &hypers_json,
            serde_json::to_string_pretty(&Value::Object(setting.hypers.clone()))?,
        )?;
        let hypers = HyperArgs {
            config: Some(hypers_json.clone()),
            ..HyperArgs::default()
        }
        .resolve()?;
        let (frames, system_info) = match &setting.system.source {
            Source::Synthetic(spec) => (
                anisoap_candle::synthetic::generate(spec, setting.system.frames),
                SystemInfo {
                    name: setting.system.name.clone(),
                    kind: setting.system.kind.clone(),
                    file: None,
                    frames: setting.system.frames,
                    particles_per_frame: spec.n_particles,
                    seed: Some(spec.seed),
                    density: Some(spec.density),
                    periodic: Some(spec.periodic),
                },
            ),
            Source::File(path) => {
                let frames = xyz::read_xyz_file(path)?;
                let info = SystemInfo {
                    name: setting.system.name.clone(),
                    kind: "file".into(),
                    file: Some(path.display().to_string()),
                    frames: frames.len(),
                    particles_per_frame: frames.first().map_or(0, |f| f.len()),
                    ..SystemInfo::default()
                };
                (frames, info)
            }
        };
        let basis = anisoap_candle::basis::Basis::new(&hypers)?;
        let system = System::new(&frames, &basis)?;
        let n_particles = system.particles.len();
        let pairs = system.n_pairs();
        let species = system.layout.types.len();
        drop(system);
        Ok(Prepared {
            setting,
            frames,
            hypers,
            hypers_json,
            system_info,
            n_particles,
            pairs,
            species,
        })
    }

    fn base_metrics(&self, p: &Prepared, backend: &str, dtype: &str) -> Metrics {
        let chunk = backend
            .starts_with("candle-")
            .then_some(p.setting.chunk_pairs);
        let run_id = sanitize(&format!(
            "{}_{}_{}_{}_l{}{}{}",
            self.preset,
            p.setting.system.name,
            backend,
            dtype,
            p.setting.lmax(),
            chunk.map(|c| format!("_c{c}")).unwrap_or_default(),
            p.setting
                .threads
                .map(|t| format!("_t{t}"))
                .unwrap_or_default()
        ));
        Metrics {
            schema: metrics::SCHEMA,
            run_id,
            preset: self.preset.clone(),
            config_source: self.config_source.clone(),
            timestamp: String::new(),
            status: "ok".into(),
            reason: None,
            sweeps: p.setting.sweeps.clone(),
            system: p.system_info.clone(),
            n_particles: p.n_particles,
            pairs: p.pairs,
            species: p.species,
            backend: backend.into(),
            device: match backend {
                "reference" => "cpu".into(),
                "upstream" => "python".into(),
                other => other.trim_start_matches("candle-").into(),
            },
            dtype: dtype.into(),
            threads: None,
            threads_requested: p.setting.threads,
            rayon_threads: Some(anisoap_candle::device::rayon_threads()),
            candle_threads: Some(candle_core::utils::get_num_threads()),
            threads_note: p
                .setting
                .threads
                .and_then(|t| threads::note(t, self.env.cpu_count)),
            lmax: p.setting.lmax(),
            chunk_pairs: chunk,
            hypers: p.setting.hypers.clone(),
            warmup: self.warmup,
            repeats: self.repeats,
            times: Times::default(),
            pairs_per_s: None,
            setup_s: None,
            stages: StageBreakdown::default(),
            memory: Memory {
                rss_source: "VmHWM of /proc/self/status (reset per run via clear_refs)".into(),
                ..Memory::default()
            },
            env: self.env.clone(),
            extra: serde_json::Map::new(),
        }
    }

    /// Timed calls for `backend`.
    fn repeats_for(&self, backend: &str) -> usize {
        self.backend_repeats
            .get(backend)
            .copied()
            .unwrap_or(self.repeats)
            .max(1)
    }

    fn run_one(&mut self, p: &Prepared, backend: &str, dtype: &str) -> Result<()> {
        let mut m = self.base_metrics(p, backend, dtype);
        m.repeats = self.repeats_for(backend);
        let skip_reason = if let Some(reason) = self.skip.get(backend) {
            Some(reason.clone())
        } else if backend == "upstream" && p.setting.threads.is_some() {
            Some("the threads sweep runs the Rust backends only".into())
        } else {
            match self.max_pairs.get(backend) {
                Some(&limit) if limit > 0 && p.pairs > limit => Some(format!(
                    "{} pairs is more than max_pairs.{backend} = {limit} in the config",
                    p.pairs
                )),
                _ => None,
            }
        };
        let outcome = match skip_reason {
            Some(reason) => Err(Skip(reason)),
            None => match backend {
                "upstream" => self.measure_upstream(p, &mut m),
                "reference" => self.measure_rust(p, Backend::Reference, &mut m),
                candle => {
                    let backend = run_args(
                        candle.trim_start_matches("candle-"),
                        dtype,
                        p.setting.chunk_pairs,
                    )
                    .and_then(|run| run.backend());
                    match backend {
                        Ok(b) => self.measure_rust(p, b, &mut m),
                        Err(e) => Err(Skip(first_line(&e))),
                    }
                }
            },
        };
        match outcome {
            Ok(()) => {}
            Err(Skip(reason)) if reason.starts_with("failed: ") => {
                m.status = "failed".into();
                m.reason = Some(reason.trim_start_matches("failed: ").into());
            }
            Err(Skip(reason)) => {
                m.status = "skipped".into();
                m.reason = Some(reason);
            }
        }
        m.timestamp = metrics::utc_now();
        let path = m.write(&self.logs)?;
        let summary = match (m.status.as_str(), m.times.median_s) {
            ("ok", Some(t)) => format!(
                "median {t:.4} s ({:.3e} pairs/s)",
                m.pairs_per_s.unwrap_or(0.0)
            ),
            (status, _) => format!("{status}: {}", m.reason.as_deref().unwrap_or("")),
        };
        eprintln!(
            "  {} {} {} l{} ({} particles, {} pairs): {summary}",
            p.setting.system.name, backend, dtype, m.lmax, m.n_particles, m.pairs
        );
        self.written.push(path);
        Ok(())
    }

    fn measure_rust(
        &self,
        p: &Prepared,
        backend: Backend,
        m: &mut Metrics,
    ) -> std::result::Result<(), Skip> {
        self.measure_rust_inner(p, backend, m)
            .map_err(|e| Skip(format!("failed: {}", first_line(&e))))
    }

    fn measure_rust_inner(&self, p: &Prepared, backend: Backend, m: &mut Metrics) -> Result<()> {
        let options = match &backend {
            Backend::Batched(o) => Some(o.clone()),
            Backend::Reference => None,
        };
        m.device = match &options {
            Some(o) => anisoap_candle::device::device_name(&o.device),
            None => "cpu".into(),
        };
        m.threads = Some(match &options {
            Some(_) => anisoap_candle::device::rayon_threads(),
            None => 1,
        });
        if options.as_ref().is_some_and(|o| o.device.is_cuda()) {
            m.env.gpu_model = metrics::gpu_model();
            m.memory.gpu_memory_note = Some(
                "not measured by the bench: fill from `nvidia-smi --query-gpu=memory.used \
                 --format=csv` sampled during the run"
                    .into(),
            );
        }
        let reset = metrics::reset_peak_rss();
        let t = Instant::now();
        let calculator = Calculator::new(&p.hypers, backend)?;
        m.setup_s = Some(t.elapsed().as_secs_f64());
        let call = || -> Result<f64> {
            let t = Instant::now();
            let features =
                calculator.compute(&p.frames, Quantity::PowerSpectrumMean, &mut |_, _| {})?;
            if let Some(o) = &options {
                o.device.synchronize()?;
            }
            std::hint::black_box(&features);
            Ok(t.elapsed().as_secs_f64())
        };
        for _ in 0..self.warmup {
            call()?;
        }
        let mut times = Vec::with_capacity(m.repeats);
        for _ in 0..m.repeats {
            times.push(call()?);
        }
        m.times = Times::from(times);
        m.pairs_per_s = m.times.median_s.map(|t| p.pairs as f64 / t);
        m.memory.peak_rss_bytes = metrics::peak_rss_bytes();
        if !reset {
            m.memory.rss_source = "VmHWM of /proc/self/status (process peak so far: reset \
                                   not available)"
                .into();
        }
        m.stages = staged::breakdown(
            &calculator,
            p,
            options.as_ref(),
            self.stage_repeats,
            self.check_max_pairs,
        )?;
        Ok(())
    }

    fn measure_upstream(&self, p: &Prepared, m: &mut Metrics) -> std::result::Result<(), Skip> {
        let python = self.python.clone().map_err(Skip)?;
        m.memory.rss_source = "ru_maxrss of the Python process (imports included)".into();
        self.measure_upstream_inner(p, m, &python)
            .map_err(|e| Skip(format!("failed: {}", first_line(&e))))
    }

    fn measure_upstream_inner(&self, p: &Prepared, m: &mut Metrics, python: &Path) -> Result<()> {
        let xyz_path = match &p.setting.system.source {
            Source::File(path) => path.clone(),
            Source::Synthetic(_) => {
                let path = self
                    .data_dir
                    .join(format!("{}.xyz", sanitize(&p.setting.system.name)));
                let mut bytes = Vec::new();
                xyz::write_xyz(&mut bytes, &p.frames)?;
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                path
            }
        };
        m.system.file = Some(xyz_path.display().to_string());
        let script = upstream::script_path(&self.data_dir)?;
        let report = upstream::run(
            python,
            &script,
            &xyz_path,
            &p.hypers_json,
            self.warmup,
            m.repeats,
        )?;
        m.times = Times::from(report.times_s.clone());
        m.pairs_per_s = m.times.median_s.map(|t| p.pairs as f64 / t);
        m.memory.peak_rss_bytes = report.peak_rss_bytes;
        m.threads = report
            .threads
            .as_ref()
            .and_then(|t| t.values().flatten().copied().max());
        m.stages = StageBreakdown {
            method: "bench_upstream.py: wall time inside the wrapped module functions of \
                     power_spectrum() (pair_expansion = pairwise_ellip_expansion: Gaussians, \
                     moments and contraction together)"
                .into(),
            median_s: report
                .stages_s
                .iter()
                .filter_map(|(k, v)| metrics::median(v).map(|x| (k.clone(), x)))
                .collect(),
            all_s: report.stages_s.clone(),
            total_median_s: m.times.median_s,
            check_max_abs_diff: None,
            ..StageBreakdown::default()
        };
        m.extra = report.rest.clone();
        m.extra
            .insert("python".into(), Value::from(python.display().to_string()));
        m.extra.insert(
            "upstream_n_pairs".into(),
            report.n_pairs.map(Value::from).unwrap_or(Value::Null),
        );
        if let Some(t) = &report.threads {
            m.extra
                .insert("threadpools".into(), serde_json::to_value(t)?);
        }
        Ok(())
    }
}

/// A run that did not produce times: skipped (reason), or failed (reason starts "failed: ").
struct Skip(String);
