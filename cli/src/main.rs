//! `anisoap-candle`: AniSOAP descriptors of ellipsoidal particles from the command line.

mod aggregate;
mod bench;
mod compare;
mod compute;
mod generate;
mod output;
mod plot;
mod progress;

use clap::{Parser, Subcommand};

/// AniSOAP descriptors (anisotropic SOAP for ellipsoidal, coarse-grained particles) on CPU,
/// CUDA or Metal through Candle.
#[derive(Parser)]
#[command(name = "anisoap-candle", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANISOAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
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
