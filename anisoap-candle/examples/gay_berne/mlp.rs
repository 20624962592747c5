//! An atom-centred MLP potential on per-centre AniSOAP power spectra, trainable on energies
//! and forces without a double backward.
//!
//! `E = Σ_i ε_{type(i)}(x_i)`, `x_i = (X_i − μ) / s` (features standardised with the training
//! set's mean and standard deviation), `ε` an MLP (weights as candle `Var`s, layers as
//! `candle_nn::Linear`). The gradient `∇_X ε` is written out in candle ops (the chain rule
//! through the layers: `g ← (g ⊙ act'(z_l)) W_l`), so it is itself a first-order graph in the
//! weights; with the feature Jacobians `J_i = ∂X_i/∂(x, θ)` of a structure
//! ([`DifferentiableDescriptor::feature_jacobians`]) the predicted forces and torques
//! `−Σ_i J_iᵀ ∇ε(X_i)` enter a loss whose `backward()` gives the weight gradients. At MD time
//! the same energy is built on the descriptor's autograd graph and one `backward()` gives the
//! forces and torques (`tests/gay_berne_mlp.rs` checks both against finite differences).
//!
//! [`DifferentiableDescriptor::feature_jacobians`]: anisoap_candle::differentiable::DifferentiableDescriptor::feature_jacobians
#![allow(dead_code)]

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::Linear;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `tanh(z)`, derivative `1 − tanh²`.
    Tanh,
    /// `z σ(z)`, derivative `σ (1 + z (1 − σ))`.
    Silu,
}

impl Activation {
    /// Value and derivative at `z`.
    fn apply(self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Activation::Tanh => {
                let t = z.tanh()?;
                let d = t.sqr()?.affine(-1.0, 1.0)?;
                Ok((t, d))
            }
            Activation::Silu => {
                let s = z.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
                let v = (z * &s)?;
                let one_minus = s.affine(-1.0, 1.0)?;
                let d = (&s * (z * one_minus)?.affine(1.0, 1.0)?)?;
                Ok((v, d))
            }
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Silu => "silu",
        }
    }
}

/// A fully connected network `F → H_1 → … → 1`.
pub struct Mlp {
    layers: Vec<Linear>,
    vars: Vec<Var>,
    activation: Activation,
}

impl Mlp {
    /// Glorot-uniform weights and zero biases from the seeded `rng`; `sizes` = `[F, H_1, …]`
    /// (the scalar output layer is appended).
    pub fn new(
        sizes: &[usize],
        activation: Activation,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let mut dims = sizes.to_vec();
        dims.push(1);
        let mut layers = Vec::new();
        let mut vars = Vec::new();
        for w in dims.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
            let values: Vec<f64> = (0..fan_in * fan_out)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            let weight = Var::from_tensor(&Tensor::from_vec(values, (fan_out, fan_in), device)?)?;
            let bias = Var::from_tensor(&Tensor::zeros(fan_out, DType::F64, device)?)?;
            layers.push(Linear::new(
                weight.as_tensor().clone(),
                Some(bias.as_tensor().clone()),
            ));
            vars.push(weight);
            vars.push(bias);
        }
        Ok(Mlp {
            layers,
            vars,
            activation,
        })
    }

    /// The trainable variables (weights and biases of every layer).
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Sets the output layer's weights and bias to zero, so the network starts as the zero
    /// function (a correction that starts at nothing on top of a baseline).
    pub fn zero_output(&self) -> Result<()> {
        let n = self.vars.len();
        for v in &self.vars[n - 2..] {
            v.set(&v.as_tensor().zeros_like()?)?;
        }
        Ok(())
    }

    /// Number of trainable parameters.
    pub fn n_parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Outputs `[M]` of inputs `[M, F]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for layer in &self.layers[..last] {
            h = self.activation.apply(&layer.forward(&h)?)?.0;
        }
        self.layers[last].forward(&h)?.squeeze(1)
    }

    /// Outputs `[M]` and their input gradients `[M, F]`, both differentiable in the weights.
    pub fn forward_with_gradient(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        let mut slopes = Vec::with_capacity(last);
        for layer in &self.layers[..last] {
            let (a, d) = self.activation.apply(&layer.forward(&h)?)?;
            h = a;
            slopes.push(d);
        }
        let out = self.layers[last].forward(&h)?.squeeze(1)?;
        // g = ∂out/∂h_last = W_last (as a row for every input).
        let mut g = self.layers[last]
            .weight()
            .broadcast_as((x.dim(0)?, h.dim(1)?))?;
        for (layer, slope) in self.layers[..last].iter().zip(&slopes).rev() {
            g = (g * slope)?.matmul(layer.weight())?;
        }
        Ok((out, g))
    }
}

/// `E = Σ_i ε(x_i)` on standardised features (one particle type, as in the Gay-Berne
/// example).
pub struct MlpPotential {
    /// The per-centre network.
    pub mlp: Mlp,
    /// `[1, F]` feature means of the training set.
    pub mean: Tensor,
    /// `[1, F]` inverse standard deviations (columns with no spread get 1).
    pub inv_scale: Tensor,
}

impl MlpPotential {
    /// Standardisation from training features `[M, F]` and a network with the given hidden
    /// sizes.
    pub fn new(
        train_features: &Tensor,
        hidden: &[usize],
        activation: Activation,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let m = train_features.dim(0)? as f64;
        let mean = train_features.mean_keepdim(0)?;
        let var = train_features
            .broadcast_sub(&mean)?
            .sqr()?
            .sum_keepdim(0)?
            .affine(1.0 / m, 0.0)?;
        let std = var.sqrt()?.to_vec2::<f64>()?;
        let top = std[0].iter().cloned().fold(0.0, f64::max);
        let inv: Vec<f64> = std[0]
            .iter()
            .map(|&s| if s > 1e-8 * top { 1.0 / s } else { 1.0 })
            .collect();
        let f = inv.len();
        let mut sizes = vec![f];
        sizes.extend_from_slice(hidden);
        Ok(MlpPotential {
            mlp: Mlp::new(&sizes, activation, rng, train_features.device())?,
            mean,
            inv_scale: Tensor::from_vec(inv, (1, f), train_features.device())?,
        })
    }

    fn standardise(&self, features: &Tensor) -> Result<Tensor> {
        features
            .broadcast_sub(&self.mean)?
            .broadcast_mul(&self.inv_scale)
    }

    /// Per-centre energies `[M]` of raw features `[M, F]` (differentiable in the features, so
    /// a backward through the descriptor gives forces).
    pub fn centre_energies(&self, features: &Tensor) -> Result<Tensor> {
        self.mlp.forward(&self.standardise(features)?)
    }

    /// Per-centre energies `[M]` and `∂ε/∂X` `[M, F]` with respect to the raw features.
    pub fn centre_energies_and_gradients(&self, features: &Tensor) -> Result<(Tensor, Tensor)> {
        let (e, g) = self
            .mlp
            .forward_with_gradient(&self.standardise(features)?)?;
        Ok((e, g.broadcast_mul(&self.inv_scale)?))
    }

    /// Energies `[K]` and generalised forces `[K, N, 6]` (force x y z, lab torque x y z) of
    /// `K` structures of `N` particles from their features `[K·N, F]` and Jacobians
    /// `[K, N·F, 6N]` (`feature_jacobians` layout): `−Σ_i J_iᵀ ∇ε(X_i)`.
    pub fn predict_from_jacobians(
        &self,
        features: &Tensor,
        jacobians: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (k, nf, n6) = jacobians.dims3()?;
        let n = n6 / 6;
        let (e, g) = self.centre_energies_and_gradients(features)?;
        let energies = e.reshape((k, n))?.sum(1)?;
        let generalised = g
            .reshape((k, 1, nf))?
            .matmul(jacobians)?
            .neg()?
            .reshape((k, n, 6))?;
        Ok((energies, generalised))
    }
}
