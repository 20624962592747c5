//! Rigid ellipsoids: torques from quaternion gradients and NVE dynamics (velocity Verlet for
//! the centres, NO_SQUISH for the rotations; Miller et al., J. Chem. Phys. 116, 8649 (2002)).
//!
//! Conventions: quaternions `q = (w, x, y, z)` (Hamilton product) rotate body vectors into the
//! lab frame, `R(q)` as scipy (and AniSOAP) build it. A lab-frame rotation by the small vector
//! `δθ` maps `q → (1, δθ/2) ⊗ q`, so with `g = ∂E/∂q` and `q = (w, u)`
//! `∂E/∂θ = ½ (−g_w u + w g_u + u × g_u)` and the lab torque is `τ = −∂E/∂θ`.
//!
//! NO_SQUISH carries a conjugate momentum `p` (4 components) with body angular momentum
//! `L_k = ½ pᵀ P_k q`, where `P_k q = q ⊗ (0, e_k)`; a free rotation about body axis `k` for a
//! time `t` is `q → cos(ζt) q + sin(ζt) P_k q` (same for `p`) with `ζ = pᵀ P_k q / (4 I_k)`, and
//! the step is kick(h/2), drift, rotations 3(h/2) 2(h/2) 1(h) 2(h/2) 3(h/2), kick(h/2): time
//! reversible and symplectic, so the energy error stays bounded for a smooth potential.
// Index loops over 3- and 4-component vectors read like the formulas.
#![allow(dead_code, clippy::needless_range_loop)]

/// `P_k q = q ⊗ (0, e_k)` for body axis `k` (0, 1, 2).
pub fn perm(k: usize, q: [f64; 4]) -> [f64; 4] {
    let [q0, q1, q2, q3] = q;
    match k {
        0 => [-q1, q0, q3, -q2],
        1 => [-q2, -q3, q0, q1],
        _ => [-q3, q2, -q1, q0],
    }
}

fn dot4(a: [f64; 4], b: [f64; 4]) -> f64 {
    a.iter().zip(&b).map(|(x, y)| x * y).sum()
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Row-major rotation matrix of a unit quaternion (body → lab), the library's convention
/// ([`anisoap_candle::rotation::quaternion_to_matrix`]); NaN entries for a zero or non-finite
/// quaternion, so a broken state shows up in the integrator's finite checks.
pub fn rotation(q: [f64; 4]) -> [[f64; 3]; 3] {
    anisoap_candle::rotation::quaternion_to_matrix(q).unwrap_or([[f64::NAN; 3]; 3])
}

/// Lab torque `τ = −∂E/∂θ` from the gradient `g = ∂E/∂q` at the unit quaternion `q`.
pub fn lab_torque(q: [f64; 4], g: [f64; 4]) -> [f64; 3] {
    let u = [q[1], q[2], q[3]];
    let gu = [g[1], g[2], g[3]];
    let c = cross(u, gu);
    [0, 1, 2].map(|d| -0.5 * (-g[0] * u[d] + q[0] * gu[d] + c[d]))
}

/// Body-frame moments of inertia of a uniform solid ellipsoid of mass `m` and semi-axes `a`.
pub fn ellipsoid_inertia(m: f64, a: [f64; 3]) -> [f64; 3] {
    let s = a.map(|v| v * v);
    [
        m * (s[1] + s[2]) / 5.0,
        m * (s[0] + s[2]) / 5.0,
        m * (s[0] + s[1]) / 5.0,
    ]
}

/// Energy, forces `[N][3]` and lab torques `[N][3]` of a configuration.
pub type FieldResult = Result<(f64, Vec<[f64; 3]>, Vec<[f64; 3]>), Box<dyn std::error::Error>>;

/// A potential: configuration (positions, unit quaternions) → [`FieldResult`].
pub type ForceField<'a> = dyn FnMut(&[[f64; 3]], &[[f64; 4]]) -> FieldResult + 'a;

/// State of `N` rigid bodies of one kind.
#[derive(Debug, Clone)]
pub struct RigidState {
    /// Centre positions.
    pub positions: Vec<[f64; 3]>,
    /// Centre velocities.
    pub velocities: Vec<[f64; 3]>,
    /// Unit orientation quaternions.
    pub quaternions: Vec<[f64; 4]>,
    /// NO_SQUISH conjugate momenta.
    pub momenta: Vec<[f64; 4]>,
    /// Mass of each body.
    pub mass: f64,
    /// Body-frame principal moments of inertia.
    pub inertia: [f64; 3],
}

impl RigidState {
    /// Body angular momenta `L_k = ½ pᵀ P_k q` of body `i`.
    pub fn body_angular_momentum(&self, i: usize) -> [f64; 3] {
        let (q, p) = (self.quaternions[i], self.momenta[i]);
        [0, 1, 2].map(|k| 0.5 * dot4(p, perm(k, q)))
    }

    /// Sets body `i`'s momentum from body angular momenta `L`: `p = 2 Σ_k L_k P_k q`.
    pub fn set_body_angular_momentum(&mut self, i: usize, l: [f64; 3]) {
        let q = self.quaternions[i];
        let mut p = [0.0; 4];
        for (k, lk) in l.iter().enumerate() {
            let pk = perm(k, q);
            for c in 0..4 {
                p[c] += 2.0 * lk * pk[c];
            }
        }
        self.momenta[i] = p;
    }

    /// Translational plus rotational kinetic energy.
    pub fn kinetic(&self) -> f64 {
        let mut k = 0.0;
        for (i, v) in self.velocities.iter().enumerate() {
            k += 0.5 * self.mass * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            let l = self.body_angular_momentum(i);
            for a in 0..3 {
                k += 0.5 * l[a] * l[a] / self.inertia[a];
            }
        }
        k
    }

    fn kick(&mut self, h: f64, forces: &[[f64; 3]], torques: &[[f64; 3]]) {
        for i in 0..self.positions.len() {
            for d in 0..3 {
                self.velocities[i][d] += h * forces[i][d] / self.mass;
            }
            let q = self.quaternions[i];
            let r = rotation(q);
            // Body torque T = Rᵀ τ; dp = h · 2 Σ_k T_k P_k q (so that dL = h T).
            let t: [f64; 3] = [0, 1, 2].map(|k| (0..3).map(|d| r[d][k] * torques[i][d]).sum());
            for (k, tk) in t.iter().enumerate() {
                let pk = perm(k, q);
                for c in 0..4 {
                    self.momenta[i][c] += 2.0 * h * tk * pk[c];
                }
            }
        }
    }

    fn free_rotation(&mut self, i: usize, k: usize, t: f64) {
        let (q, p) = (self.quaternions[i], self.momenta[i]);
        let zeta = dot4(p, perm(k, q)) / (4.0 * self.inertia[k]);
        let (s, c) = (zeta * t).sin_cos();
        let (pq, pp) = (perm(k, q), perm(k, p));
        self.quaternions[i] = [0, 1, 2, 3].map(|a| c * q[a] + s * pq[a]);
        self.momenta[i] = [0, 1, 2, 3].map(|a| c * p[a] + s * pp[a]);
    }

    /// One velocity-Verlet / NO_SQUISH step of length `h`, given the forces and torques at the
    /// current configuration; returns the energy, forces and torques at the new one.
    pub fn step(
        &mut self,
        h: f64,
        forces: &[[f64; 3]],
        torques: &[[f64; 3]],
        field: &mut ForceField<'_>,
    ) -> FieldResult {
        self.kick(0.5 * h, forces, torques);
        for i in 0..self.positions.len() {
            for d in 0..3 {
                self.positions[i][d] += h * self.velocities[i][d];
            }
            for (k, t) in [(2, 0.5), (1, 0.5), (0, 1.0), (1, 0.5), (2, 0.5)] {
                self.free_rotation(i, k, t * h);
            }
            // Keep |q| = 1 against rounding (the rotations preserve it exactly in exact
            // arithmetic).
            let n = dot4(self.quaternions[i], self.quaternions[i]).sqrt();
            self.quaternions[i] = self.quaternions[i].map(|v| v / n);
        }
        let (e, f, t) = field(&self.positions, &self.quaternions)?;
        self.kick(0.5 * h, &f, &t);
        Ok((e, f, t))
    }
}
