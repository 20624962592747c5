//! The machine's dense matrix-multiply rate through Candle, the practical compute peak the
//! roofline note (`results/roofline.md`) compares the pair kernels with: square `N × N`
//! matmuls (default 2048) in f64 and f32, one warm-up, then the best and the median of `REPS`
//! synchronised calls (default 5), as GFLOP/s (2 N³ FLOPs per call).
//!
//! `cargo run --release -p anisoap-candle --example peak_flops -- [--device cpu|cuda:0]
//! [--size N] [--reps R]` (the GPU needs `--features cuda`) prints CSV:
//! `device,dtype,n,reps,best_s,median_s,best_gflops,median_gflops,threads`.

use candle_core::{DType, Device, Tensor};
use std::time::Instant;

fn value<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a value of the right type")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec: String = value(&args, "--device", "cpu".to_string())?;
    let n: usize = value(&args, "--size", 2048)?;
    let reps: usize = value(&args, "--reps", 5)?;
    if n == 0 || reps == 0 {
        return Err("--size and --reps must be at least 1".into());
    }
    let device = anisoap_candle::device::open_device(&spec)?;
    let threads = match device {
        Device::Cpu => rayon::current_num_threads().to_string(),
        _ => String::new(),
    };
    let flops = 2.0 * (n as f64).powi(3);
    println!("device,dtype,n,reps,best_s,median_s,best_gflops,median_gflops,threads");
    for dtype in [DType::F64, DType::F32] {
        let a = Tensor::randn(0f32, 1f32, (n, n), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(&device)?;
        let b = Tensor::randn(0f32, 1f32, (n, n), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(&device)?;
        let warm = a.matmul(&b)?;
        device.synchronize()?;
        // Checked on the host once: every entry is a sum of n products of N(0,1) values, so
        // finite; a NaN here means the matmul did not run.
        let check: f64 = warm.sum_all()?.to_dtype(DType::F64)?.to_scalar()?;
        if !check.is_finite() {
            return Err(format!("{dtype:?} matmul gave a non-finite sum").into());
        }
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            let c = a.matmul(&b)?;
            device.synchronize()?;
            times.push(start.elapsed().as_secs_f64());
            drop(c);
        }
        times.sort_by(f64::total_cmp);
        let (best, median) = (times[0], times[times.len() / 2]);
        println!(
            "{spec},{},{n},{reps},{best:.6},{median:.6},{:.1},{:.1},{threads}",
            dtype.as_str(),
            flops / best / 1e9,
            flops / median / 1e9,
        );
    }
    Ok(())
}
