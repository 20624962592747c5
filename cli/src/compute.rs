//! `compute` subcommand: extended XYZ in, AniSOAP features out.

use crate::output::{self, OutputTable};
use anisoap_candle::device::{check_dtype, device_name, open_device, parse_dtype};
use anisoap_candle::{xyz, Backend, BatchedOptions, Calculator, Frame, Hypers, Quantity};
use anyhow::{bail, Context, Result};
use candle_core::DType;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Hyperparameter flags shared by `compute` and `bench` (override the `--config` file).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HyperArgs {
    /// Hyperparameter file, TOML or JSON by extension, with the original AniSOAP's keyword
    /// names (max_angular, radial_basis_name, cutoff_radius, radial_gaussian_width,
    /// max_radial, subtract_center_contribution, rotation_key, rotation_type, basis_rcond,
    /// basis_tol). Flags below override its values.
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
    /// Where the batched path runs: cpu, cuda, cuda:N (GPU number) or metal.
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
    /// On the CPU, compute moments with degree-by-degree tensor ops instead of the fused
    /// kernel (same numbers, slower; for checking and profiling).
    #[arg(long)]
    pub tensor_op_moments: bool,
}

impl RunArgs {
    /// Builds the backend these flags describe.
    pub fn backend(&self) -> Result<Backend> {
        if self.reference {
            if self.device != "cpu" || self.dtype != "f64" {
                bail!("--reference runs on the CPU in f64 only; drop --device/--dtype");
            }
            return Ok(Backend::Reference);
        }
        let device = open_device(&self.device)?;
        let dtype = parse_dtype(&self.dtype)?;
        check_dtype(&device, dtype)?;
        let chunk_pairs =
            self.chunk_pairs
                .unwrap_or(if device.is_cpu() { 1 << 16 } else { 1 << 20 });
        if chunk_pairs == 0 {
            bail!("--chunk-pairs must be at least 1");
        }
        Ok(Backend::Batched(BatchedOptions {
            device,
            dtype,
            chunk_pairs,
            fused_cpu_moments: !self.tensor_op_moments,
        }))
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
    /// c_diameter[1..3]). Frames of all files are computed together, so feature columns are
    /// the same for all of them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub hypers: HyperArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output file; the format follows the extension: .npy, .npz, .safetensors or .csv.
    #[arg(long, short = 'o', default_value = "anisoap_features.npy")]
    pub output: PathBuf,
    /// Write one power-spectrum row per centre (npz/csv/safetensors add frame and centre
    /// index columns) instead of the per-frame mean.
    #[arg(long, conflicts_with = "density")]
    pub per_center: bool,
    /// Write the nu=1 density coefficients (one row per centre) instead of the power spectrum.
    #[arg(long)]
    pub density: bool,
    /// No progress bar or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Frames read from several files, remembering which file each came from.
pub struct Inputs {
    /// All frames, in file order.
    pub frames: Vec<Frame>,
    /// `(file, number of frames)` per file.
    pub sources: Vec<(PathBuf, usize)>,
}

impl Inputs {
    /// Rewrites a library error about global frame `k` to name the file and the frame in it.
    pub fn locate(&self, err: anisoap_candle::Error) -> anyhow::Error {
        if let anisoap_candle::Error::Frame { frame, message } = &err {
            let mut first = 0;
            for (file, n) in &self.sources {
                if *frame < first + n {
                    return anyhow::anyhow!(
                        "{}: frame {} (0-based, in that file): {message}",
                        file.display(),
                        frame - first
                    );
                }
                first += n;
            }
        }
        err.into()
    }
}

/// Reads all frames of all files.
pub fn read_inputs(files: &[PathBuf]) -> Result<Inputs> {
    let mut frames = Vec::new();
    let mut sources = Vec::new();
    for file in files {
        let read = xyz::read_xyz_file(file)?;
        sources.push((file.clone(), read.len()));
        frames.extend(read);
    }
    if frames.is_empty() {
        bail!(
            "no frames in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Inputs { frames, sources })
}

/// Runs the `compute` subcommand.
pub fn run(args: &ComputeArgs) -> Result<()> {
    // Check the output path before any work, so a typo costs nothing.
    output::OutputFormat::from_path(&args.output)?;
    let hypers = args.hypers.resolve()?;
    let backend = args.run.backend()?;
    let inputs = read_inputs(&args.files)?;
    let frames = &inputs.frames;
    let quantity = if args.density {
        Quantity::Density
    } else if args.per_center {
        Quantity::PowerSpectrumPerCenter
    } else {
        Quantity::PowerSpectrumMean
    };
    let as_f32 = matches!(&backend, Backend::Batched(o) if o.dtype == DType::F32);
    let name = RunArgs::backend_name(&backend);
    let calculator = Calculator::new(&hypers, backend)?;
    let bar = crate::progress::pair_bar(args.quiet);
    let start = std::time::Instant::now();
    let mut n_pairs = 0;
    let features = calculator
        .compute(frames, quantity, &mut |done, total| {
            n_pairs = total;
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| inputs.locate(e))?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let labels = match quantity {
        Quantity::Density => features.layout.density_labels(),
        _ => features.layout.power_spectrum_labels(),
    };
    let table_name = match quantity {
        Quantity::Density => "density",
        _ => "power_spectrum",
    };
    let mut table = OutputTable::new(
        table_name,
        features.values.rows,
        features.values.cols,
        features.values.data,
    );
    table.as_f32 = as_f32;
    table.column_names = Some(labels);
    table.index.push((
        "frame".into(),
        features.frame.iter().map(|&f| f as i64).collect(),
    ));
    if let Some(center) = &features.center {
        table
            .index
            .push(("center".into(), center.iter().map(|&c| c as i64).collect()));
    }
    output::write_table(&args.output, &table)?;
    if !args.quiet {
        eprintln!(
            "{}: {} frames, {} pairs, {} rows x {} features ({name}) in {:.3} s ({:.3e} pairs/s) -> {}",
            table_name,
            frames.len(),
            n_pairs,
            table.rows,
            table.cols,
            elapsed.as_secs_f64(),
            n_pairs as f64 / elapsed.as_secs_f64().max(1e-12),
            args.output.display()
        );
    }
    Ok(())
}
