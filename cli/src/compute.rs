//! `compute` subcommand: extended XYZ in, AniSOAP features out.

use crate::{output, sink};
use anisoap_candle::device::{check_dtype, device_name, open_devices, parse_dtype};
use anisoap_candle::pipeline::{self, Columns};
use anisoap_candle::stream::FrameOrigin;
use anisoap_candle::{Backend, BatchedOptions, Calculator, Frame, Hypers, PerParticle, Quantity};
use anyhow::{bail, Context, Result};
use candle_core::DType;
use serde_json::{Map, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Hyperparameter flags shared by `compute` and `bench` (override the `--config` file).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HyperArgs {
    /// Hyperparameter file, TOML or JSON by extension, with the original AniSOAP's keyword
    /// names (max_angular, radial_basis_name, cutoff_radius, radial_gaussian_width,
    /// max_radial, subtract_center_contribution, rotation_key, rotation_type, basis_rcond,
    /// basis_tol) plus this project's cutoff_function. Flags below override its values.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Highest angular channel l (max_angular).
    #[arg(long)]
    pub max_angular: Option<u64>,
    /// Radial basis: gto or monomial (radial_basis_name). Default gto.
    #[arg(long)]
    pub radial_basis: Option<String>,
    /// Cutoff radius in the units of the positions (cutoff_radius).
    #[arg(long)]
    pub cutoff: Option<f64>,
    /// Width σ of the GTO radial Gaussian (radial_gaussian_width); GTO only.
    #[arg(long)]
    pub width: Option<f64>,
    /// Radial functions per channel minus one: an integer k, or a comma list k0,k1,... (one
    /// per l). Default: (max_angular - l)/2.
    #[arg(long)]
    pub max_radial: Option<String>,
    /// Leave each centre's own Gaussian out of its density.
    #[arg(long)]
    pub subtract_center_contribution: bool,
    /// Name of the per-particle orientation column (rotation_key). Default c_q.
    #[arg(long)]
    pub rotation_key: Option<String>,
    /// Orientation format: quaternion (w,x,y,z) or matrix (3x3 row-major).
    #[arg(long)]
    pub rotation_type: Option<String>,
    /// Eigenvalue cut in the radial orthonormalisation (basis_rcond). Default 0.
    #[arg(long)]
    pub basis_rcond: Option<f64>,
    /// Tolerance of the orthonormalisation check (basis_tol). Default 1e-8.
    #[arg(long)]
    pub basis_tol: Option<f64>,
    /// Weight of each neighbour pair by its distance r (cutoff_function): `step` (the
    /// original's, default: every pair inside the cutoff counts fully) or
    /// `shifted_cosine:WIDTH`, an opt-in smooth cutoff that departs from the original:
    /// f(r) = 1 up to cutoff - WIDTH, ½(1 + cos(π (r - cutoff + WIDTH) / WIDTH)) up to the
    /// cutoff, so features and forces are continuous when a neighbour crosses it. 0 < WIDTH <=
    /// cutoff. In a config file: cutoff_function = { shifted_cosine = { width = 0.5 } }.
    #[arg(long, value_name = "step|shifted_cosine:WIDTH")]
    pub cutoff_function: Option<String>,
}

impl HyperArgs {
    /// Reads the config file (if any), applies the flags, validates.
    pub fn resolve(&self) -> Result<Hypers> {
        let mut map = match &self.config {
            Some(path) => read_config(path)?,
            None => Map::new(),
        };
        let mut set = |key: &str, value: Value| {
            map.insert(key.to_string(), value);
        };
        if let Some(v) = self.max_angular {
            set("max_angular", v.into());
        }
        if let Some(v) = &self.radial_basis {
            set("radial_basis_name", v.clone().into());
        }
        if let Some(v) = self.cutoff {
            set("cutoff_radius", float(v)?);
        }
        if let Some(v) = self.width {
            set("radial_gaussian_width", float(v)?);
        }
        if let Some(v) = &self.max_radial {
            let items: Vec<&str> = v.split(',').map(str::trim).collect();
            let parsed = items
                .iter()
                .map(|s| s.parse::<u64>().map(Value::from))
                .collect::<std::result::Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("--max-radial '{v}': expected an integer or a comma list of integers")
                })?;
            if parsed.len() == 1 && !v.contains(',') {
                set("max_radial", parsed[0].clone());
            } else {
                set("max_radial", Value::Array(parsed));
            }
        }
        if self.subtract_center_contribution {
            set("subtract_center_contribution", true.into());
        }
        if let Some(v) = &self.rotation_key {
            set("rotation_key", v.clone().into());
        }
        if let Some(v) = &self.rotation_type {
            set("rotation_type", v.clone().into());
        }
        if let Some(v) = self.basis_rcond {
            set("basis_rcond", float(v)?);
        }
        if let Some(v) = self.basis_tol {
            set("basis_tol", float(v)?);
        }
        if let Some(v) = &self.cutoff_function {
            set("cutoff_function", cutoff_function_flag(v)?);
        }
        if !map.contains_key("max_angular") && !map.contains_key("cutoff_radius") {
            bail!(
                "no hyperparameters given: pass --config hypers.toml or at least --max-angular, \
                 --cutoff and (for GTO) --width; see configs/example.toml"
            );
        }
        let source = self
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "command-line flags".into());
        Hypers::from_value(&Value::Object(map)).with_context(|| format!("in {source}"))
    }
}

/// `--cutoff-function`: `step` or `shifted_cosine:WIDTH` as the hypers' `cutoff_function` value
/// (names and ranges are checked by `Hypers::from_value`).
fn cutoff_function_flag(v: &str) -> Result<Value> {
    match v.split_once(':') {
        None => Ok(Value::String(v.trim().to_string())),
        Some((name, width)) => {
            let width: f64 = width.trim().parse().with_context(|| {
                format!(
                    "--cutoff-function '{v}': expected NAME:WIDTH with a number, e.g. \
                     shifted_cosine:0.5"
                )
            })?;
            Ok(serde_json::json!({ name.trim(): { "width": float(width)? } }))
        }
    }
}

fn float(v: f64) -> Result<Value> {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .with_context(|| format!("{v} is not a finite number"))
}

/// Reads a TOML or JSON hypers file into a JSON object, keeping int/float distinctions.
fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value: Value = if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?
    } else {
        let t: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        serde_json::to_value(t)?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => bail!("{}: expected a table of hyperparameters", path.display()),
    }
}

/// Device, dtype and backend flags shared by `compute` and `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Where the batched path runs: cpu, cuda, cuda:N (GPU number), metal, or a list spread
    /// over several devices, one host thread each: cuda:0,1,2,3 or cuda:all (cpu,cpu runs two
    /// CPU workers, to check the multi-device path without GPUs).
    #[arg(long, short = 'd', default_value = "cpu")]
    pub device: String,
    /// Floating-point precision: f64 (matches the original to ~1e-12) or f32 (faster on GPUs,
    /// ~1e-4 relative; not available on every feature set).
    #[arg(long, default_value = "f64")]
    pub dtype: String,
    /// Use the plain float64 reference implementation instead of Candle (slow; the oracle).
    #[arg(long)]
    pub reference: bool,
    /// Pairs per chunk of the batched path; bounds peak memory (~ chunk × monomials × 8 bytes
    /// on GPUs). Default: 65536 on the CPU, 1048576 on GPUs (fewer, larger kernel launches).
    #[arg(long)]
    pub chunk_pairs: Option<usize>,
    /// Compute moments with degree-by-degree tensor ops instead of the fused kernels (the
    /// CPU kernel, or the CUDA kernels of a `cuda` build): same numbers to rounding, slower;
    /// for checking and profiling.
    #[arg(long)]
    pub tensor_op_moments: bool,
    /// On CUDA, count and find each chunk's pairs with the host's neighbour search and copy
    /// them to the device, instead of doing both on the device (the same pairs bit for bit;
    /// slower; for checking and benchmarks).
    #[arg(long)]
    pub host_neighbor_search: bool,
}

impl RunArgs {
    /// The batched options of every device in `--device` (one for a single device).
    fn device_options(&self) -> Result<Vec<BatchedOptions>> {
        let dtype = parse_dtype(&self.dtype)?;
        let devices = open_devices(&self.device)?;
        devices
            .into_iter()
            .map(|device| {
                check_dtype(&device, dtype)?;
                let chunk_pairs =
                    self.chunk_pairs
                        .unwrap_or(if device.is_cpu() { 1 << 16 } else { 1 << 20 });
                if chunk_pairs == 0 {
                    bail!("--chunk-pairs must be at least 1");
                }
                Ok(BatchedOptions {
                    device,
                    dtype,
                    chunk_pairs,
                    fused_cpu_moments: !self.tensor_op_moments,
                    cuda_neighbor_search: !self.host_neighbor_search,
                })
            })
            .collect()
    }

    /// Builds the backend these flags describe (one device; see [`RunArgs::calculator`] for
    /// device lists).
    pub fn backend(&self) -> Result<Backend> {
        if self.reference {
            if self.device != "cpu" || self.dtype != "f64" {
                bail!("--reference runs on the CPU in f64 only; drop --device/--dtype");
            }
            return Ok(Backend::Reference);
        }
        let mut options = self.device_options()?;
        if options.len() != 1 {
            bail!("this command takes one device, got '{}'", self.device);
        }
        Ok(Backend::Batched(options.remove(0)))
    }

    /// The calculator these flags describe, on one device or spread over a device list.
    pub fn calculator(&self, hypers: &Hypers) -> Result<Calculator> {
        if self.reference {
            return Ok(Calculator::new(hypers, self.backend()?)?);
        }
        let options = self.device_options()?;
        Ok(if options.len() == 1 {
            Calculator::new(hypers, Backend::Batched(options[0].clone()))?
        } else {
            Calculator::on_devices(hypers, &options)?
        })
    }

    /// `reference`, `candle-cpu`, `candle-cuda`, `candle-metal`.
    pub fn backend_name(backend: &Backend) -> String {
        match backend {
            Backend::Reference => "reference".into(),
            Backend::Batched(o) => {
                let name = device_name(&o.device);
                format!("candle-{}", name.split(':').next().unwrap_or("cpu"))
            }
        }
    }
}

/// Arguments of `anisoap-candle compute`.
#[derive(clap::Args, Debug)]
pub struct ComputeArgs {
    /// Extended XYZ files (ASE conventions: Properties with species, pos, c_q and
    /// c_diameter[1..3]). Frames of all files form one trajectory (global frame index in file
    /// order); they are read in batches, so inputs of any length run in bounded memory.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub hypers: HyperArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output file; the format follows the extension: .npy, .npz, .safetensors or .csv. Rows
    /// are written as they are computed; metadata (hypers, columns, frame range, input
    /// checksums, version) goes into the file (npz/safetensors) or OUTPUT.json (npy/csv).
    #[arg(long, short = 'o', default_value = "anisoap_features.npy")]
    pub output: PathBuf,
    /// Write one power-spectrum row per centre (npz/csv/safetensors add frame and centre
    /// index columns) instead of the per-frame mean.
    #[arg(long, conflicts_with = "density")]
    pub per_center: bool,
    /// Write the nu=1 density coefficients (one row per centre) instead of the power spectrum.
    #[arg(long)]
    pub density: bool,
    /// Fix the feature columns by a species list (atomic numbers, e.g. 1,6,8, or `auto` for
    /// every type found in the inputs): every type gets a centre block with every type as a
    /// neighbour column, whatever frames a run sees (what shards of one run need). Default:
    /// the original's columns, which depend on the types and pair types of the frames
    /// computed together.
    #[arg(long, value_name = "TYPES|auto")]
    pub species: Option<String>,
    /// Compute only frames START:STOP (global 0-based indices over all inputs, STOP
    /// exclusive; either may be omitted).
    #[arg(long, value_name = "START:STOP", conflicts_with = "shard")]
    pub frames: Option<String>,
    /// Compute shard K of N (0-based): the K-th of N contiguous, near-equal frame ranges.
    /// Merge the shards with `anisoap-candle merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Semi-axes a,b,c given to every particle of a frame without c_diameter[1..3] columns
    /// (as the original's notebooks set them in Python); a frame that has the columns is an
    /// error, never silently overridden.
    #[arg(long, value_name = "A,B,C")]
    pub semi_axes: Option<String>,
    /// Frames are read in batches of about this many particles, which bounds host memory (a
    /// larger frame is a batch of its own). Default: 1024 on the CPU, 65536 on GPUs (enough
    /// pairs to fill their larger chunks).
    #[arg(long)]
    pub batch_particles: Option<usize>,
    /// No progress bar or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Parses `a,b,c` (positive, finite).
fn parse_semi_axes(text: &str) -> Result<[f64; 3]> {
    let values: Vec<f64> = text
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--semi-axes '{text}': expected three numbers a,b,c"))?;
    match values.as_slice() {
        [a, b, c] if values.iter().all(|v| v.is_finite() && *v > 0.0) => Ok([*a, *b, *c]),
        _ => bail!("--semi-axes '{text}': expected three positive finite numbers a,b,c"),
    }
}

/// Parses `START:STOP` against `total` frames.
fn parse_frame_range(text: &str, total: usize) -> Result<Range<usize>> {
    let (a, b) = text
        .split_once(':')
        .with_context(|| format!("--frames '{text}': expected START:STOP"))?;
    let bound = |s: &str, default: usize| -> Result<usize> {
        if s.trim().is_empty() {
            return Ok(default);
        }
        s.trim()
            .parse()
            .with_context(|| format!("--frames '{text}': '{s}' is not a frame index"))
    };
    let (start, stop) = (bound(a, 0)?, bound(b, total)?);
    if start >= stop || stop > total {
        bail!("--frames '{text}': the inputs have {total} frames; need START < STOP <= {total}");
    }
    Ok(start..stop)
}

/// Parses `K/N`.
fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if k < n => Ok((k, n)),
        _ => bail!("--shard '{text}': expected K/N with 0 <= K < N"),
    }
}

/// Parses `--species`: `auto` or a comma list of atomic numbers.
fn parse_species(text: &str) -> Result<Option<Vec<i32>>> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let mut types: Vec<i32> = text
        .split(',')
        .map(|s| s.trim().parse::<i32>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| {
            format!("--species '{text}': expected atomic numbers like 1,6,8 or auto")
        })?;
    types.sort_unstable();
    types.dedup();
    Ok(Some(types))
}

/// Gives every particle of `frame` the semi-axes `axes` (as `c_diameter[k] = 2 a_k`); refuses
/// frames that already have diameter columns.
fn apply_semi_axes(
    frame: &mut Frame,
    axes: [f64; 3],
    origin: &FrameOrigin,
) -> anisoap_candle::Result<()> {
    if let Some(name) = (1..=3)
        .map(|k| format!("c_diameter[{k}]"))
        .find(|name| frame.arrays.contains_key(name))
    {
        return Err(anisoap_candle::Error::Frame {
            frame: origin.index,
            message: format!(
                "--semi-axes was given but {} frame {} has a '{name}' column; drop the flag \
                 or the columns (the file's values are never silently overridden)",
                origin.file.display(),
                origin.index
            ),
        });
    }
    for (k, a) in axes.iter().enumerate() {
        frame.arrays.insert(
            format!("c_diameter[{}]", k + 1),
            PerParticle {
                ncols: 1,
                values: vec![2.0 * a; frame.len()],
            },
        );
    }
    Ok(())
}

/// The name of a quantity in outputs and metadata.
fn quantity_name(quantity: Quantity) -> &'static str {
    match quantity {
        Quantity::PowerSpectrumMean => "power_spectrum_mean",
        Quantity::PowerSpectrumPerCenter => "power_spectrum_per_center",
        Quantity::Density => "density",
    }
}

/// Runs the `compute` subcommand.
pub fn run(args: &ComputeArgs) -> Result<()> {
    // Check the output path before any work, so a typo costs nothing.
    let format = output::OutputFormat::from_path(&args.output)?;
    let hypers = args.hypers.resolve()?;
    let semi_axes = args.semi_axes.as_deref().map(parse_semi_axes).transpose()?;
    // The calculator (basis constants; on a GPU, loading or compiling the kernels) is built
    // while the inputs are scanned; its error, if any, is reported first.
    let (calculator, inputs) = std::thread::scope(|scope| {
        let calculator = scope.spawn(|| args.run.calculator(&hypers));
        let inputs = pipeline::scan_inputs(&args.files);
        (calculator.join(), inputs)
    });
    let calculator =
        calculator.map_err(|_| anyhow::anyhow!("building the calculator panicked"))??;
    let inputs = inputs?;
    let quantity = if args.density {
        Quantity::Density
    } else if args.per_center {
        Quantity::PowerSpectrumPerCenter
    } else {
        Quantity::PowerSpectrumMean
    };
    let total: usize = inputs.iter().map(|i| i.frames).sum();
    let all_types: std::collections::BTreeSet<i32> = inputs
        .iter()
        .flat_map(|i| i.types.iter().copied())
        .collect();
    if total == 0 {
        bail!(
            "no frames in {}",
            args.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let (frames, shard) = match (&args.frames, &args.shard) {
        (Some(text), _) => (parse_frame_range(text, total)?, None),
        (None, Some(text)) => {
            let (k, n) = parse_shard(text)?;
            let range = pipeline::shard_range(k, n, total)?;
            if range.is_empty() {
                bail!(
                    "--shard {k}/{n} selects no frames: the inputs have {total} frames; use at \
                     most {total} shards"
                );
            }
            (range, Some((k, n)))
        }
        (None, None) => (0..total, None),
    };
    let (columns, columns_mode) = match args.species.as_deref().map(parse_species).transpose()? {
        None => (Columns::Original, "original"),
        Some(Some(types)) => (Columns::Species(types), "species"),
        // `auto` reads the species of all inputs, not only the selected frames, so that every
        // shard of a run gets the same columns.
        Some(None) => (
            Columns::Species(all_types.iter().copied().collect()),
            "species",
        ),
    };
    let as_f32 = matches!(calculator.backend(), Backend::Batched(o) if o.dtype == DType::F32);
    let name = if args.run.reference {
        "reference".to_string()
    } else {
        let workers = calculator.worker_names();
        if workers.len() == 1 {
            RunArgs::backend_name(calculator.backend())
        } else {
            format!("{} workers: {}", workers.len(), workers.join(", "))
        }
    };
    let table_name = match quantity {
        Quantity::Density => "density",
        _ => "power_spectrum",
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("format".into(), sink::METADATA_FORMAT.into());
    metadata.insert("format_version".into(), 1.into());
    metadata.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert("name".into(), table_name.into());
    metadata.insert("quantity".into(), quantity_name(quantity).into());
    metadata.insert("dtype".into(), if as_f32 { "f32" } else { "f64" }.into());
    metadata.insert("hypers".into(), hypers.to_value());
    metadata.insert(
        "frames".into(),
        serde_json::json!({"start": frames.start, "stop": frames.end, "total": total}),
    );
    metadata.insert(
        "shard".into(),
        match shard {
            Some((k, n)) => serde_json::json!({"index": k, "count": n}),
            None => Value::Null,
        },
    );
    metadata.insert(
        "inputs".into(),
        Value::Array(
            inputs
                .iter()
                .map(|i| {
                    serde_json::json!({"path": i.path.display().to_string(), "frames": i.frames,
                                       "bytes": i.bytes, "xxh3_128": i.xxh3_128})
                })
                .collect(),
        ),
    );
    let spec = sink::OutputSpec {
        path: args.output.clone(),
        format,
        name: table_name.into(),
        as_f32,
        per_center: quantity != Quantity::PowerSpectrumMean,
    };
    let mut out = sink::StreamingOutput::new(spec, metadata)?;
    let prepare = |frame: &mut Frame, origin: &FrameOrigin| -> anisoap_candle::Result<()> {
        match semi_axes {
            Some(axes) => apply_semi_axes(frame, axes, origin),
            None => Ok(()),
        }
    };
    let options = pipeline::RunOptions {
        files: &args.files,
        frames: frames.clone(),
        quantity,
        columns,
        limits: pipeline::BatchLimits {
            max_particles: args
                .batch_particles
                .unwrap_or(match calculator.backend() {
                    Backend::Batched(o) if !o.device.is_cpu() => 1 << 16,
                    _ => 1024,
                })
                .max(1),
        },
        prepare: &prepare,
        // The scan saw every type of every file; only a selection of all frames can use it.
        known_types: (frames == (0..total)).then_some(&all_types),
    };
    let bar = crate::progress::frame_bar(args.quiet);
    bar.set_length(frames.len() as u64);
    let start = std::time::Instant::now();
    let summary = pipeline::run(&calculator, &options, &mut out, &mut |done, _pairs| {
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    out.metadata.insert(
        "columns".into(),
        sink::columns_metadata(&summary.layout, columns_mode),
    );
    let rows = out.rows();
    out.finish()?;
    if !args.quiet {
        eprintln!(
            "{}: {} frames, {} pairs, {} rows x {} features ({name}) in {:.3} s ({:.3e} pairs/s) -> {}",
            table_name,
            summary.frames,
            summary.pairs,
            rows,
            summary.width,
            elapsed.as_secs_f64(),
            summary.pairs as f64 / elapsed.as_secs_f64().max(1e-12),
            args.output.display()
        );
    }
    Ok(())
}
