//! AniSOAP descriptors for ellipsoidal particles, as batched Candle tensor ops.
//!
//! The crate computes the anisotropic SOAP density coefficients and power spectrum of
//! Lin et al. (J. Chem. Phys. 161, 074112, 2024), reproducing the original Python AniSOAP 0.1.1
//! to float64 rounding. Two backends share the same constants:
//! [`Backend::Reference`] (plain f64, pair by pair, the oracle) and [`Backend::Batched`]
//! (Candle tensor ops on CPU, CUDA or Metal, f64 or f32).
//!
//! ```
//! use anisoap_candle::{Backend, BatchedOptions, Calculator, Hypers};
//! use anisoap_candle::synthetic::{SyntheticSpec, SystemKind, generate};
//!
//! let spec = SyntheticSpec { kind: SystemKind::EllipsoidLiquid, n_particles: 8, n_species: 1,
//!     periodic: true, density: 0.05, seed: 1 };
//! let frames = generate(&spec, 2);
//! let hypers = Hypers::gto(4, 4.0, 1.2);
//! let calculator = Calculator::new(&hypers, Backend::Batched(BatchedOptions::cpu_f64())).unwrap();
//! let features = calculator.power_spectrum(&frames).unwrap();
//! assert_eq!(features.rows, 2);
//! ```

pub mod backend;
pub mod basis;
pub mod batched;
pub mod counting;
pub mod cuda_search;
pub mod cutoff;
pub mod descriptor;
pub mod device;
pub mod differentiable;
pub mod differentiable_batch;
pub mod elements;
pub mod error;
pub mod frame;
pub mod fused_cuda;
pub mod fused_density;
pub mod hypers;
pub mod labels;
pub(crate) mod lines;
pub mod neighbors;
pub mod npy;
pub mod pipeline;
pub mod reference;
pub mod rotation;
pub mod stream;
pub mod synthetic;
pub mod system;
pub mod xyz;

pub use batched::BatchedOptions;
pub use descriptor::{Backend, Calculator, Features, Matrix, Quantity, RowBlock};
pub use error::{Error, Result};
pub use frame::{Frame, PerParticle};
pub use hypers::Hypers;
