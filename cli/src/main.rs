//! `anisoap-candle`: AniSOAP descriptors of ellipsoidal particles from the command line.

mod aggregate;
mod bench;
mod compare;
mod compute;
mod generate;
mod output;
mod plot;
mod plot_fit;
mod progress;

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

/// Logs on stderr (filtered by `ANISOAP_LOG`) and, with `--trace`, a Chrome trace of all
/// spans of the library and the CLI. The returned guard flushes the trace when dropped.
fn init_tracing(trace: Option<&std::path::Path>) -> Option<tracing_chrome::FlushGuard> {
    use tracing_subscriber::prelude::*;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANISOAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let (chrome, guard) = match trace {
        Some(path) => {
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .file(path)
                .include_args(true)
                .build();
            let spans = tracing_subscriber::filter::Targets::new()
                .with_target("anisoap_candle", tracing::Level::TRACE);
            (Some(layer.with_filter(spans)), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(chrome)
        .init();
    guard
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _trace_guard = init_tracing(cli.trace.as_deref());
    let result = match cli.command {
        Command::Compute(args) => compute::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Aggregate(args) => aggregate::run(&args),
        Command::Plot(args) => plot::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
