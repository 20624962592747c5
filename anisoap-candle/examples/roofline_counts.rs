//! Operations and bytes per pair of the fused pair kernels, counted by walking the same tables
//! the kernels walk (the recurrence plan of `basis::monomials::recurrence_plan`, the non-zeros
//! of `Basis::contraction_matrix` for CUDA, the harmonic tables and Löwdin matrices for the CPU
//! kernel), for lmax 4, 6, 8 with the default `max_radial` (benzene-like case: GTO, cutoff 7,
//! width 1.5, as `examples/cuda_kernel_bench.rs` and `configs/batch_gpu.toml`).
//!
//! `cargo run --release -p anisoap-candle --example roofline_counts [PAIRS_PER_CENTRE] [TYPES]`
//! prints CSV (one row per lmax and kernel); `results/roofline.md` explains every column.
//!
//! Conventions: a multiply or an add is one FLOP (neither kernel forms a fused multiply-add in
//! its source; on the GPU NVRTC may contract pairs into FMAs, which halves instructions, not
//! FLOPs); a divide, square root or exponential is one FLOP in `flops` and counted again in
//! `special`. Bytes: `dram_*` is what must cross the memory bus once per pair (inputs, outputs,
//! the coefficient matrix written by the CUDA pair kernel and read back by its neighbour sum,
//! the centre rows amortised over `PAIRS_PER_CENTRE`); `shared_*` is the CUDA kernel's
//! shared-memory traffic; `table_loads` the (warp-uniform, cached) table reads per pair.

use anisoap_candle::basis::monomials::recurrence_plan;
use anisoap_candle::basis::Basis;
use anisoap_candle::Hypers;

/// FLOPs of the Gaussian parameters with a non-zero shift `1/σ²` (both kernels, same formula):
/// `(adds and multiplies, divides + square roots + exponentials)`.
fn gaussian_flops() -> (u64, u64) {
    let shift = 3; // b_ii = a_ii + s
    let cofactors = 6 * 3; // two products and a difference each
    let det = 3 + 2;
    let sr = 3 * 5; // Σ r
    let ar = 3 * 5; // A r
    let mu = 3 * 2; // r - s Σr
    let kappa = 3 + 2 + 1; // (Σr · Ar) s
    let scale = 1 + 1; // κ · (-1/2), exp(..) · base
    let special = 6 + 1 + 1 + 1; // Σ = C / det (6), 1 / sqrt(det) (div + sqrt), exp
    (
        shift + cofactors + det + sr + ar + mu + kappa + scale,
        special,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pairs_per_centre: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(27.46);
    let types: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    println!(
        "kernel,lmax,n_radial,monomials,steps,coupling_terms,k,nnz,gauss_flops,moment_flops,\
         contraction_flops,sum_flops,flops,special,table_loads,dram_bytes_f64,dram_bytes_f32,\
         shared_bytes_f64,shared_bytes_f32,flops_per_dram_byte_f64,flops_per_dram_byte_f32"
    );
    for lmax in [4usize, 6, 8] {
        let basis = Basis::new(&Hypers::gto(lmax, 7.0, 1.5))?;
        let plan = recurrence_plan(&basis.monomials);
        let monomials = basis.monomials.len() as u64;
        let steps = plan.len() as u64;
        let k = basis.n_coefficients as u64;
        let terms: Vec<u64> = plan
            .iter()
            .map(|s| s.weight.iter().filter(|&&w| w != 0).count() as u64)
            .collect();
        let coupling: u64 = terms.iter().sum();
        let (gauss, gauss_special) = gaussian_flops();
        let n_radial = basis
            .n_radial
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("/");

        // CUDA pair kernel (pair_coefficients.cu): acc = mu m[parent] (1); each present term
        // (sig w) m[gp] added to coupling, which starts at 0 (3); acc + coupling (1).
        let cuda_moments: u64 = terms.iter().map(|t| 2 + 3 * t).sum();
        let b = basis.contraction_matrix();
        let nnz_b = b.iter().filter(|v| **v != 0.0).count() as u64;
        // acc + m[row] v per non-zero (2), acc · scale per column (1).
        let cuda_contraction = 2 * nnz_b + k;
        // neighbor_sum: one add per pair and coefficient (and K zero stores per centre row).
        let cuda_sum = k;
        let cuda_flops = gauss + gauss_special + cuda_moments + cuda_contraction + cuda_sum;
        // Table reads per pair: 5 plan words + 3 weights per step, col_start per column,
        // row + value per non-zero.
        let cuda_tables = 8 * steps + (k + 1) + 2 * nnz_b;
        // Shared memory: one store per moment (m[0] too), parent + present grandparents read
        // per step, one moment read per non-zero.
        let shared_words = monomials + steps + coupling + nnz_b;
        // DRAM of the pair kernel: the inputs in, the [P, K] coefficients out; of the
        // neighbour sum: the coefficients and the slot in, the centre rows out (amortised).
        let pair_dram = |elem: u64| (10 * elem + k * elem) as f64;
        let sum_dram = |elem: u64| {
            (k * elem + 4) as f64 + ((types * k * elem) as f64 + 8.0) / pairs_per_centre
        };
        let pair_flops = gauss + gauss_special + cuda_moments + cuda_contraction;
        println!(
            "cuda_pair_coefficients,{lmax},{n_radial},{monomials},{steps},{coupling},{k},\
             {nnz_b},{gauss},{cuda_moments},{cuda_contraction},0,{pair_flops},{gauss_special},\
             {cuda_tables},{:.1},{:.1},{},{},{:.2},{:.2}",
            pair_dram(8),
            pair_dram(4),
            shared_words * 8,
            shared_words * 4,
            pair_flops as f64 / pair_dram(8),
            pair_flops as f64 / pair_dram(4),
        );
        println!(
            "cuda_neighbor_sum,{lmax},{n_radial},{monomials},0,0,{k},0,0,0,0,{cuda_sum},\
             {cuda_sum},0,0,{:.1},{:.1},0,0,{:.3},{:.3}",
            sum_dram(8),
            sum_dram(4),
            cuda_sum as f64 / sum_dram(8),
            cuda_sum as f64 / sum_dram(4),
        );
        let (d64, d32) = (pair_dram(8) + sum_dram(8), pair_dram(4) + sum_dram(4));
        println!(
            "cuda_both,{lmax},{n_radial},{monomials},{steps},{coupling},{k},{nnz_b},{gauss},\
             {cuda_moments},{cuda_contraction},{cuda_sum},{cuda_flops},{gauss_special},\
             {cuda_tables},{d64:.1},{d32:.1},{},{},{:.2},{:.2}",
            shared_words * 8,
            shared_words * 4,
            cuda_flops as f64 / d64,
            cuda_flops as f64 / d32,
        );

        // CPU chunk kernel (fused_density.rs): mu m[parent] (1); sig w m[gp] per term (2),
        // terms summed (t - 1) and added (1): 1 + 3t when t > 0, else 1.
        let cpu_moments: u64 = terms
            .iter()
            .map(|&t| if t == 0 { 1 } else { 1 + 3 * t })
            .sum();
        // Raw coefficients u = Σ ν T' m over the harmonic tables (2 per entry), then the
        // Löwdin mixing per channel ((2l + 1) N_l² multiply-adds), the scale (1 per column)
        // and the add into the centre's row (1 per column).
        let mut nnz_t = 0u64;
        let mut lowdin = 0u64;
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            for m_index in 0..2 * l + 1 {
                for n in 0..n_l {
                    nnz_t += basis.harmonics.tables[l][m_index][n].len() as u64;
                }
            }
            lowdin += (2 * l as u64 + 1) * (n_l * n_l) as u64 * 2;
        }
        let cpu_contraction = 2 * nnz_t + lowdin + k;
        let cpu_sum = k;
        let cpu_flops = gauss + gauss_special + cpu_moments + cpu_contraction + cpu_sum;
        let cpu_tables = 3 * steps + coupling * 3 + (k + 1) + 2 * nnz_t + lowdin / 2;
        let cpu_dram = |elem: u64| -> f64 {
            // Geometry row and destination per pair; the centre rows once per centre.
            (10 * elem + 4) as f64 + (types * k * elem) as f64 / pairs_per_centre
        };
        let (c64, c32) = (cpu_dram(8), cpu_dram(4));
        println!(
            "cpu_fused_density,{lmax},{n_radial},{monomials},{steps},{coupling},{k},{nnz_t},\
             {gauss},{cpu_moments},{cpu_contraction},{cpu_sum},{cpu_flops},{gauss_special},\
             {cpu_tables},{c64:.1},{c32:.1},0,0,{:.2},{:.2}",
            cpu_flops as f64 / c64,
            cpu_flops as f64 / c32,
        );
    }
    Ok(())
}
