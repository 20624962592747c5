//! The pair kernel with one basis baked into its source: the moment recurrence and the
//! non-zeros of `B` become straight-line CUDA C++ with constant shared-memory offsets and
//! literal coefficients, compiled by NVRTC when the kernels are loaded.
//!
//! The table-driven kernel (`kernels/pair_coefficients.cu`) reads, per pair, five plan words
//! per recurrence step and a row index and a value per non-zero of `B` (612 / 2 225 / 6 796
//! warp-uniform loads at lmax 4 / 6 / 8, `results/roofline.md`), and every shared-memory
//! address depends on a loaded index. Baked, those loads and that index arithmetic are gone:
//! what remains per pair is the Gaussian parameters, one shared-memory read per term and the
//! multiply-adds. The arithmetic is the table kernel's, in the same order.
//!
//! Baking is skipped past [`MAX_BAKED_TERMS`] non-zeros (the source, and NVRTC's time, grow
//! with them); `ANISOAP_CUDA_KERNEL=tables` keeps the table kernel (for side-by-side runs).

use crate::basis::monomials::RecurrenceStep;
use std::fmt::Write;

/// Largest number of non-zeros of `B` baked into a kernel (lmax 8 with the default radial
/// basis has ~6 800).
pub const MAX_BAKED_TERMS: usize = 12_000;

/// Name of the baked kernel for the dtype suffix `f64` / `f32`.
pub fn kernel_name(suffix: &str) -> String {
    format!("pair_coefficients_baked_{suffix}")
}

/// A `T` literal holding `v` exactly (Rust's shortest round-trip exponent form; for `float`
/// the double literal is rounded to nearest, as `v as f32` is).
fn literal(v: f64) -> String {
    format!("T({v:e})")
}

/// The CUDA C++ source of the baked kernel `pair_coefficients_baked_<suffix>` (to be appended
/// to `kernels/pair_coefficients.cu`, whose `pair_gaussian` it calls), with the signature of
/// the table kernel (whose table arguments it ignores), for blocks of `threads` threads, or
/// `None` when `B` (row-major, `plan.len() + 1` rows, `n_cols` columns) has more than
/// [`MAX_BAKED_TERMS`] non-zeros, or the plan is not one of
/// [`crate::basis::monomials::recurrence_plan`] (a moment read before it is written).
pub fn source(
    plan: &[RecurrenceStep],
    dense_b: &[f64],
    n_cols: usize,
    threads: usize,
    suffix: &str,
) -> Option<String> {
    let n_moments = plan.len() + 1;
    if dense_b.len() != n_moments * n_cols
        || dense_b.iter().filter(|&&v| v != 0.0).count() > MAX_BAKED_TERMS
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
    let mut src = String::new();
    let _ = writeln!(
        src,
        "\n// Baked for {n_moments} moments, {n_cols} columns, blocks of {threads} threads.\n\
         #define ANISOAP_M(i) mine[(i) * {threads}]\n\
         template <typename T>\n\
         __device__ __forceinline__ void pair_coefficients_baked(\n\
         \x20   const T* __restrict__ precision, const T* __restrict__ inv_prod,\n\
         \x20   const T* __restrict__ r, T s, T cutoff, T width, unsigned int n_pairs,\n\
         \x20   T* __restrict__ out) {{\n\
         \x20   extern __shared__ unsigned char shared_bytes[];\n\
         \x20   T* mine = reinterpret_cast<T*>(shared_bytes) + threadIdx.x;\n\
         \x20   const unsigned long long q = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;\n\
         \x20   if (q >= n_pairs) return;\n\
         \x20   const PairGaussian<T> g = pair_gaussian<T>(precision, inv_prod, r, q, s, cutoff, width);\n\
         \x20   ANISOAP_M(0) = T(1);"
    );
    for (k, step) in plan.iter().enumerate() {
        let d = step.dir;
        let mut line = format!(
            "    ANISOAP_M({}) = {} * ANISOAP_M({})",
            k + 1,
            mean[d],
            step.parent
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
    let _ = writeln!(src, "    T* row_out = out + q * {n_cols};");
    for c in 0..n_cols {
        let _ = write!(src, "    {{ T a = T(0);");
        for r in 0..n_moments {
            let v = dense_b[r * n_cols + c];
            if v != 0.0 {
                let _ = write!(src, " a = a + ANISOAP_M({r}) * {};", literal(v));
            }
        }
        let _ = writeln!(src, " row_out[{c}] = a * g.scale; }}");
    }
    let _ = writeln!(
        src,
        "}}\n#undef ANISOAP_M\n\
         extern \"C\" __global__ void {name}(\n\
         \x20   const {t}* precision, const {t}* inv_prod, const {t}* r, const unsigned int* plan,\n\
         \x20   const {t}* weights, unsigned int n_steps, const unsigned int* col_start,\n\
         \x20   const unsigned int* rows, const {t}* values, unsigned int n_cols, {t} s,\n\
         \x20   {t} cutoff, {t} width, unsigned int n_pairs, {t}* out) {{\n\
         \x20   pair_coefficients_baked<{t}>(precision, inv_prod, r, s, cutoff, width, n_pairs, out);\n\
         }}",
        name = kernel_name(suffix),
        t = if suffix == "f32" { "float" } else { "double" },
    );
    Some(src)
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

    /// One assignment per moment, one term per non-zero of `B`, one store per column; a basis
    /// past the limit is not baked.
    #[test]
    fn source_has_one_statement_per_moment_and_term() {
        let basis = Basis::new(&Hypers::gto(4, 4.0, 1.0)).unwrap();
        let plan = recurrence_plan(&basis.monomials);
        let b = basis.contraction_matrix();
        let k = basis.n_coefficients;
        let src = source(&plan, &b, k, 128, "f64").unwrap();
        let nnz = b.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(src.matches("a = a + ANISOAP_M(").count(), nnz);
        assert_eq!(src.matches("row_out[").count(), k);
        assert_eq!(
            src.lines()
                .filter(|l| l.trim_start().starts_with("ANISOAP_M("))
                .count(),
            plan.len() + 1
        );
        assert!(src.contains("mine[(i) * 128]"));
        assert!(src.contains("void pair_coefficients_baked_f64("));
        let big = vec![1.0; (plan.len() + 1) * (MAX_BAKED_TERMS / plan.len() + 2)];
        assert!(source(&plan, &big, MAX_BAKED_TERMS / plan.len() + 2, 128, "f64").is_none());
    }
}
