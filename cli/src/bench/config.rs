//! Benchmark configuration files (`configs/tiny.toml`, `batch_cpu.toml`, `batch_gpu.toml`) and
//! their expansion into individual runs (system × setting; backends are looped by the harness).

use anisoap_candle::synthetic::{SyntheticSpec, SystemKind};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The presets bundled in the binary (the files under `configs/` are preferred when present).
pub const PRESETS: [(&str, &str, &str); 3] = [
    (
        "tiny",
        "configs/tiny.toml",
        include_str!("../../../configs/tiny.toml"),
    ),
    (
        "cpu",
        "configs/batch_cpu.toml",
        include_str!("../../../configs/batch_cpu.toml"),
    ),
    (
        "gpu",
        "configs/batch_gpu.toml",
        include_str!("../../../configs/batch_gpu.toml"),
    ),
];

/// Sweep dimensions accepted by `--sweep` and the `[sweep]` table.
pub const SWEEPS: [&str; 6] = ["species", "size", "lmax", "chunk", "dtype", "threads"];

/// The base synthetic system of a config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// `benzene` (disc-like, Å-like units) or `liquid` (prolate ellipsoids, reduced units).
    pub kind: String,
    /// Particles per frame.
    pub particles: usize,
    /// Species count, 1 to 4.
    #[serde(default = "one")]
    pub species: usize,
    /// Frames computed together.
    #[serde(default = "one")]
    pub frames: usize,
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
    /// Periodic cubic box (default true).
    #[serde(default = "yes")]
    pub periodic: bool,
    /// Number density; default: the kind's.
    pub density: Option<f64>,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// Values of each sweep dimension.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Sweeps run when `--sweep` is not given.
    #[serde(default)]
    pub default: Vec<String>,
    /// Species counts (at the base system's size).
    #[serde(default)]
    pub species: Vec<usize>,
    /// Particles per frame (at the base system's species count).
    #[serde(default)]
    pub size: Vec<usize>,
    /// `max_angular` values.
    #[serde(default)]
    pub lmax: Vec<u64>,
    /// Pairs per chunk of the batched path.
    #[serde(default)]
    pub chunk: Vec<usize>,
    /// Dtypes of the candle backends.
    #[serde(default)]
    pub dtype: Vec<String>,
    /// Thread counts (each point runs in a child process with `RAYON_NUM_THREADS` and
    /// `CANDLE_NUM_THREADS` set; counts above the logical CPUs run too, flagged).
    #[serde(default)]
    pub threads: Vec<usize>,
    /// Particles per frame of the systems the `threads` sweep runs (default: the base
    /// system only).
    #[serde(default)]
    pub threads_sizes: Vec<usize>,
}

/// A benchmark configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchConfig {
    /// Name used in run ids (`tiny`, `cpu`, `gpu`, ...).
    pub name: String,
    /// One line on what the config measures.
    #[serde(default)]
    pub description: String,
    /// Untimed calls before the timed ones.
    #[serde(default = "one")]
    pub warmup: usize,
    /// Timed calls.
    #[serde(default = "three")]
    pub repeats: usize,
    /// Timed calls per backend, overriding `repeats` (e.g. fewer for the slow `upstream`).
    #[serde(default)]
    pub backend_repeats: BTreeMap<String, usize>,
    /// Span-recorded calls of the production computation that give the stage breakdown
    /// (`bench::spans`), after the timed ones.
    #[serde(default = "one")]
    pub stage_repeats: usize,
    /// Backends: reference, candle-cpu, candle-cuda, candle-metal, upstream.
    pub backends: Vec<String>,
    /// Dtypes of the candle backends (default f64).
    #[serde(default = "default_dtypes")]
    pub dtypes: Vec<String>,
    /// Pairs per chunk of the batched path (default 65536).
    #[serde(default = "default_chunk")]
    pub chunk_pairs: usize,
    /// Largest pair count the `reference` / `upstream` backends are run on (0: no limit); larger
    /// systems are recorded as skipped with the reason.
    #[serde(default)]
    pub max_pairs: BTreeMap<String, usize>,
    /// Backends skipped on purpose, with the reason recorded in their metrics.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
    /// Largest pair count on which a candle backend's staged output is checked against the
    /// reference backend (which costs a reference run); default `bench::staged::CHECK_MAX_PAIRS`.
    #[serde(default = "default_check_max_pairs")]
    pub check_max_pairs: usize,
    /// Hyperparameters (the original's keyword names).
    pub hypers: Map<String, Value>,
    /// The base synthetic system.
    pub system: SystemConfig,
    /// Sweep values.
    #[serde(default)]
    pub sweep: SweepConfig,
}

fn three() -> usize {
    3
}

fn default_dtypes() -> Vec<String> {
    vec!["f64".into()]
}

fn default_chunk() -> usize {
    1 << 16
}

fn default_check_max_pairs() -> usize {
    crate::bench::staged::CHECK_MAX_PAIRS
}

/// Where a config came from, for the metrics.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed config.
    pub config: BenchConfig,
    /// File path, or `builtin:<preset>` for the copy compiled into the binary.
    pub source: String,
}

/// Reads `--config FILE`, or the `--preset` file (from `configs/` if present, else the copy
/// compiled into the binary).
pub fn load(preset: Option<&str>, file: Option<&Path>) -> Result<LoadedConfig> {
    let (text, source) = match (preset, file) {
        (_, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        (Some(name), None) => {
            let Some((_, path, builtin)) = PRESETS.iter().find(|(n, _, _)| *n == name) else {
                bail!("unknown preset '{name}'; expected tiny, cpu or gpu");
            };
            match std::fs::read_to_string(path) {
                Ok(text) => (text, path.to_string()),
                Err(_) => (builtin.to_string(), format!("builtin:{name}")),
            }
        }
        (None, None) => bail!("pass --preset tiny|cpu|gpu or --config FILE"),
    };
    let config: BenchConfig =
        toml::from_str(&text).with_context(|| format!("{source}: not a valid bench config"))?;
    for b in &config.backends {
        if !crate::bench::BACKENDS.contains(&b.as_str()) {
            bail!(
                "{source}: unknown backend '{b}'; expected one of {}",
                crate::bench::BACKENDS.join(", ")
            );
        }
    }
    for s in &config.sweep.default {
        check_sweep(s)?;
    }
    if config.repeats == 0 {
        bail!("{source}: repeats must be at least 1");
    }
    if let Some(bad) = config
        .sweep
        .threads
        .iter()
        .find(|&&t| t == 0 || t > MAX_THREADS)
    {
        bail!("{source}: sweep.threads value {bad} is not in 1..={MAX_THREADS}");
    }
    Ok(LoadedConfig { config, source })
}

/// Largest thread count the `threads` sweep accepts.
pub const MAX_THREADS: usize = 4096;

/// Fails on an unknown sweep name.
pub fn check_sweep(name: &str) -> Result<()> {
    if SWEEPS.contains(&name) {
        Ok(())
    } else {
        bail!(
            "unknown sweep '{name}'; expected one of {}",
            SWEEPS.join(", ")
        )
    }
}

/// Where a system's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Generated by `anisoap_candle::synthetic`.
    Synthetic(SyntheticSpec),
    /// A user XYZ file (`--data DIR` / `DATA_ROOT`).
    File(PathBuf),
}

/// A named system of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemDef {
    /// Name used in run ids and tables, e.g. `benzene_n128_s2_f1`.
    pub name: String,
    /// Kind (`benzene`, `liquid` or `file`).
    pub kind: String,
    /// Frames requested (synthetic systems).
    pub frames: usize,
    /// Where the frames come from.
    pub source: Source,
}

/// One point of the run matrix (backends and candle dtypes are looped by the harness).
#[derive(Debug, Clone)]
pub struct Setting {
    /// The system.
    pub system: SystemDef,
    /// Hyperparameters (with the sweep's `max_angular` applied).
    pub hypers: Map<String, Value>,
    /// Pairs per chunk (candle backends).
    pub chunk_pairs: usize,
    /// Candle dtypes to run.
    pub dtypes: Vec<String>,
    /// Sweeps this point belongs to (`base` when none).
    pub sweeps: Vec<String>,
    /// Threads of the `threads` sweep (the point runs in a child process); `None`: this
    /// process's pools.
    pub threads: Option<usize>,
}

impl Setting {
    /// `max_angular` of the hypers.
    pub fn lmax(&self) -> u64 {
        self.hypers
            .get("max_angular")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    fn key(&self) -> String {
        format!(
            "{}|{}|{}|{:?}",
            self.system.name,
            self.lmax(),
            self.chunk_pairs,
            self.threads
        )
    }
}

fn parse_kind(kind: &str) -> Result<SystemKind> {
    match kind {
        "benzene" => Ok(SystemKind::BenzeneLike),
        "liquid" => Ok(SystemKind::EllipsoidLiquid),
        other => bail!("unknown system kind '{other}'; expected benzene or liquid"),
    }
}

fn synthetic(base: &SystemConfig, particles: usize, species: usize) -> Result<SystemDef> {
    let kind = parse_kind(&base.kind)?;
    let spec = SyntheticSpec {
        kind,
        n_particles: particles,
        n_species: species,
        periodic: base.periodic,
        density: base.density.unwrap_or(kind.default_density()),
        seed: base.seed,
    };
    spec.validate()
        .map_err(|m| anyhow::anyhow!("system {}: {m}", base.kind))?;
    Ok(SystemDef {
        name: format!("{}_n{particles}_s{species}_f{}", base.kind, base.frames),
        kind: base.kind.clone(),
        frames: base.frames,
        source: Source::Synthetic(spec),
    })
}

/// Expands the config into settings: the base point plus every value of every selected sweep
/// (duplicates merged, remembering all sweeps a point belongs to). With `data` files, the
/// systems are those files and the `species`/`size` sweeps do not apply (a warning says so).
pub fn expand(config: &BenchConfig, sweeps: &[String], data: &[PathBuf]) -> Result<Vec<Setting>> {
    let base_systems: Vec<SystemDef> = if data.is_empty() {
        vec![synthetic(
            &config.system,
            config.system.particles,
            config.system.species,
        )?]
    } else {
        data.iter()
            .map(|path| SystemDef {
                name: path
                    .file_stem()
                    .map(|s| {
                        s.to_string_lossy()
                            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                    })
                    .unwrap_or_else(|| "data".into()),
                kind: "file".into(),
                frames: 0,
                source: Source::File(path.clone()),
            })
            .collect()
    };
    let base = |system: SystemDef| Setting {
        system,
        hypers: config.hypers.clone(),
        chunk_pairs: config.chunk_pairs,
        dtypes: config.dtypes.clone(),
        sweeps: Vec::new(),
        threads: None,
    };
    let mut out: Vec<Setting> = Vec::new();
    let mut push = |mut s: Setting, sweep: &str| {
        if let Some(existing) = out.iter_mut().find(|e| e.key() == s.key()) {
            if !existing.sweeps.iter().any(|x| x == sweep) {
                existing.sweeps.push(sweep.to_string());
            }
            for d in s.dtypes {
                if !existing.dtypes.contains(&d) {
                    existing.dtypes.push(d);
                }
            }
        } else {
            s.sweeps = vec![sweep.to_string()];
            out.push(s);
        }
    };
    if sweeps.is_empty() {
        for system in &base_systems {
            push(base(system.clone()), "base");
        }
    }
    for sweep in sweeps {
        check_sweep(sweep)?;
        let values_missing = || anyhow::anyhow!("sweep '{sweep}' has no values in [sweep]");
        match sweep.as_str() {
            "species" | "size" if !data.is_empty() => {
                eprintln!(
                    "warning: sweep '{sweep}' does not apply to --data files; running them as they are"
                );
                for system in &base_systems {
                    push(base(system.clone()), sweep);
                }
            }
            "species" => {
                if config.sweep.species.is_empty() {
                    return Err(values_missing());
                }
                for &s in &config.sweep.species {
                    push(
                        base(synthetic(&config.system, config.system.particles, s)?),
                        sweep,
                    );
                }
            }
            "size" => {
                if config.sweep.size.is_empty() {
                    return Err(values_missing());
                }
                for &n in &config.sweep.size {
                    push(
                        base(synthetic(&config.system, n, config.system.species)?),
                        sweep,
                    );
                }
            }
            "lmax" => {
                if config.sweep.lmax.is_empty() {
                    return Err(values_missing());
                }
                for system in &base_systems {
                    for &l in &config.sweep.lmax {
                        let mut s = base(system.clone());
                        s.hypers.insert("max_angular".into(), Value::from(l));
                        push(s, sweep);
                    }
                }
            }
            "chunk" => {
                if config.sweep.chunk.is_empty() {
                    return Err(values_missing());
                }
                for system in &base_systems {
                    for &c in &config.sweep.chunk {
                        let mut s = base(system.clone());
                        s.chunk_pairs = c;
                        push(s, sweep);
                    }
                }
            }
            "dtype" => {
                if config.sweep.dtype.is_empty() {
                    return Err(values_missing());
                }
                for system in &base_systems {
                    let mut s = base(system.clone());
                    s.dtypes = config.sweep.dtype.clone();
                    push(s, sweep);
                }
            }
            "threads" => {
                if config.sweep.threads.is_empty() {
                    return Err(values_missing());
                }
                let systems = if config.sweep.threads_sizes.is_empty() || !data.is_empty() {
                    base_systems.clone()
                } else {
                    config
                        .sweep
                        .threads_sizes
                        .iter()
                        .map(|&n| synthetic(&config.system, n, config.system.species))
                        .collect::<Result<Vec<_>>>()?
                };
                for system in &systems {
                    for &t in &config.sweep.threads {
                        let mut s = base(system.clone());
                        s.threads = Some(t);
                        push(s, sweep);
                    }
                }
            }
            _ => unreachable!("checked"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_with(extra: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let tiny = PRESETS[0].2;
        std::fs::write(&path, format!("{tiny}{extra}")).unwrap();
        (dir, path)
    }

    /// The threads sweep gives one point per (size, thread count), apart from the base point
    /// and from each other; zero threads is refused naming the key.
    #[test]
    fn threads_sweep_points_and_validation() {
        let (_dir, path) = tiny_with("threads = [1, 2, 4]\nthreads_sizes = [8, 12]\n");
        let cfg = load(None, Some(&path)).unwrap().config;
        let both = ["threads".to_string()];
        let points = expand(&cfg, &both, &[]).unwrap();
        let got: Vec<(usize, Option<usize>)> = points
            .iter()
            .map(|s| match &s.system.source {
                Source::Synthetic(spec) => (spec.n_particles, s.threads),
                Source::File(_) => unreachable!("synthetic"),
            })
            .collect();
        let want: Vec<(usize, Option<usize>)> = [8, 12]
            .iter()
            .flat_map(|&n| [1, 2, 4].map(|t| (n, Some(t))))
            .collect();
        assert_eq!(got, want);
        assert!(points.iter().all(|s| s.sweeps == ["threads"]));
        // Without the sweep the base point has no thread count.
        let base = expand(&cfg, &[], &[]).unwrap();
        assert_eq!(base.len(), 1);
        assert_eq!(base[0].threads, None);

        let (_dir, path) = tiny_with("threads = [2, 0]\n");
        let err = load(None, Some(&path)).unwrap_err().to_string();
        assert!(err.contains("sweep.threads value 0"), "{err}");
        let (_dir, path) = tiny_with("");
        let err = expand(&load(None, Some(&path)).unwrap().config, &both, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sweep 'threads' has no values"), "{err}");
    }
}
