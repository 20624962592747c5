//! Device time of the pair-coefficient stage alone on a GPU: the baked CUDA kernel
//! (`fused_cuda::baked`) against the table-driven kernel and the tensor ops, for lmax 4, 6, 8
//! in f64 and f32, and the baked kernel at several warps per block (`ANISOAP_CUDA_PARTS`,
//! lmax 6). Inputs are already on the device; each timing is the median of 5 synchronised
//! calls on `PAIRS` pairs (default 2^20, like one GPU chunk).
//!
//! `cargo run --release -p anisoap-candle --features cuda --example cuda_kernel_bench [PAIRS]`
//! prints CSV: `path,lmax,dtype,parts,pairs,ms,pairs_per_s`.

use anisoap_candle::basis::Basis;
use anisoap_candle::batched::BatchedBasis;
use anisoap_candle::{BatchedOptions, Hypers};
use candle_core::{DType, Device, Tensor};

fn uniform(seed: u64, lo: f64, hi: f64, shape: &[usize]) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("host tensor")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = match anisoap_candle::device::open_device("cuda:0") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return Ok(());
        }
    };
    let p: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1 << 20);
    // Benzene-like neighbours: precision of discs (semi-axes 1.75, 1.75, 0.6), cutoff 7.
    let precision = uniform(1, 0.05, 0.35, &[p, 6]).broadcast_mul(&Tensor::new(
        &[1.0f64, 0.2, 0.2, 1.0, 0.2, 8.0],
        &Device::Cpu,
    )?)?;
    let inv = uniform(2, 0.5, 0.6, &[p]);
    let r = uniform(3, -4.0, 4.0, &[p, 3]);
    println!("path,lmax,dtype,parts,pairs,ms,pairs_per_s");
    for lmax in [4, 6, 8] {
        let basis = Basis::new(&Hypers::gto(lmax, 7.0, 1.5))?;
        for dtype in [DType::F64, DType::F32] {
            let t = |x: &Tensor| x.to_dtype(dtype)?.to_device(&device);
            let (a, i, x) = (t(&precision)?, t(&inv)?, t(&r)?);
            // The baked kernel with its default and other warps per block (lmax 6), the
            // table-driven kernel, the tensor ops.
            let parts: &[Option<usize>] = if lmax == 6 {
                &[None, Some(1), Some(2), Some(8)]
            } else {
                &[None]
            };
            let mut runs: Vec<(&str, Option<usize>)> =
                parts.iter().map(|&t| ("baked", t)).collect();
            runs.push(("tables", None));
            runs.push(("tensor-op", None));
            for (path, parts) in runs {
                match parts {
                    Some(t) => std::env::set_var("ANISOAP_CUDA_PARTS", t.to_string()),
                    None => std::env::remove_var("ANISOAP_CUDA_PARTS"),
                }
                if path == "tables" {
                    std::env::set_var("ANISOAP_CUDA_KERNEL", "tables");
                } else {
                    std::env::remove_var("ANISOAP_CUDA_KERNEL");
                }
                let options = BatchedOptions {
                    device: device.clone(),
                    dtype,
                    chunk_pairs: p,
                    fused_cpu_moments: path != "tensor-op",
                    cuda_neighbor_search: true,
                };
                let batched = BatchedBasis::new(&basis, &options)?;
                if (path != "tensor-op") != batched.uses_cuda_kernels() {
                    return Err(format!("lmax {lmax} {dtype:?}: {path} path not in use").into());
                }
                let mut times = Vec::new();
                for rep in 0..6 {
                    device.synchronize()?;
                    let start = std::time::Instant::now();
                    let out = batched.pair_coefficients(&a, &i, &x)?;
                    device.synchronize()?;
                    let dt = start.elapsed().as_secs_f64();
                    drop(out);
                    if rep > 0 {
                        times.push(dt);
                    }
                }
                times.sort_by(|a, b| a.total_cmp(b));
                let median = times[times.len() / 2];
                let label = parts.map_or("default".to_string(), |t| t.to_string());
                println!(
                    "{path},{lmax},{},{label},{p},{:.3},{:.4e}",
                    if dtype == DType::F64 { "f64" } else { "f32" },
                    median * 1e3,
                    p as f64 / median
                );
            }
        }
    }
    std::env::remove_var("ANISOAP_CUDA_PARTS");
    std::env::remove_var("ANISOAP_CUDA_KERNEL");
    Ok(())
}
