//! `anisoap-candle`: AniSOAP descriptors of ellipsoidal particles from the command line.

mod generate;
mod output;

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
    /// Write synthetic systems of ellipsoids (extended XYZ) for tests and benchmarks.
    Generate(generate::GenerateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
