//! The opt-in smooth cutoff (`cutoff_function` in the hypers): a departure from the original.
//!
//! The original AniSOAP has none: a neighbour's whole Gaussian counts while its centre is
//! strictly inside `r_c` and vanishes when it crosses, so the features jump. With
//! `cutoff_function = { shifted_cosine = { width = w } }` every neighbour pair's density
//! coefficients are multiplied, before the neighbour sum, by featomic's `ShiftedCosine`
//!
//! ```text
//! f(r) = 1                                   r <= r_c - w
//!        ½ (1 + cos(π (r - r_c + w) / w))    r_c - w < r < r_c
//!        0                                   r >= r_c
//! ```
//!
//! of the centre–centre distance `r = |r_ij|`. `f` and `f'` are continuous (`f'` vanishes at
//! both ends of the zone), so features and forces are continuous when a neighbour crosses
//! `r_c`. The self pair has `r = 0` and `f = 1`, so `subtract_center_contribution` is
//! unaffected. The default, [`CutoffFunction::Step`], is the original's (`f = 1` for every
//! listed pair): no factor is applied at all, so its outputs are bit for bit those without
//! this option.
//!
//! Every backend applies `f` where it has `r_ij`: the reference ([`CutoffFunction::value`],
//! f64), the fused CPU kernel (per lane, in the kernel's dtype), the tensor-op and
//! differentiable paths ([`CutoffFunction::factor_tensor`], a differentiable Candle
//! expression, so autograd forces see it) and the CUDA pair kernel (`r_c` and `w` are kernel
//! arguments; `w = 0` means step).

use crate::error::{Error, Result};
use candle_core::Tensor;
use serde_json::Value;
use std::f64::consts::PI;

/// Names accepted under `cutoff_function`.
pub const KNOWN_CUTOFF_FUNCTIONS: [&str; 2] = ["step", "shifted_cosine"];

/// How a neighbour pair's contribution is weighted by its distance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum CutoffFunction {
    /// The original's step: every pair strictly inside the cutoff counts fully.
    #[default]
    Step,
    /// featomic's `ShiftedCosine`: smooth decay from `r_c - width` to `r_c`.
    ShiftedCosine {
        /// Width of the smoothing zone, `0 < width <= cutoff_radius`.
        width: f64,
    },
}

impl CutoffFunction {
    /// True for the original's step (no factor is applied anywhere).
    pub fn is_step(&self) -> bool {
        matches!(self, CutoffFunction::Step)
    }

    /// Width of the smoothing zone; 0 for the step (the CUDA kernel's convention).
    pub fn width(&self) -> f64 {
        match *self {
            CutoffFunction::Step => 0.0,
            CutoffFunction::ShiftedCosine { width } => width,
        }
    }

    /// `f(r)` for a pair at distance `r` with cutoff radius `cutoff`.
    pub fn value(&self, r: f64, cutoff: f64) -> f64 {
        match *self {
            CutoffFunction::Step => {
                if r < cutoff {
                    1.0
                } else {
                    0.0
                }
            }
            CutoffFunction::ShiftedCosine { width } => {
                if r <= cutoff - width {
                    1.0
                } else if r >= cutoff {
                    0.0
                } else {
                    0.5 * (1.0 + (PI * (r - cutoff + width) / width).cos())
                }
            }
        }
    }

    /// `f'(r)` (0 for the step away from `r_c`, where it is not defined).
    pub fn derivative(&self, r: f64, cutoff: f64) -> f64 {
        match *self {
            CutoffFunction::Step => 0.0,
            CutoffFunction::ShiftedCosine { width } => {
                if r <= cutoff - width || r >= cutoff {
                    0.0
                } else {
                    -0.5 * PI / width * (PI * (r - cutoff + width) / width).sin()
                }
            }
        }
    }

    /// `f(|r_ij|)` as a `[P, 1]` tensor of `r`'s dtype and device from pair vectors `r`
    /// `[P, 3]`, built from differentiable Candle ops (`sqr`, `sum`, `maximum`, `sqrt`,
    /// `affine`, `minimum`, `cos`); `None` for the step. The distance is floored at
    /// `r_c - w` (where `f` is 1 and flat, so the value and gradient are unchanged) before the
    /// square root, so a self pair (`r = 0`) never meets `sqrt'(0)`; when `w = r_c` the floor
    /// is `1e-8 r_c`, where `f` differs from 1 by `π² 1e-16 / 4`.
    pub fn factor_tensor(&self, r: &Tensor, cutoff: f64) -> Result<Option<Tensor>> {
        let CutoffFunction::ShiftedCosine { width } = *self else {
            return Ok(None);
        };
        let start = cutoff - width;
        let floor = if start > 0.0 {
            start * start
        } else {
            (1e-8 * cutoff) * (1e-8 * cutoff)
        };
        let distance = r.sqr()?.sum_keepdim(1)?.maximum(floor)?.sqrt()?;
        let t = distance.affine(1.0 / width, -start / width)?.minimum(1.0)?;
        Ok(Some(t.affine(PI, 0.0)?.cos()?.affine(0.5, 0.5)?))
    }

    /// Parses the `cutoff_function` value: `"step"`, `{ step = {} }` or
    /// `{ shifted_cosine = { width = W } }`.
    pub fn from_value(value: &Value) -> Result<Self> {
        let err = |m: String| Error::Hypers(m);
        let known = KNOWN_CUTOFF_FUNCTIONS.join(", ");
        let (name, params) = match value {
            Value::String(s) => (s.as_str(), None),
            Value::Object(map) if map.len() == 1 => {
                let (k, v) = map.iter().next().expect("one entry");
                (k.as_str(), Some(v))
            }
            other => {
                return Err(err(format!(
                    "cutoff_function must be one of {known} as a name or a table with one \
                     entry (e.g. {{ shifted_cosine = {{ width = 0.5 }} }}), got {other}"
                )))
            }
        };
        match name {
            "step" => match params {
                None => Ok(CutoffFunction::Step),
                Some(Value::Object(p)) if p.is_empty() => Ok(CutoffFunction::Step),
                Some(other) => Err(err(format!(
                    "cutoff_function.step takes no parameters, got {other}"
                ))),
            },
            "shifted_cosine" => {
                let Some(Value::Object(p)) = params else {
                    return Err(err(
                        "cutoff_function.shifted_cosine needs a table with its width, e.g. \
                         { shifted_cosine = { width = 0.5 } }"
                            .into(),
                    ));
                };
                if let Some(unknown) = p.keys().find(|k| k.as_str() != "width") {
                    return Err(err(format!(
                        "unknown key 'cutoff_function.shifted_cosine.{unknown}'; known keys: width"
                    )));
                }
                let width = match p.get("width") {
                    None => {
                        return Err(err(
                            "missing required key 'cutoff_function.shifted_cosine.width'".into(),
                        ))
                    }
                    Some(v) => v.as_f64().ok_or_else(|| {
                        err(format!(
                            "cutoff_function.shifted_cosine.width must be a number, got {v}"
                        ))
                    })?,
                };
                Ok(CutoffFunction::ShiftedCosine { width })
            }
            other => Err(err(format!(
                "unknown cutoff function '{other}'; known cutoff functions: {known}"
            ))),
        }
    }

    /// The value [`CutoffFunction::from_value`] reads back.
    pub fn to_value(&self) -> Value {
        match *self {
            CutoffFunction::Step => Value::String("step".into()),
            CutoffFunction::ShiftedCosine { width } => {
                serde_json::json!({ "shifted_cosine": { "width": width } })
            }
        }
    }

    /// Checks the parameters against the cutoff radius: `0 < width <= cutoff`, finite.
    pub fn validate(&self, cutoff: f64) -> Result<()> {
        if let CutoffFunction::ShiftedCosine { width } = *self {
            if !(width.is_finite() && width > 0.0) {
                return Err(Error::Hypers(format!(
                    "cutoff_function.shifted_cosine.width must be positive and finite, got {width}"
                )));
            }
            if width > cutoff {
                return Err(Error::Hypers(format!(
                    "cutoff_function.shifted_cosine.width = {width} exceeds cutoff_radius = \
                     {cutoff} (the smoothing zone is [cutoff - width, cutoff])"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// featomic's own test values (ShiftedCosine, width 0.5, cutoff 4).
    #[test]
    fn matches_featomic_values() {
        let f = CutoffFunction::ShiftedCosine { width: 0.5 };
        assert_eq!(f.value(2.0, 4.0), 1.0);
        assert_eq!(f.value(3.5, 4.0), 1.0);
        assert!((f.value(3.8, 4.0) - 0.34549150281252683).abs() < 1e-15);
        assert_eq!(f.value(4.0, 4.0), 0.0);
        assert_eq!(f.value(5.0, 4.0), 0.0);
        assert_eq!(f.derivative(3.5, 4.0), 0.0);
        assert!((f.derivative(3.8, 4.0) - -2.987832164741557).abs() < 1e-13);
        assert_eq!(f.derivative(4.0, 4.0), 0.0);
        let step = CutoffFunction::Step;
        assert_eq!((step.value(3.99, 4.0), step.value(4.0, 4.0)), (1.0, 0.0));
    }

    /// The derivative is the finite difference of the value, and both are continuous at the
    /// ends of the zone.
    #[test]
    fn derivative_and_continuity() {
        let f = CutoffFunction::ShiftedCosine { width: 0.7 };
        let rc = 3.0;
        let h = 1e-6;
        for i in 1..50 {
            let r = rc - 0.7 + 0.7 * i as f64 / 50.0;
            let fd = (f.value(r + h, rc) - f.value(r - h, rc)) / (2.0 * h);
            assert!((fd - f.derivative(r, rc)).abs() < 1e-8, "r = {r}");
        }
        // Near either end |f - f(end)| ≈ (π/w)² e²/4 and |f'| ≈ (π/w)² e/2 (5.0 e², 10.1 e).
        for edge in [rc - 0.7, rc] {
            for e in [1e-4, 1e-6, 1e-8] {
                assert!((f.value(edge + e, rc) - f.value(edge - e, rc)).abs() < 6.0 * e * e);
                assert!(f.derivative(edge + e, rc).abs() < 11.0 * e);
                assert!(f.derivative(edge - e, rc).abs() < 11.0 * e);
            }
        }
    }

    /// The tensor expression equals the scalar one and its autograd the derivative, the self
    /// pair included (value 1, zero gradient, no NaN), also for `width = cutoff`.
    #[test]
    fn tensor_factor_and_its_gradient() {
        for (rc, w) in [(3.0, 0.7), (2.0, 2.0)] {
            let f = CutoffFunction::ShiftedCosine { width: w };
            let dirs = [[0.6, 0.0, 0.8], [0.0, 1.0, 0.0], [0.48, 0.6, 0.64]];
            let mut rows = vec![[0.0; 3]];
            let mut distances = vec![0.0];
            for k in 0..40 {
                let d = 0.05 + (rc - 0.06) * k as f64 / 39.0;
                let u = dirs[k % 3];
                rows.push([u[0] * d, u[1] * d, u[2] * d]);
                distances.push((u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt() * d);
            }
            let flat: Vec<f64> = rows.iter().flatten().copied().collect();
            let r = Var::from_vec(flat, (rows.len(), 3), &Device::Cpu).unwrap();
            let factor = f.factor_tensor(&r, rc).unwrap().unwrap();
            let values: Vec<f64> = factor.flatten_all().unwrap().to_vec1().unwrap();
            let grads = factor.sum_all().unwrap().backward().unwrap();
            let g = grads.get(&r).unwrap().to_vec2::<f64>().unwrap();
            for (p, &d) in distances.iter().enumerate() {
                let expected = if p == 0 { 1.0 } else { f.value(d, rc) };
                assert!((values[p] - expected).abs() < 1e-14, "{p}: {}", values[p]);
                let slope = if p == 0 { 0.0 } else { f.derivative(d, rc) };
                for k in 0..3 {
                    let want = if p == 0 { 0.0 } else { slope * rows[p][k] / d };
                    assert!(g[p][k].is_finite() && (g[p][k] - want).abs() < 1e-12);
                }
            }
            assert!(CutoffFunction::Step
                .factor_tensor(&r.to_dtype(DType::F32).unwrap(), rc)
                .unwrap()
                .is_none());
            // f32: the same values to f32 rounding, finite gradients (the self pair's floor).
            let r32 = Var::from_tensor(&r.to_dtype(DType::F32).unwrap()).unwrap();
            let f32s = f.factor_tensor(&r32, rc).unwrap().unwrap();
            let v32: Vec<f32> = f32s.flatten_all().unwrap().to_vec1().unwrap();
            for (a, b) in v32.iter().zip(&values) {
                assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
            }
            let g32 = f32s.sum_all().unwrap().backward().unwrap();
            let g32: Vec<f32> = g32
                .get(&r32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(g32.iter().all(|v| v.is_finite()) && g32[..3].iter().all(|v| *v == 0.0));
        }
    }

    #[test]
    fn parsing_and_errors() {
        let parse = |t: &str| CutoffFunction::from_value(&serde_json::from_str(t).unwrap());
        assert_eq!(parse(r#""step""#).unwrap(), CutoffFunction::Step);
        assert_eq!(parse(r#"{"step":{}}"#).unwrap(), CutoffFunction::Step);
        let c = parse(r#"{"shifted_cosine":{"width":0.5}}"#).unwrap();
        assert_eq!(c, CutoffFunction::ShiftedCosine { width: 0.5 });
        assert_eq!(CutoffFunction::from_value(&c.to_value()).unwrap(), c);
        let e = parse(r#"{"gaussian":{"width":0.5}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown cutoff function 'gaussian'"), "{e}");
        assert!(e.contains("step, shifted_cosine"), "{e}");
        let e = parse(r#"{"shifted_cosine":{}}"#).unwrap_err().to_string();
        assert!(e.contains("cutoff_function.shifted_cosine.width"), "{e}");
        let e = parse(r#"{"shifted_cosine":{"widht":0.5}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cutoff_function.shifted_cosine.widht"), "{e}");
        let e = parse(r#"{"shifted_cosine":{"width":"a"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a number"), "{e}");
        assert!(parse(r#""shifted_cosine""#).is_err());
        assert!(parse("3").is_err());
        for (w, what) in [
            (0.0, "positive"),
            (-1.0, "positive"),
            (f64::NAN, "positive"),
            (4.5, "exceeds"),
        ] {
            let e = CutoffFunction::ShiftedCosine { width: w }
                .validate(4.0)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("cutoff_function.shifted_cosine.width") && e.contains(what),
                "{e}"
            );
        }
        assert!(CutoffFunction::ShiftedCosine { width: 4.0 }
            .validate(4.0)
            .is_ok());
    }
}
