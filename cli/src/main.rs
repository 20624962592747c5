//! `anisoap-candle`: AniSOAP descriptors of ellipsoidal particles from the command line.

mod aggregate;
mod bench;
mod compare;
mod compute;
mod generate;
mod merge;
mod output;
mod plot;
mod plot_fit;
mod progress;
mod sink;

use clap::{Parser, Subcommand};

/// AniSOAP descriptors (anisotropic SOAP for ellipsoidal, coarse-grained particles) on CPU,
/// CUDA or Metal through Candle.
#[derive(Parser)]
#[command(name = "anisoap-candle", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write a Chrome trace (open in chrome://tracing or ui.perfetto.dev) of every stage span
    /// (neighbour list, Gaussian parameters, moments, contraction, neighbour sum, power
    /// spectrum) to FILE. Logs on stderr follow ANISOAP_LOG (default: warn).
    #[arg(long, global = true, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Compute AniSOAP descriptors of extended XYZ files (per-frame mean power spectrum by
    /// default; --per-center, --density for other outputs).
    Compute(Box<compute::ComputeArgs>),
    /// Compare two .npy arrays (e.g. ours vs the original AniSOAP) with a column-scaled tolerance.
    Compare(compare::CompareArgs),
    /// Merge the shards of one run (`compute --shard K/N`) into one output, checking that they
    /// share hypers, columns, inputs and version and tile the frames with no gap or overlap.
    Merge(merge::MergeArgs),
    /// Write synthetic systems of ellipsoids (extended XYZ) for tests and benchmarks.
    Generate(generate::GenerateArgs),
    /// Benchmark systems x backends x settings from a config or preset; one metrics JSON per
    /// run under OUT/logs.
    Bench(Box<bench::BenchArgs>),
    /// Combine OUT/logs/*.metrics.json into OUT/tables/combined_from_metrics.csv.
    Aggregate(aggregate::AggregateArgs),
    /// Draw OUT/figures/*.png from OUT/tables/combined_from_metrics.csv.
    Plot(plot::PlotArgs),
}

/// A trace file that never panics: tracing-chrome's writer thread unwraps every write, so
/// failures (disk full, ...) are kept here and reported by `main` instead.
struct TraceFile {
    file: std::io::BufWriter<std::fs::File>,
    error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl std::io::Write for TraceFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.file.write_all(buf) {
            self.remember(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Err(e) = self.file.flush() {
            self.remember(e);
        }
        Ok(())
    }
}

impl TraceFile {
    fn remember(&self, e: std::io::Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }
}

/// What `--trace` leaves for `main`: the flush guard and the first write error, if any.
struct Trace {
    guard: tracing_chrome::FlushGuard,
    error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
    path: std::path::PathBuf,
}

/// Logs on stderr (filtered by `ANISOAP_LOG`), with `--trace` a Chrome trace of all spans of
/// the library and the CLI, and with `stage_spans` the bench's span recorder
/// (`bench::spans`). Fails (instead of panicking) when the trace file cannot be created.
fn init_tracing(
    trace: Option<&std::path::Path>,
    stage_spans: bool,
) -> anyhow::Result<Option<Trace>> {
    use anyhow::Context;
    use tracing_subscriber::prelude::*;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANISOAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let (chrome, trace) = match trace {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("--trace {}: cannot create the file", path.display()))?;
            let error = std::sync::Arc::new(std::sync::Mutex::new(None));
            let writer = TraceFile {
                file: std::io::BufWriter::new(file),
                error: error.clone(),
            };
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .writer(writer)
                .include_args(true)
                .build();
            let spans = tracing_subscriber::filter::Targets::new()
                .with_target("anisoap_candle", tracing::Level::TRACE);
            (
                Some(layer.with_filter(spans)),
                Some(Trace {
                    guard,
                    error,
                    path: path.to_path_buf(),
                }),
            )
        }
        None => (None, None),
    };
    let recorder = stage_spans.then(|| bench::spans::global().layer());
    tracing_subscriber::registry()
        .with(logs)
        .with(chrome)
        .with(recorder)
        .init();
    Ok(trace)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let bench = matches!(cli.command, Command::Bench(_));
    let trace = match init_tracing(cli.trace.as_deref(), bench) {
        Ok(trace) => trace,
        Err(err) => {
            eprintln!("error: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut result = match cli.command {
        Command::Compute(args) => compute::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Aggregate(args) => aggregate::run(&args),
        Command::Plot(args) => plot::run(&args),
    };
    if let Some(trace) = trace {
        drop(trace.guard); // writes the closing bracket and flushes
        let failed = trace.error.lock().ok().and_then(|mut e| e.take());
        if let (Some(e), Ok(())) = (failed, &result) {
            result = Err(anyhow::anyhow!(
                "--trace {}: writing the trace failed: {e}",
                trace.path.display()
            ));
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
