//! Hyperparameters of the descriptor, with the original AniSOAP's names, meanings and checks.
//!
//! Values are read from JSON or TOML. Integer-versus-float matters here, as in the original:
//! `cutoff_radius = 4` (an integer) is refused, `cutoff_radius = 4.0` is accepted.

pub use crate::cutoff::CutoffFunction;
use crate::error::{Error, Result};
use serde_json::Value;

/// Radial basis of the expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadialBasis {
    /// Gaussian-type orbitals `r^d exp(-r²/2σ²)`.
    Gto,
    /// Monomials `r^d` normalised on `[0, cutoff_radius]`.
    Monomial,
}

/// How the number of radial functions per angular channel is chosen (`max_radial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaxRadial {
    /// `None` in the original: `N_l = (max_angular - l) / 2 + 1`.
    Default,
    /// An integer `k`: `N_l = k + 1` for every `l`.
    Uniform(usize),
    /// A list: `N_l = list[l] + 1`; the list has at least `max_angular + 1` entries.
    PerChannel(Vec<usize>),
}

/// Representation of particle orientations in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationType {
    /// Quaternion `(w, x, y, z)`, scalar first, need not be unit length.
    Quaternion,
    /// 3×3 rotation matrix, row-major, body → lab.
    Matrix,
}

/// All hyperparameters of `EllipsoidalDensityProjection`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypers {
    /// Highest angular channel `l`.
    pub max_angular: usize,
    /// Radial basis (`radial_basis_name`).
    pub radial_basis: RadialBasis,
    /// Neighbour cutoff radius (strict: pairs at exactly this distance are excluded).
    pub cutoff_radius: f64,
    /// Width σ of the GTO radial Gaussian; `None` for the monomial basis.
    pub radial_gaussian_width: Option<f64>,
    /// Number of radial functions per channel.
    pub max_radial: MaxRadial,
    /// Drop the self pair `(i, i)` from each centre's density.
    pub subtract_center_contribution: bool,
    /// Name of the per-particle orientation column.
    pub rotation_key: String,
    /// How orientations are stored.
    pub rotation_type: RotationType,
    /// Eigenvalues of the radial overlap at or below this are dropped in `S^{-1/2}`.
    pub basis_rcond: f64,
    /// Tolerance of the check that `S^{-1/2}` reproduces `S`.
    pub basis_tol: f64,
    /// Weight of each neighbour pair by its distance: the original's step (default) or the
    /// opt-in smooth [`CutoffFunction::ShiftedCosine`] (a departure from the original).
    pub cutoff_function: CutoffFunction,
}

/// Largest `max_angular` accepted.
pub const MAX_ANGULAR: usize = 20;

/// Largest polynomial degree `max_l (l + 2 N_l - 2)` of the basis accepted. It also bounds each
/// `max_radial` entry (`N_l - 1 <= MAX_DEGREE / 2`), so every size derived from the hypers
/// (monomials, coefficients, Löwdin matrices) is small and computed without overflow.
pub const MAX_DEGREE: usize = 40;

/// Names of all keys accepted in a hypers file.
pub const KNOWN_KEYS: [&str; 12] = [
    "max_angular",
    "radial_basis_name",
    "cutoff_radius",
    "radial_gaussian_width",
    "max_radial",
    "subtract_center_contribution",
    "rotation_key",
    "rotation_type",
    "basis_rcond",
    "basis_tol",
    "compute_gradients",
    "cutoff_function",
];

impl Hypers {
    /// GTO hypers with the original's defaults for everything else (`rotation_key = "c_q"`).
    pub fn gto(max_angular: usize, cutoff_radius: f64, width: f64) -> Self {
        Hypers {
            max_angular,
            radial_basis: RadialBasis::Gto,
            cutoff_radius,
            radial_gaussian_width: Some(width),
            max_radial: MaxRadial::Default,
            subtract_center_contribution: false,
            rotation_key: "c_q".into(),
            rotation_type: RotationType::Quaternion,
            basis_rcond: 0.0,
            basis_tol: 1e-8,
            cutoff_function: CutoffFunction::Step,
        }
    }

    /// Monomial hypers with the original's defaults for everything else.
    pub fn monomial(max_angular: usize, cutoff_radius: f64) -> Self {
        Hypers {
            radial_basis: RadialBasis::Monomial,
            radial_gaussian_width: None,
            ..Hypers::gto(max_angular, cutoff_radius, 1.0)
        }
    }

    /// Number of radial functions `N_l` for each `l = 0..=max_angular`. Saturates instead of
    /// overflowing on out-of-range hypers (which [`Hypers::validate`] refuses); a per-channel
    /// list shorter than `max_angular + 1` (also refused) gives `N_l = 1` for missing entries.
    pub fn n_radial(&self) -> Vec<usize> {
        (0..=self.max_angular)
            .map(|l| match &self.max_radial {
                MaxRadial::Default => (self.max_angular - l) / 2 + 1,
                MaxRadial::Uniform(k) => k.saturating_add(1),
                MaxRadial::PerChannel(list) => list.get(l).map_or(1, |k| k.saturating_add(1)),
            })
            .collect()
    }

    /// The hypers as a JSON object with the original's keys, such that
    /// [`Hypers::from_value`] gives them back (floats stay floats).
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("max_angular".into(), self.max_angular.into());
        map.insert(
            "radial_basis_name".into(),
            match self.radial_basis {
                RadialBasis::Gto => "gto",
                RadialBasis::Monomial => "monomial",
            }
            .into(),
        );
        map.insert("cutoff_radius".into(), self.cutoff_radius.into());
        if let Some(w) = self.radial_gaussian_width {
            map.insert("radial_gaussian_width".into(), w.into());
        }
        match &self.max_radial {
            MaxRadial::Default => {}
            MaxRadial::Uniform(k) => {
                map.insert("max_radial".into(), (*k).into());
            }
            MaxRadial::PerChannel(list) => {
                map.insert("max_radial".into(), list.clone().into());
            }
        }
        map.insert(
            "subtract_center_contribution".into(),
            self.subtract_center_contribution.into(),
        );
        map.insert("rotation_key".into(), self.rotation_key.clone().into());
        map.insert(
            "rotation_type".into(),
            match self.rotation_type {
                RotationType::Quaternion => "quaternion",
                RotationType::Matrix => "matrix",
            }
            .into(),
        );
        map.insert("basis_rcond".into(), self.basis_rcond.into());
        map.insert("basis_tol".into(), self.basis_tol.into());
        // Only when it departs from the original, so that default hypers (and the metadata
        // of outputs written with them) read as before.
        if !self.cutoff_function.is_step() {
            map.insert("cutoff_function".into(), self.cutoff_function.to_value());
        }
        Value::Object(map)
    }

    /// Parses a JSON text (keys as in the original's constructor).
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::Hypers(format!("not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses a TOML text (keys as in the original's constructor).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let value: toml::Value =
            toml::from_str(text).map_err(|e| Error::Hypers(format!("not valid TOML: {e}")))?;
        Self::from_value(&toml_to_json(value))
    }

    /// Builds and validates hypers from a JSON object, running the original's checks in its
    /// order and then a few of our own (positivity, finiteness).
    pub fn from_value(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::Hypers("expected a table/object of hyperparameters".into()))?;
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(Error::Hypers(format!(
                "unknown key '{unknown}'; known keys: {}",
                KNOWN_KEYS.join(", ")
            )));
        }
        let get = |k: &str| obj.get(k).filter(|v| !v.is_null());

        if let Some(v) = get("compute_gradients") {
            match v.as_bool() {
                Some(false) => {}
                Some(true) => {
                    return Err(Error::Hypers(
                        "compute_gradients=true is not implemented by the original AniSOAP; \
                         use the library's differentiable API for gradients"
                            .into(),
                    ))
                }
                None => return Err(Error::Hypers("compute_gradients must be a boolean".into())),
            }
        }
        let max_angular = match get("max_angular") {
            Some(v) => v.as_u64().ok_or_else(|| {
                Error::Hypers(format!(
                    "max_angular must be a non-negative integer, got {v}"
                ))
            })? as usize,
            None => return Err(Error::Hypers("missing required key 'max_angular'".into())),
        };
        if max_angular > MAX_ANGULAR {
            return Err(Error::Hypers(format!(
                "max_angular={max_angular} is too large (at most {MAX_ANGULAR} is supported)"
            )));
        }
        let cutoff_radius = match get("cutoff_radius") {
            None => return Err(Error::Hypers("missing required key 'cutoff_radius'".into())),
            Some(v) if v.is_i64() || v.is_u64() => {
                return Err(Error::Hypers(format!(
                    "r_cut is set as an integer ({v}), which could cause overflow errors; \
                     write it as a float, e.g. {v}.0"
                )))
            }
            Some(v) => v
                .as_f64()
                .ok_or_else(|| Error::Hypers(format!("cutoff_radius must be a number, got {v}")))?,
        };
        let basis_name = match get("radial_basis_name") {
            None => "gto".to_string(),
            Some(v) => v
                .as_str()
                .ok_or_else(|| {
                    Error::Hypers(format!("radial_basis_name must be a string, got {v}"))
                })?
                .to_string(),
        };
        let width = get("radial_gaussian_width");
        let (radial_basis, radial_gaussian_width) = match basis_name.to_lowercase().as_str() {
            "gto" => match width {
                None => {
                    return Err(Error::Hypers(
                        "Gaussian width must be provided with GTO basis (radial_gaussian_width)"
                            .into(),
                    ))
                }
                Some(v) if v.is_i64() || v.is_u64() => {
                    return Err(Error::Hypers(format!(
                        "radial_gaussian_width is set as an integer ({v}), which could cause \
                         overflow errors; write it as a float, e.g. {v}.0"
                    )))
                }
                Some(v) => (
                    RadialBasis::Gto,
                    Some(v.as_f64().ok_or_else(|| {
                        Error::Hypers(format!("radial_gaussian_width must be a number, got {v}"))
                    })?),
                ),
            },
            "monomial" => {
                if width.is_some() {
                    return Err(Error::Hypers(
                        "Gaussian width can only be provided with GTO basis".into(),
                    ));
                }
                (RadialBasis::Monomial, None)
            }
            other => {
                return Err(Error::Hypers(format!(
                    "{other} is not an implemented basis. Try 'monomial' or 'gto'"
                )))
            }
        };
        let max_radial = match get("max_radial") {
            None => MaxRadial::Default,
            Some(Value::Bool(b)) => MaxRadial::Uniform(usize::from(*b)),
            Some(v) if v.is_u64() => MaxRadial::Uniform(radial_count(v.as_u64(), "max_radial")?),
            Some(Value::Array(items)) => {
                if items.len() < max_angular + 1 {
                    return Err(Error::Hypers(format!(
                        "If you specify a list of number of radial components, this list must \
                         be of length {} (max_angular + 1), got {}",
                        max_angular + 1,
                        items.len()
                    )));
                }
                let mut list = Vec::with_capacity(items.len());
                for (l, item) in items.iter().enumerate() {
                    match item.as_u64() {
                        Some(k) if item.is_u64() => {
                            list.push(radial_count(Some(k), &format!("max_radial[{l}]"))?)
                        }
                        _ => {
                            return Err(Error::Hypers(format!(
                                "max_radial[{l}] must be a non-negative integer, got {item}"
                            )))
                        }
                    }
                }
                MaxRadial::PerChannel(list)
            }
            Some(v) => {
                return Err(Error::Hypers(format!(
                    "max_radial must be None, a non-negative integer or a list of integers, got {v}"
                )))
            }
        };
        let rotation_type = match get("rotation_type").map(|v| v.as_str()) {
            None | Some(Some("quaternion")) => RotationType::Quaternion,
            Some(Some("matrix")) => RotationType::Matrix,
            Some(other) => {
                return Err(Error::Hypers(format!(
                    "We have only implemented transforming quaternions (rotation_type = \
                     'quaternion') and rotation matrices (rotation_type = 'matrix'); got {}",
                    other
                        .map(str::to_string)
                        .unwrap_or_else(|| "a non-string".into())
                )))
            }
        };
        let rotation_key = match get("rotation_key") {
            None => "c_q".to_string(),
            Some(v) => v
                .as_str()
                .ok_or_else(|| Error::Hypers(format!("rotation_key must be a string, got {v}")))?
                .to_string(),
        };
        let subtract_center_contribution = match get("subtract_center_contribution") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| {
                Error::Hypers(format!(
                    "subtract_center_contribution must be a boolean, got {v}"
                ))
            })?,
        };
        let number = |k: &str, default: f64| -> Result<f64> {
            match get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| Error::Hypers(format!("{k} must be a number, got {v}"))),
            }
        };
        let hypers = Hypers {
            max_angular,
            radial_basis,
            cutoff_radius,
            radial_gaussian_width,
            max_radial,
            subtract_center_contribution,
            rotation_key,
            rotation_type,
            basis_rcond: number("basis_rcond", 0.0)?,
            basis_tol: number("basis_tol", 1e-8)?,
            cutoff_function: match get("cutoff_function") {
                None => CutoffFunction::Step,
                Some(v) => CutoffFunction::from_value(v)?,
            },
        };
        hypers.validate()?;
        Ok(hypers)
    }

    /// Checks value ranges the original leaves unchecked (positivity, finiteness, sizes).
    pub fn validate(&self) -> Result<()> {
        if !(self.cutoff_radius.is_finite() && self.cutoff_radius > 0.0) {
            return Err(Error::Hypers(format!(
                "cutoff_radius must be positive and finite, got {}",
                self.cutoff_radius
            )));
        }
        if let Some(w) = self.radial_gaussian_width {
            if !(w.is_finite() && w > 0.0) {
                return Err(Error::Hypers(format!(
                    "radial_gaussian_width must be positive and finite, got {w}"
                )));
            }
        }
        if self.max_angular > MAX_ANGULAR {
            return Err(Error::Hypers(format!(
                "max_angular={} is too large (at most {MAX_ANGULAR} is supported)",
                self.max_angular
            )));
        }
        match &self.max_radial {
            MaxRadial::Default => {}
            MaxRadial::Uniform(k) => {
                radial_count(Some(*k as u64), "max_radial")?;
            }
            MaxRadial::PerChannel(list) => {
                if list.len() < self.max_angular + 1 {
                    return Err(Error::Hypers(format!(
                        "max_radial list must have at least max_angular + 1 = {} entries",
                        self.max_angular + 1
                    )));
                }
                for (l, &k) in list.iter().enumerate() {
                    radial_count(Some(k as u64), &format!("max_radial[{l}]"))?;
                }
            }
        }
        let degree = self.max_degree();
        if degree > MAX_DEGREE {
            return Err(Error::Hypers(format!(
                "the basis needs polynomial degree {degree} (max over l of l + 2*max_radial_l); \
                 at most {MAX_DEGREE} is supported"
            )));
        }
        if !(self.basis_tol.is_finite() && self.basis_rcond.is_finite()) {
            return Err(Error::Hypers(
                "basis_rcond and basis_tol must be finite".into(),
            ));
        }
        self.cutoff_function.validate(self.cutoff_radius)?;
        Ok(())
    }

    /// Highest polynomial degree the basis needs: `max_l (l + 2 N_l - 2)` (saturating, so
    /// out-of-range hypers give a huge degree that [`Hypers::validate`] refuses, never a
    /// wrapped small one).
    pub fn max_degree(&self) -> usize {
        self.n_radial()
            .iter()
            .enumerate()
            .map(|(l, &n)| l.saturating_add(n.saturating_mul(2)).saturating_sub(2))
            .max()
            .unwrap_or(0)
    }
}

/// Checks one `max_radial` value (`N_l - 1`) against the cap `MAX_DEGREE / 2`.
fn radial_count(value: Option<u64>, name: &str) -> Result<usize> {
    let cap = (MAX_DEGREE / 2) as u64;
    match value {
        Some(k) if k <= cap => Ok(k as usize),
        Some(k) => Err(Error::Hypers(format!(
            "{name}={k} is too large: at most {cap} (the basis degree l + 2*max_radial is \
             capped at {MAX_DEGREE})"
        ))),
        None => Err(Error::Hypers(format!(
            "{name} must be a non-negative integer"
        ))),
    }
}

/// Converts a TOML value to JSON, keeping the integer/float distinction.
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Hypers::from_json_str(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_reference_style_json() {
        let h = Hypers::from_json_str(
            r#"{"max_angular": 4, "radial_basis_name": "gto", "cutoff_radius": 4.0,
                "radial_gaussian_width": 1.2, "rotation_key": "c_q", "rotation_type": "quaternion"}"#,
        )
        .unwrap();
        assert_eq!(h.max_angular, 4);
        assert_eq!(h.radial_basis, RadialBasis::Gto);
        assert_eq!(h.n_radial(), vec![3, 2, 2, 1, 1]);
        assert_eq!(h.max_degree(), 4);
    }

    #[test]
    fn toml_keeps_int_float_distinction() {
        let ok = Hypers::from_toml_str(
            "max_angular = 3\nradial_basis_name = 'monomial'\ncutoff_radius = 5.0\nmax_radial = [2, 1, 1, 0]",
        )
        .unwrap();
        assert_eq!(ok.n_radial(), vec![3, 2, 2, 1]);
        assert_eq!(ok.max_degree(), 4);
        let bad = Hypers::from_toml_str(
            "max_angular = 3\nradial_basis_name = 'monomial'\ncutoff_radius = 5",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("r_cut is set as an integer"), "{bad}");
    }

    #[test]
    fn original_errors() {
        assert!(
            err(r#"{"max_angular":2,"cutoff_radius":4,"radial_gaussian_width":1.0}"#)
                .contains("integer")
        );
        assert!(err(r#"{"max_angular":2,"cutoff_radius":4.0}"#)
            .contains("Gaussian width must be provided"));
        assert!(
            err(r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1}"#)
                .contains("radial_gaussian_width is set as an integer")
        );
        assert!(err(r#"{"max_angular":2,"cutoff_radius":4.0,"radial_basis_name":"monomial","radial_gaussian_width":1.0}"#)
            .contains("can only be provided with GTO"));
        assert!(err(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_basis_name":"GTO_primitive"}"#
        )
        .contains("not an implemented basis"));
        assert!(err(r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"max_radial":[1,1]}"#)
            .contains("length 3"));
        assert!(err(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"max_radial":1.5}"#
        )
        .contains("max_radial"));
        assert!(err(r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"rotation_type":"euler"}"#)
            .contains("rotation_type"));
        assert!(err(r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"compute_gradients":true}"#)
            .contains("not implemented"));
        assert!(
            err(r#"{"max_angular":2,"cutoff_radius":-4.0,"radial_gaussian_width":1.0}"#)
                .contains("positive")
        );
        assert!(err(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"cutof":1.0}"#
        )
        .contains("unknown key 'cutof'"));
    }

    #[test]
    fn sizes_are_capped_without_overflow() {
        // 2^63 once wrapped `l + 2 N_l - 2` past the degree check (issue 9).
        for k in ["9223372036854775808", "18446744073709551615", "21"] {
            let e = err(&format!(
                r#"{{"max_angular":0,"cutoff_radius":3.0,"radial_gaussian_width":1.0,"max_radial":{k}}}"#
            ));
            assert!(e.contains("is too large"), "{k}: {e}");
        }
        let e = err(
            r#"{"max_angular":1,"cutoff_radius":3.0,"radial_gaussian_width":1.0,"max_radial":[1,4294967296]}"#,
        );
        assert!(e.contains("max_radial[1]=4294967296 is too large"), "{e}");
        // Built in code, bypassing the parser: validate() refuses it, nothing wraps.
        let mut h = Hypers::gto(2, 3.0, 1.0);
        h.max_radial = MaxRadial::Uniform(usize::MAX);
        assert!(h.max_degree() > usize::MAX / 2);
        assert!(h.validate().unwrap_err().to_string().contains("too large"));
        h.max_radial = MaxRadial::PerChannel(vec![1]);
        assert!(h.validate().unwrap_err().to_string().contains("at least"));
        h.max_radial = MaxRadial::Default;
        h.max_angular = usize::MAX;
        assert!(h
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_angular"));
        // The largest accepted degree is 40.
        let mut ok = Hypers::monomial(0, 3.0);
        ok.max_radial = MaxRadial::Uniform(20);
        assert_eq!(ok.max_degree(), 40);
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn to_value_round_trips() {
        for text in [
            r#"{"max_angular":3,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"max_radial":[2,1,1,0],"subtract_center_contribution":true}"#,
            r#"{"max_angular":2,"cutoff_radius":5.0,"radial_basis_name":"monomial","max_radial":2,"rotation_type":"matrix","rotation_key":"R"}"#,
            r#"{"max_angular":2,"cutoff_radius":5.0,"radial_gaussian_width":1.0,"cutoff_function":{"shifted_cosine":{"width":0.5}}}"#,
        ] {
            let h = Hypers::from_json_str(text).unwrap();
            assert_eq!(Hypers::from_value(&h.to_value()).unwrap(), h);
        }
    }

    #[test]
    fn cutoff_function_in_toml_and_json() {
        let h = Hypers::from_toml_str(
            "max_angular = 2\ncutoff_radius = 4.0\nradial_gaussian_width = 1.0\n\
             cutoff_function = { shifted_cosine = { width = 0.5 } }",
        )
        .unwrap();
        assert_eq!(
            h.cutoff_function,
            CutoffFunction::ShiftedCosine { width: 0.5 }
        );
        // Absent: the original's step, and to_value leaves the key out.
        let d = Hypers::from_json_str(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0}"#,
        )
        .unwrap();
        assert_eq!(d.cutoff_function, CutoffFunction::Step);
        assert!(d.to_value().get("cutoff_function").is_none());
        let e = err(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"cutoff_function":{"shifted_cosine":{"width":5.0}}}"#,
        );
        assert!(
            e.contains("cutoff_function.shifted_cosine.width = 5 exceeds cutoff_radius"),
            "{e}"
        );
        let e = err(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"cutoff_function":"cosine"}"#,
        );
        assert!(
            e.contains("known cutoff functions: step, shifted_cosine"),
            "{e}"
        );
    }

    #[test]
    fn max_radial_forms() {
        let h = Hypers::from_json_str(
            r#"{"max_angular":2,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"max_radial":3}"#,
        )
        .unwrap();
        assert_eq!(h.n_radial(), vec![4, 4, 4]);
        assert_eq!(h.max_degree(), 8);
        let h = Hypers::from_json_str(
            r#"{"max_angular":1,"cutoff_radius":4.0,"radial_gaussian_width":1.0,"max_radial":true}"#,
        )
        .unwrap();
        assert_eq!(h.n_radial(), vec![2, 2]);
    }
}
