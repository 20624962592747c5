//! The pair kernel with one basis baked into its source: the moment recurrence and the
//! non-zeros of `B` become straight-line CUDA C++ with constant shared-memory offsets and
//! literal coefficients, compiled by NVRTC when the kernels are loaded.
//!
//! The table-driven kernel (`kernels/pair_coefficients.cu`) runs one thread per pair, reads,
//! per pair, five plan words per recurrence step and a row index and a value per non-zero of
//! `B` (612 / 2 225 / 6 796 warp-uniform loads at lmax 4 / 6 / 8, `results/roofline.md`), and
//! holds all the pair's moments in its own column of shared memory, so at lmax 8 in f64 only
//! 64 threads fit a block and 4 warps an H200 multiprocessor (10 at lmax 6): the kernel waits on
//! latency.
//!
//! The baked kernel splits each pair's work over `parts` warps instead. A block holds
//! [`PAIRS_PER_BLOCK`] pairs (one per lane) and `parts` warps (`threadIdx.y`, uniform in a
//! warp, so the part a warp runs never diverges):
//! 1. every warp forms its lane's Gaussian parameters (the same few dozen flops, redundant
//!    rather than synchronised);
//! 2. the moments are computed level by level (a moment's level is one more than the highest
//!    level it reads; level `d` is the monomials of degree `d`), each level's moments split
//!    evenly over the parts, with `__syncthreads()` between levels;
//! 3. each part owns a set of `B`'s columns (balanced by non-zeros) and accumulates them in
//!    registers, reading each moment it needs from shared memory once (moment-major; each
//!    column still adds its terms in increasing moment order, the table kernel's order);
//! 4. the columns times the scalar factor go through shared memory (stride 33, no bank
//!    conflicts) and the block writes its 32 rows of `out` as one contiguous, coalesced span.
//!
//! The shared memory of a block is `max(32 n_moments, 33 K)` values (at lmax 6: 22 KiB in
//! f64), so several blocks, `parts` times as many warps, share a multiprocessor.
//!
//! Baking is skipped past [`MAX_BAKED_TERMS`] non-zeros (the source, and NVRTC's time, grow
//! with them); `ANISOAP_CUDA_KERNEL=tables` keeps the table kernel (for side-by-side runs).

use crate::basis::monomials::RecurrenceStep;
use std::fmt::Write;

/// Largest number of non-zeros of `B` baked into a kernel (lmax 8 with the default radial
/// basis has ~6 800).
pub const MAX_BAKED_TERMS: usize = 12_000;

/// Pairs per block of the baked kernel: one per lane of a warp (`blockDim.x`).
pub const PAIRS_PER_BLOCK: usize = 32;

/// Row stride of the output tile in shared memory (32 + 1: consecutive columns of one pair
/// fall in different banks).
const TILE_STRIDE: usize = PAIRS_PER_BLOCK + 1;

/// Warps per block (`blockDim.y`) unless `ANISOAP_CUDA_PARTS` says otherwise.
pub const DEFAULT_PARTS: usize = 4;

/// Most warps per block (a block has at most 1024 threads).
pub const MAX_PARTS: usize = 32;

/// A baked pair kernel: its source and launch shape.
#[derive(Debug, Clone)]
pub struct BakedKernel {
    /// CUDA C++ to append to `kernels/pair_coefficients.cu` (it calls `pair_gaussian`).
    pub source: String,
    /// Warps per block (`blockDim.y`); `blockDim.x` is [`PAIRS_PER_BLOCK`].
    pub parts: usize,
    /// Values of dynamic shared memory a block needs: `max(32 n_moments, 33 K)`.
    pub shared_values: usize,
}

/// Name of the baked kernel for the dtype suffix `f64` / `f32`.
pub fn kernel_name(suffix: &str) -> String {
    format!("pair_coefficients_baked_{suffix}")
}

/// Warps per block: `ANISOAP_CUDA_PARTS` (for tuning) within `1..=MAX_PARTS`, else
/// [`DEFAULT_PARTS`].
pub fn parts_from_env() -> usize {
    std::env::var("ANISOAP_CUDA_PARTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(DEFAULT_PARTS, |p| p.clamp(1, MAX_PARTS))
}

/// A `T` literal holding `v` exactly (Rust's shortest round-trip exponent form; for `float`
/// the double literal is rounded to nearest, as `v as f32` is).
fn literal(v: f64) -> String {
    format!("T({v:e})")
}

/// The level of every moment: 0 for the constant moment, else one more than the highest level
/// among the moments its recurrence step reads (its parent and the grandparents with a
/// non-zero weight).
fn moment_levels(plan: &[RecurrenceStep]) -> Vec<usize> {
    let mut level = vec![0usize; plan.len() + 1];
    for (k, s) in plan.iter().enumerate() {
        let mut l = level[s.parent];
        for j in 0..3 {
            if s.weight[j] != 0 {
                l = l.max(level[s.grandparent[j]]);
            }
        }
        level[k + 1] = l + 1;
    }
    level
}

/// `B`'s columns split over `parts` parts, balanced by their non-zeros (longest first, each
/// to the part with the fewest so far); each part's columns in increasing order.
fn column_parts(dense_b: &[f64], n_moments: usize, n_cols: usize, parts: usize) -> Vec<Vec<usize>> {
    let nnz = |c: usize| {
        (0..n_moments)
            .filter(|&r| dense_b[r * n_cols + c] != 0.0)
            .count()
    };
    let mut order: Vec<(usize, usize)> = (0..n_cols).map(|c| (nnz(c), c)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut load = vec![0usize; parts];
    let mut owned = vec![Vec::new(); parts];
    for (n, c) in order {
        let p = (0..parts).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        load[p] += n;
        owned[p].push(c);
    }
    for cols in &mut owned {
        cols.sort_unstable();
    }
    owned
}

/// The baked kernel `pair_coefficients_baked_<suffix>` for blocks of 32 pairs × `parts`
/// warps, with the signature of the table kernel (whose table arguments it ignores), or
/// `None` when `B` (row-major, `plan.len() + 1` rows, `n_cols` columns) has more than
/// [`MAX_BAKED_TERMS`] non-zeros, `parts` is not in `1..=MAX_PARTS`, or the plan is not one
/// of [`crate::basis::monomials::recurrence_plan`] (a moment read before it is written).
pub fn source(
    plan: &[RecurrenceStep],
    dense_b: &[f64],
    n_cols: usize,
    parts: usize,
    suffix: &str,
) -> Option<BakedKernel> {
    let n_moments = plan.len() + 1;
    if dense_b.len() != n_moments * n_cols
        || dense_b.iter().filter(|&&v| v != 0.0).count() > MAX_BAKED_TERMS
        || !(1..=MAX_PARTS).contains(&parts)
    {
        return None;
    }
    let plan_ok = plan
        .iter()
        .enumerate()
        .all(|(k, s)| s.dir < 3 && s.parent <= k && s.grandparent.iter().all(|&g| g <= k));
    if !plan_ok {
        return None;
    }
    let mean = ["g.mx", "g.my", "g.mz"];
    let sigma = [
        ["g.s00", "g.s01", "g.s02"],
        ["g.s01", "g.s11", "g.s12"],
        ["g.s02", "g.s12", "g.s22"],
    ];
    let lanes = PAIRS_PER_BLOCK;
    let shared_values = (lanes * n_moments).max(TILE_STRIDE * n_cols);
    let mut src = String::new();
    let _ = writeln!(
        src,
        "\n// Baked for {n_moments} moments, {n_cols} columns, blocks of {lanes} pairs x {parts} warps.\n\
         #define ANISOAP_M(i) tile[(i) * {lanes} + lane]\n\
         template <typename T>\n\
         __device__ __forceinline__ void pair_coefficients_baked(\n\
         \x20   const T* __restrict__ precision, const T* __restrict__ inv_prod,\n\
         \x20   const T* __restrict__ r, T s, T cutoff, T width, unsigned int n_pairs,\n\
         \x20   T* __restrict__ out) {{\n\
         \x20   extern __shared__ unsigned char shared_bytes[];\n\
         \x20   T* tile = reinterpret_cast<T*>(shared_bytes);\n\
         \x20   const unsigned int lane = threadIdx.x;\n\
         \x20   const unsigned int part = threadIdx.y;\n\
         \x20   const unsigned long long q0 = (unsigned long long)blockIdx.x * {lanes}ull;\n\
         \x20   const unsigned long long q = q0 + lane;\n\
         \x20   // Lanes past the last pair compute pair n_pairs - 1 again (every warp must reach\n\
         \x20   // every __syncthreads) and write nothing.\n\
         \x20   const unsigned long long qr = q < n_pairs ? q : (unsigned long long)(n_pairs - 1);\n\
         \x20   const PairGaussian<T> g = pair_gaussian<T>(precision, inv_prod, r, qr, s, cutoff, width);\n\
         \x20   if (part == 0) ANISOAP_M(0) = T(1);"
    );
    // Moments, level by level, each level split evenly over the parts.
    let level = moment_levels(plan);
    let n_levels = level.iter().copied().max().unwrap_or(0);
    for l in 1..=n_levels {
        let _ = writeln!(src, "    __syncthreads();\n    switch (part) {{");
        let members: Vec<usize> = (1..n_moments).filter(|&m| level[m] == l).collect();
        for p in 0..parts {
            let (lo, hi) = (p * members.len() / parts, (p + 1) * members.len() / parts);
            if lo == hi {
                continue;
            }
            let _ = writeln!(src, "    case {p}:");
            for &m in &members[lo..hi] {
                let step = &plan[m - 1];
                let d = step.dir;
                let mut line = format!(
                    "        ANISOAP_M({m}) = {} * ANISOAP_M({})",
                    mean[d], step.parent
                );
                let terms: Vec<String> = (0..3)
                    .filter(|&j| step.weight[j] != 0)
                    .map(|j| {
                        format!(
                            "({} * {}) * ANISOAP_M({})",
                            sigma[d][j],
                            literal(step.weight[j] as f64),
                            step.grandparent[j]
                        )
                    })
                    .collect();
                if !terms.is_empty() {
                    // The table kernel's order: coupling = ((t0) + t1) + t2, then lead + coupling.
                    let mut coupling = terms[0].clone();
                    for t in &terms[1..] {
                        coupling = format!("({coupling} + {t})");
                    }
                    let _ = write!(line, " + {coupling}");
                }
                let _ = writeln!(src, "{line};");
            }
            let _ = writeln!(src, "        break;");
        }
        let _ = writeln!(src, "    default: break;\n    }}");
    }
    // Contraction: each part's columns in registers, each moment read once.
    let owned = column_parts(dense_b, n_moments, n_cols, parts);
    let width = owned.iter().map(Vec::len).max().unwrap_or(0);
    let _ = writeln!(src, "    __syncthreads();");
    if width > 0 {
        let names: Vec<String> = (0..width).map(|j| format!("a{j} = T(0)")).collect();
        let _ = writeln!(src, "    T {};", names.join(", "));
        let _ = writeln!(src, "    switch (part) {{");
        for (p, cols) in owned.iter().enumerate() {
            if cols.is_empty() {
                continue;
            }
            let _ = writeln!(src, "    case {p}:");
            for r in 0..n_moments {
                let terms: Vec<String> = cols
                    .iter()
                    .enumerate()
                    .filter(|&(_, &c)| dense_b[r * n_cols + c] != 0.0)
                    .map(|(j, &c)| {
                        format!(" a{j} = a{j} + m * {};", literal(dense_b[r * n_cols + c]))
                    })
                    .collect();
                if !terms.is_empty() {
                    let _ = writeln!(
                        src,
                        "        {{ const T m = ANISOAP_M({r});{} }}",
                        terms.concat()
                    );
                }
            }
            let _ = writeln!(src, "        break;");
        }
        let _ = writeln!(src, "    default: break;\n    }}");
        // Every part has read its moments before the tile is overwritten with the columns.
        let _ = writeln!(src, "    __syncthreads();\n    switch (part) {{");
        for (p, cols) in owned.iter().enumerate() {
            if cols.is_empty() {
                continue;
            }
            let stores: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(j, &c)| format!(" tile[{} + lane] = a{j} * g.scale;", c * TILE_STRIDE))
                .collect();
            let _ = writeln!(src, "    case {p}:{} break;", stores.concat());
        }
        let _ = writeln!(src, "    default: break;\n    }}");
    }
    let _ = writeln!(
        src,
        "    __syncthreads();\n\
         \x20   // The block's rows q0 .. q0 + n_live are one contiguous span of out.\n\
         \x20   const unsigned long long left = (unsigned long long)n_pairs - q0;\n\
         \x20   const unsigned int n_live = left < {lanes}ull ? (unsigned int)left : {lanes}u;\n\
         \x20   T* span = out + q0 * {n_cols}ull;\n\
         \x20   for (unsigned int t = part * {lanes} + lane; t < n_live * {n_cols}u; t += {step}u) {{\n\
         \x20       const unsigned int i = t / {n_cols}u;\n\
         \x20       const unsigned int c = t - i * {n_cols}u;\n\
         \x20       span[t] = tile[c * {TILE_STRIDE} + i];\n\
         \x20   }}\n\
         }}\n#undef ANISOAP_M\n\
         extern \"C\" __global__ void {name}(\n\
         \x20   const {t}* precision, const {t}* inv_prod, const {t}* r, const unsigned int* plan,\n\
         \x20   const {t}* weights, unsigned int n_steps, const unsigned int* col_start,\n\
         \x20   const unsigned int* rows, const {t}* values, unsigned int n_cols, {t} s,\n\
         \x20   {t} cutoff, {t} width, unsigned int n_pairs, {t}* out) {{\n\
         \x20   pair_coefficients_baked<{t}>(precision, inv_prod, r, s, cutoff, width, n_pairs, out);\n\
         }}",
        step = lanes * parts,
        name = kernel_name(suffix),
        t = if suffix == "f32" { "float" } else { "double" },
    );
    Some(BakedKernel {
        source: src,
        parts,
        shared_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::monomials::recurrence_plan;
    use crate::basis::Basis;
    use crate::Hypers;

    /// Literals read back to the same double (and round to the same float).
    #[test]
    fn literals_are_exact() {
        for v in [0.1, -1.0 / 3.0, 6.02214076e23, 1e-300, 2.5, -0.0078125] {
            let text = literal(v);
            let inner = &text[2..text.len() - 1];
            assert_eq!(inner.parse::<f64>().unwrap(), v, "{text}");
            assert_eq!(inner.parse::<f64>().unwrap() as f32, v as f32);
        }
    }

    /// A moment's level is its degree for the packed monomials, and every moment a step reads
    /// sits on a lower level (so one `__syncthreads` per level orders all reads after writes).
    #[test]
    fn levels_are_degrees_and_reads_go_down() {
        let basis = Basis::new(&Hypers::gto(6, 5.0, 1.0)).unwrap();
        let plan = recurrence_plan(&basis.monomials);
        let level = moment_levels(&plan);
        for (m, e) in basis.monomials.exponents.iter().enumerate() {
            assert_eq!(level[m], e.iter().sum::<usize>(), "moment {m} {e:?}");
        }
        for (k, s) in plan.iter().enumerate() {
            assert!(level[s.parent] < level[k + 1]);
            for j in 0..3 {
                if s.weight[j] != 0 {
                    assert!(level[s.grandparent[j]] < level[k + 1]);
                }
            }
        }
    }

    /// Every column goes to exactly one part, and the parts' non-zeros differ by at most the
    /// largest column's.
    #[test]
    fn columns_are_split_once_and_balanced() {
        let basis = Basis::new(&Hypers::gto(6, 5.0, 1.0)).unwrap();
        let (b, k) = (basis.contraction_matrix(), basis.n_coefficients);
        let n = b.len() / k;
        let nnz = |c: usize| (0..n).filter(|&r| b[r * k + c] != 0.0).count();
        for parts in [1, 3, 4, 8] {
            let owned = column_parts(&b, n, k, parts);
            let mut all: Vec<usize> = owned.concat();
            all.sort_unstable();
            assert_eq!(all, (0..k).collect::<Vec<_>>(), "{parts} parts");
            let loads: Vec<usize> = owned
                .iter()
                .map(|c| c.iter().map(|&c| nnz(c)).sum())
                .collect();
            let spread = loads.iter().max().unwrap() - loads.iter().min().unwrap();
            let widest = (0..k).map(nnz).max().unwrap();
            assert!(spread <= widest, "{parts} parts: loads {loads:?}");
        }
    }

    /// One assignment per moment, one multiply-add per non-zero of `B`, one store per column;
    /// a basis past the limit, or a part count outside 1..=32, is not baked.
    #[test]
    fn source_has_one_statement_per_moment_and_term() {
        let basis = Basis::new(&Hypers::gto(4, 4.0, 1.0)).unwrap();
        let plan = recurrence_plan(&basis.monomials);
        let b = basis.contraction_matrix();
        let k = basis.n_coefficients;
        for parts in [1, 4, 8] {
            let baked = source(&plan, &b, k, parts, "f64").unwrap();
            let src = &baked.source;
            let nnz = b.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(src.matches("+ m * ").count(), nnz);
            assert_eq!(src.matches("* g.scale;").count(), k);
            assert_eq!(
                src.lines()
                    .filter(|l| l.trim_start().starts_with("ANISOAP_M("))
                    .count(),
                plan.len()
            );
            assert!(src.contains("if (part == 0) ANISOAP_M(0) = T(1);"));
            assert!(src.contains("tile[(i) * 32 + lane]"));
            assert!(src.contains("void pair_coefficients_baked_f64("));
            assert_eq!(baked.parts, parts);
            assert_eq!(baked.shared_values, (32 * (plan.len() + 1)).max(33 * k));
            // Levels 1..=degree: one barrier each, one before the contraction's stores and one
            // before the copy out, one before the contraction.
            let degree = basis
                .monomials
                .exponents
                .iter()
                .map(|e| e.iter().sum::<usize>())
                .max();
            assert_eq!(src.matches("__syncthreads();").count(), degree.unwrap() + 3);
        }
        assert!(source(&plan, &b, k, 0, "f64").is_none());
        assert!(source(&plan, &b, k, MAX_PARTS + 1, "f64").is_none());
        let big = vec![1.0; (plan.len() + 1) * (MAX_BAKED_TERMS / plan.len() + 2)];
        assert!(source(&plan, &big, MAX_BAKED_TERMS / plan.len() + 2, 4, "f64").is_none());
    }
}
