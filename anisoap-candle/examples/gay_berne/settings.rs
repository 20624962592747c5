//! Training settings of the Gay-Berne MLP example, parsed from `key=value` words.

use super::mlp::Activation;
use serde_json::{json, Value};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Final learning rate as a fraction of the first (cosine schedule).
pub const LR_END_FRACTION: f64 = 0.01;
/// Loss weight of the energy-per-particle term.
pub const W_ENERGY: f64 = 1.0;

/// Training settings (`--train "hidden=64,64 act=tanh wf=10 wt=2 lr=1e-3 batch=48 epochs=200
/// decay=1e-4"`; the sweep mode takes several separated by `;`).
#[derive(Debug, Clone)]
pub struct Train {
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Hidden-layer activation.
    pub activation: Activation,
    /// Loss weight of forces (energy 1; each term divided by its training-set variance or
    /// mean square).
    pub w_force: f64,
    /// Loss weight of torques.
    pub w_torque: f64,
    /// First learning rate (cosine decay to `lr · LR_END_FRACTION`).
    pub lr: f64,
    /// Structures per optimizer step.
    pub batch: usize,
    /// Passes over the fit structures.
    pub epochs: usize,
    /// AdamW weight decay.
    pub weight_decay: f64,
}

impl Train {
    /// Settings from `key=value` words (defaults for keys not given).
    pub fn parse(text: &str) -> Res<Train> {
        let mut t = Train {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            w_force: 10.0,
            w_torque: 2.0,
            lr: 1e-3,
            batch: 48,
            epochs: 200,
            weight_decay: 1e-4,
        };
        for item in text.split_whitespace() {
            let (k, v) = item
                .split_once('=')
                .ok_or(format!("{item}: expected key=value"))?;
            let f = || -> Res<f64> { v.parse::<f64>().map_err(|e| format!("{item}: {e}").into()) };
            match k {
                "hidden" => {
                    t.hidden = v
                        .split(',')
                        .map(|h| h.parse::<usize>().map_err(|e| format!("{item}: {e}")))
                        .collect::<Result<_, _>>()?
                }
                "act" => {
                    t.activation = match v {
                        "tanh" => Activation::Tanh,
                        "silu" => Activation::Silu,
                        _ => return Err(format!("{item}: tanh or silu").into()),
                    }
                }
                "wf" => t.w_force = f()?,
                "wt" => t.w_torque = f()?,
                "lr" => t.lr = f()?,
                "decay" => t.weight_decay = f()?,
                "batch" => t.batch = (f()? as usize).max(1),
                "epochs" => t.epochs = f()? as usize,
                _ => return Err(format!("{item}: unknown training key").into()),
            }
        }
        Ok(t)
    }

    /// The settings as recorded in the results.
    pub fn to_json(&self) -> Value {
        json!({"hidden": self.hidden, "activation": self.activation.name(),
            "loss_weights": {"energy_per_particle": W_ENERGY, "force": self.w_force,
                "torque": self.w_torque,
                "normalisation": "each term / its training-set variance (energy per particle) or mean square (forces, torques)"},
            "optimizer": "Adam (candle-nn AdamW)", "weight_decay": self.weight_decay,
            "lr": {"start": self.lr, "end": self.lr * LR_END_FRACTION, "schedule": "cosine"},
            "batch_structures": self.batch, "epochs": self.epochs})
    }
}
