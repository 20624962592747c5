//! Cost of forces: the differentiable descriptor's forward pass against forward + backward
//! (positions and quaternions), for about 1000 ellipsoids (or `FORCES_COST_PARTICLES`), on the
//! CPU or a GPU.
//!
//! On the CPU both paths run in the same process, one after the other per `lmax`: `fused` (the fused pair kernel with its
//! analytic backward, the default) and `tensor_ops` (Candle tensor ops and their autograd, the
//! oracle; the only path before). On CUDA `fused` is the CUDA moments-and-contraction op with its
//! analytic backward (Gaussian parameters and power spectrum as tensor ops); on other devices
//! only the tensor ops exist. `FORCES_COST_PARTICLES` (default 1000) sets the system size
//! (the file name gets `_<N>particles` when it is not 1000).
//! `FORCES_COST_PATH=fused` (or `tensor_ops`) runs one of them only. With `RAYON_NUM_THREADS`
//! below the number of cores the file is `forces_cost_<device>_<N>thread.json`.
//!
//! ```text
//! cargo run --release -p anisoap-candle --example forces_cost [cpu|cuda]
//! ```
//!
//! Writes `results/gradients/forces_cost_<device>.json` (or into `$FORCES_COST_DIR`). Timings are medians of 9 repetitions,
//! after one warm-up; the host neighbour list is timed separately.

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::synthetic::{generate_frame, SyntheticSpec, SystemKind};
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;

/// Timed repetitions of each measurement.
const REPEATS: usize = 9;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let device_name = std::env::args().nth(1).unwrap_or_else(|| "cpu".into());
    let device: Device = anisoap_candle::device::open_device(&device_name)?;
    let n_particles: usize = std::env::var("FORCES_COST_PARTICLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let spec = SyntheticSpec {
        kind: SystemKind::EllipsoidLiquid,
        n_particles,
        n_species: 1,
        periodic: true,
        density: 0.3,
        seed: 7,
    };
    let frame = generate_frame(&spec, 0);
    let inputs = FrameTensors::from_frame(&frame, "c_q", &device, DType::F64)?;
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = loadavg();
    let mut rows = Vec::new();
    let only = std::env::var("FORCES_COST_PATH").ok();
    let paths: Vec<(&str, bool)> = [("tensor_ops", false), ("fused", true)]
        .into_iter()
        .filter(|&(_, fused)| device.is_cpu() || device.is_cuda() || !fused)
        .filter(|&(name, _)| only.as_deref().is_none_or(|o| o == name))
        .collect();
    for max_angular in [4, 6] {
        for &(path, fused) in &paths {
            let hypers = Hypers::gto(max_angular, 4.0, 1.0);
            let descriptor = DifferentiableDescriptor::new(&hypers, &device, DType::F64)?
                .with_fused_kernel(fused);
            let positions = Var::from_tensor(&inputs.positions)?;
            let quaternions = Var::from_tensor(&inputs.quaternions)?;
            let species = SpeciesLayout::Fixed(vec![1]);
            let t = Instant::now();
            let neighbors = descriptor.neighbors(
                &positions,
                &inputs.types,
                &inputs.cell,
                inputs.pbc,
                &species,
            )?;
            let neighbor_seconds = t.elapsed().as_secs_f64();
            let forward = || -> Res<Tensor> {
                Ok(descriptor.power_spectrum(
                    &positions,
                    &quaternions,
                    &inputs.semi_axes,
                    &neighbors,
                )?)
            };
            let n_features = forward()?.dim(1)?;
            let weights = Tensor::ones((n_features, 1), DType::F64, &device)?;
            let (mut fwd, mut both) = (Vec::new(), Vec::new());
            forward()?.sum_all()?.to_scalar::<f64>()?; // warm-up
            for _ in 0..REPEATS {
                let t = Instant::now();
                let x = forward()?;
                x.sum_all()?.to_scalar::<f64>()?;
                fwd.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let energy = forward()?.matmul(&weights)?.sum_all()?;
                let grads = energy.backward()?;
                let forces = grads.get(&positions).ok_or("no gradient")?.neg()?;
                forces.sum_all()?.to_scalar::<f64>()?;
                both.push(t.elapsed().as_secs_f64());
            }
            let (fwd, both) = (median(fwd), median(both));
            println!(
            "{path} lmax {max_angular}: {} pairs, {n_features} features; neighbour list {neighbor_seconds:.3} s, \
             forward {fwd:.3} s, forward + backward {both:.3} s (ratio {:.2})",
            neighbors.len(),
            both / fwd
        );
            rows.push(serde_json::json!({
                "path": path,
                "max_angular": max_angular,
                "pairs": neighbors.len(),
                "features": n_features,
                "neighbor_list_seconds": neighbor_seconds,
                "forward_seconds": fwd,
                "forward_backward_seconds": both,
                "ratio": both / fwd,
                "forward_backward_pairs_per_s": neighbors.len() as f64 / both,
            }));
        }
    }
    let report = serde_json::json!({
        "device": device_name,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "threads": rayon::current_num_threads(),
        "loadavg_before_after": [load_before.trim(), loadavg().trim()],
        "system": {"kind": "EllipsoidLiquid", "particles": n_particles, "density": 0.3,
            "periodic": true, "seed": 7},
        "hypers": {"basis": "gto", "cutoff_radius": 4.0, "radial_gaussian_width": 1.0,
            "max_radial": "default"},
        "dtype": "f64",
        "gradients": "positions and quaternions (Var), energy = sum of all per-centre features",
        "timing": format!("median of {REPEATS} after a warm-up forward"),
        "paths": "fused: fused CPU pair kernel with its analytic backward (default on the CPU), \
            or on CUDA the moments-and-contraction op with its analytic backward (default there); \
            tensor_ops: Candle tensor ops and their autograd (the oracle)",
        "results": rows,
    });
    let dir = std::env::var("FORCES_COST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/gradients")
        });
    std::fs::create_dir_all(&dir)?;
    // Fewer threads than cores (RAYON_NUM_THREADS) get their own file.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = rayon::current_num_threads();
    let mut suffix = if device.is_cpu() && threads < cores {
        format!("_{threads}thread")
    } else {
        String::new()
    };
    if n_particles != 1000 {
        suffix.push_str(&format!("_{n_particles}particles"));
    }
    let path = dir.join(format!(
        "forces_cost_{}{suffix}.json",
        device_name.replace(':', "")
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}
