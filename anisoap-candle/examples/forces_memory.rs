//! Forces of a large frame: time and peak memory of the differentiable descriptor's forward and
//! forward + backward (positions and quaternions) for one configuration, printed as one JSON
//! object on stdout.
//!
//! ```text
//! cargo run --release -p anisoap-candle --example forces_memory -- PARTICLES LMAX [fused|tensor_ops]
//! ```
//!
//! System: the synthetic ellipsoid liquid (one species, periodic, density 0.3, seed 7), GTO
//! r_c 4, σ 1, f64, energy = sum of all per-centre features. Memory is the process's resident
//! set from `/proc/self/status`: `rss_after_neighbors` once the pair list is built (and the
//! peak so far, VmHWM, which includes the search's transient buffers), `peak_rss` (VmHWM)
//! after one forward and one forward + backward. Run one configuration per process
//! (the peak is per process): `scripts/measure_forces_memory.sh` runs the set and writes
//! `results/gradients/forces_memory_cpu.json`.

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::synthetic::{generate_frame, SyntheticSpec, SystemKind};
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A `/proc/self/status` field in MB (0 where it cannot be read).
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let particles: usize = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let max_angular: usize = args.get(2).map_or(Ok(6), |s| s.parse())?;
    let path = args.get(3).map_or("fused", |s| s.as_str()).to_string();
    let fused = match path.as_str() {
        "fused" => true,
        "tensor_ops" => false,
        other => return Err(format!("unknown path '{other}'").into()),
    };
    let device = Device::Cpu;
    let spec = SyntheticSpec {
        kind: SystemKind::EllipsoidLiquid,
        n_particles: particles,
        n_species: 1,
        periodic: true,
        density: 0.3,
        seed: 7,
    };
    let frame = generate_frame(&spec, 0);
    let inputs = FrameTensors::from_frame(&frame, "c_q", &device, DType::F64)?;
    drop(frame);
    let hypers = Hypers::gto(max_angular, 4.0, 1.0);
    let descriptor =
        DifferentiableDescriptor::new(&hypers, &device, DType::F64)?.with_fused_kernel(fused);
    let positions = Var::from_tensor(&inputs.positions)?;
    let quaternions = Var::from_tensor(&inputs.quaternions)?;
    let t = Instant::now();
    let neighbors = descriptor.neighbors(
        &positions,
        &inputs.types,
        &inputs.cell,
        inputs.pbc,
        &SpeciesLayout::Fixed(vec![1]),
    )?;
    let neighbor_seconds = t.elapsed().as_secs_f64();
    let rss_after_neighbors = status_mb("VmRSS:");
    let peak_after_neighbors = status_mb("VmHWM:");
    let forward = || -> Res<Tensor> {
        Ok(descriptor.power_spectrum(&positions, &quaternions, &inputs.semi_axes, &neighbors)?)
    };
    let t = Instant::now();
    let x = forward()?;
    x.sum_all()?.to_scalar::<f64>()?;
    let forward_seconds = t.elapsed().as_secs_f64();
    let n_features = x.dim(1)?;
    drop(x);
    let peak_after_forward = status_mb("VmHWM:");
    let t = Instant::now();
    let energy = forward()?.sum_all()?;
    let grads = energy.backward()?;
    let forces = grads.get(&positions).ok_or("no gradient")?.neg()?;
    let total_force = forces.sum(0)?.abs()?.max(0)?.to_scalar::<f64>()?;
    let both_seconds = t.elapsed().as_secs_f64();
    let pairs = neighbors.len();
    let report = serde_json::json!({
        "path": path,
        "particles": particles,
        "max_angular": max_angular,
        "pairs": pairs,
        "features": n_features,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "neighbor_list_seconds": neighbor_seconds,
        "forward_seconds": forward_seconds,
        "forward_backward_seconds": both_seconds,
        "ratio": both_seconds / forward_seconds,
        "pairs_per_second_with_forces": pairs as f64 / both_seconds,
        "rss_after_neighbors_mb": rss_after_neighbors,
        "peak_rss_after_neighbors_mb": peak_after_neighbors,
        "peak_rss_after_forward_mb": peak_after_forward,
        "peak_rss_mb": status_mb("VmHWM:"),
        "max_abs_total_force": total_force,
    });
    println!("{report}");
    Ok(())
}
