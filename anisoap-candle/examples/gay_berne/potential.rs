//! The Gay-Berne potential for identical uniaxial ellipsoids, with analytic forces and
//! quaternion gradients.
//!
//! Pair energy (Gay & Berne 1981, with the usual exponents μ, ν):
//!
//! ```text
//! U = 4 ε(û_i, û_j, r̂) [ρ¹² − ρ⁶],   ρ = σ0 / (r − σ(û_i, û_j, r̂) + σ0)
//! σ = σ0 [1 − χ/2 · S(χ)]^(-1/2),      S(χ) = (a+b)²/(1+χc) + (a−b)²/(1−χc)
//! ε = ε0 ε1^ν ε2^μ,  ε1 = (1 − χ²c²)^(-1/2),  ε2 = 1 − χ'/2 · S(χ')
//! χ = (κ² − 1)/(κ² + 1),  χ' = (κ'^(1/μ) − 1)/(κ'^(1/μ) + 1)
//! ```
//!
//! with `r = x_j − x_i`, `a = r̂·û_i`, `b = r̂·û_j`, `c = û_i·û_j`, and `û` the lab direction
//! of the body z axis (the long axis) of the particle's quaternion `(w, x, y, z)`. All pairs
//! count (an open cluster, no cutoff), so the energy is smooth.

/// One ellipsoid: position and orientation quaternion `(w, x, y, z)` (need not be unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Particle {
    /// Position.
    pub position: [f64; 3],
    /// Orientation `(w, x, y, z)`; only its direction matters.
    pub quaternion: [f64; 4],
}

/// Parameters of the Gay-Berne potential.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GayBerne {
    /// Side-by-side contact distance σ0 (the width of the particles).
    pub sigma0: f64,
    /// Energy scale ε0.
    pub eps0: f64,
    /// Length-to-width ratio κ = σ_e / σ_s.
    pub kappa: f64,
    /// Side-by-side to end-to-end well depth ratio κ'.
    pub kappa_prime: f64,
    /// Exponent μ of ε2.
    pub mu: f64,
    /// Exponent ν of ε1.
    pub nu: f64,
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Long axis `û = R ẑ` of a quaternion and `∂û/∂q̂_k` for the normalised `q̂`.
fn axis(q: [f64; 4]) -> ([f64; 3], [[f64; 3]; 4], [f64; 4], f64) {
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    let [w, x, y, z] = q.map(|v| v / norm);
    let u = [
        2.0 * (x * z + y * w),
        2.0 * (y * z - x * w),
        w * w - x * x - y * y + z * z,
    ];
    let du = [
        [2.0 * y, -2.0 * x, 2.0 * w],
        [2.0 * z, -2.0 * w, -2.0 * x],
        [2.0 * w, 2.0 * z, -2.0 * y],
        [2.0 * x, 2.0 * y, 2.0 * z],
    ];
    (u, du, [w, x, y, z], norm)
}

impl GayBerne {
    /// The classic parameters: σ0 = ε0 = 1, κ = 3, κ' = 5, μ = 2, ν = 1.
    pub fn standard() -> Self {
        GayBerne {
            sigma0: 1.0,
            eps0: 1.0,
            kappa: 3.0,
            kappa_prime: 5.0,
            mu: 2.0,
            nu: 1.0,
        }
    }

    /// Pair energy and its partial derivatives `(U, ∂U/∂r, ∂U/∂a, ∂U/∂b, ∂U/∂c)`.
    fn pair(&self, r: f64, a: f64, b: f64, c: f64) -> [f64; 5] {
        let k2 = self.kappa * self.kappa;
        let chi = (k2 - 1.0) / (k2 + 1.0);
        let kp = self.kappa_prime.powf(1.0 / self.mu);
        let chip = (kp - 1.0) / (kp + 1.0);
        // S(χ) and its derivatives with respect to a, b, c.
        let s = |x: f64| {
            let (p, m) = (1.0 + x * c, 1.0 - x * c);
            let (sp, sm) = (a + b, a - b);
            [
                sp * sp / p + sm * sm / m,
                2.0 * sp / p + 2.0 * sm / m,
                2.0 * sp / p - 2.0 * sm / m,
                -x * sp * sp / (p * p) + x * sm * sm / (m * m),
            ]
        };
        let s1 = s(chi);
        let h = 1.0 - 0.5 * chi * s1[0];
        let sigma = self.sigma0 / h.sqrt();
        // dσ/dX = σ³/σ0² · χ/4 · dS/dX.
        let dsigma = |k: usize| sigma.powi(3) / (self.sigma0 * self.sigma0) * chi / 4.0 * s1[k];
        let e1 = (1.0 - chi * chi * c * c).powf(-0.5);
        let s2 = s(chip);
        let e2 = 1.0 - 0.5 * chip * s2[0];
        let eps = self.eps0 * e1.powf(self.nu) * e2.powf(self.mu);
        // d ln ε / dX.
        let dln_e2 = |k: usize| -0.5 * chip * s2[k] / e2;
        let dln_eps = [
            self.mu * dln_e2(1),
            self.mu * dln_e2(2),
            self.nu * chi * chi * c / (1.0 - chi * chi * c * c) + self.mu * dln_e2(3),
        ];
        let rho = self.sigma0 / (r - sigma + self.sigma0);
        let (r6, r12) = (rho.powi(6), rho.powi(12));
        let v = 4.0 * (r12 - r6);
        let dv = 4.0 * (12.0 * r12 - 6.0 * r6) / rho; // dV/dρ
        let drho = rho * rho / self.sigma0; // -dρ/dr = dρ/dσ
        let u = eps * v;
        let du_dr = -eps * dv * drho;
        let du = |k: usize| eps * dv * drho * dsigma(k) + u * dln_eps[k - 1];
        [u, du_dr, du(1), du(2), du(3)]
    }

    /// Total energy, forces `-∂E/∂x` `[N][3]` and quaternion gradients `∂E/∂q` `[N][4]`.
    pub fn energy_forces(&self, particles: &[Particle]) -> (f64, Vec<[f64; 3]>, Vec<[f64; 4]>) {
        pair_sum(particles, |r, a, b, c| self.pair(r, a, b, c))
    }
}

/// Energy, forces `-∂E/∂x` `[N][3]` and quaternion gradients `∂E/∂q` `[N][4]` of a sum over
/// all pairs of a pair energy `pair(r, a, b, c) = (U, ∂U/∂r, ∂U/∂a, ∂U/∂b, ∂U/∂c)` of the
/// centre distance `r = |x_j − x_i|`, `a = r̂·û_i`, `b = r̂·û_j` and `c = û_i·û_j`.
pub fn pair_sum(
    particles: &[Particle],
    mut pair: impl FnMut(f64, f64, f64, f64) -> [f64; 5],
) -> (f64, Vec<[f64; 3]>, Vec<[f64; 4]>) {
    let n = particles.len();
    let axes: Vec<_> = particles.iter().map(|p| axis(p.quaternion)).collect();
    let mut energy = 0.0;
    let mut grad_x = vec![[0.0; 3]; n];
    let mut grad_u = vec![[0.0; 3]; n];
    for i in 0..n {
        for j in i + 1..n {
            let (pi, pj) = (particles[i].position, particles[j].position);
            let rv = [pj[0] - pi[0], pj[1] - pi[1], pj[2] - pi[2]];
            let r = dot(rv, rv).sqrt();
            let rh = rv.map(|v| v / r);
            let (ui, uj) = (axes[i].0, axes[j].0);
            let (a, b, c) = (dot(rh, ui), dot(rh, uj), dot(ui, uj));
            let [u, dr, da, db, dc] = pair(r, a, b, c);
            energy += u;
            for d in 0..3 {
                // ∂U/∂r_vec with ∂a/∂r_vec = (û_i − a r̂)/r, ∂b/∂r_vec = (û_j − b r̂)/r.
                let g = dr * rh[d] + da * (ui[d] - a * rh[d]) / r + db * (uj[d] - b * rh[d]) / r;
                grad_x[j][d] += g;
                grad_x[i][d] -= g;
                grad_u[i][d] += da * rh[d] + dc * uj[d];
                grad_u[j][d] += db * rh[d] + dc * ui[d];
            }
        }
    }
    let forces = grad_x.iter().map(|g| g.map(|v| -v)).collect();
    let dq = (0..n)
        .map(|i| {
            let (_, du, qh, norm) = axes[i];
            let g: [f64; 4] = [0, 1, 2, 3].map(|k| dot(grad_u[i], du[k]));
            let radial: f64 = (0..4).map(|k| g[k] * qh[k]).sum();
            [0, 1, 2, 3].map(|k| (g[k] - radial * qh[k]) / norm)
        })
        .collect();
    (energy, forces, dq)
}
