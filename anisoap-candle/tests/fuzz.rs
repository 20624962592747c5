//! Fuzz harness (proptest-based): the XYZ parser, the hyperparameter parsers, the basis
//! constants, both backends and the NPY reader must return errors, never panic, on arbitrary
//! and mutated inputs. `FUZZ_CASES=N` sets the cases per target (default 3000); the corpus of
//! seeds is the small set of valid inputs below plus the bundled example.
//!
//! The targets run only in the `fuzz` cargo profile (release optimisation with overflow checks
//! and debug assertions on, so a wrapping size is a crash, not a silent wrap):
//! `cargo test --profile fuzz -p anisoap-candle --test fuzz` (scripts/test.sh runs it; in other
//! profiles each target prints that it is skipped and why).
//!
//! Long run (reported in the README, log in results/fuzz/):
//! `FUZZ_CASES=1000000 cargo test --profile fuzz -p anisoap-candle --test fuzz -- --nocapture`.

use anisoap_candle::basis::Basis;
use anisoap_candle::hypers::{MaxRadial, RadialBasis, RotationType};
use anisoap_candle::{npy, xyz, Backend, BatchedOptions, Calculator, Hypers, Quantity};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// False (with the reason on stderr) outside the `fuzz` profile.
fn fuzz_profile(target: &str) -> bool {
    if cfg!(debug_assertions) {
        return true;
    }
    eprintln!(
        "SKIPPED fuzz target {target}: it needs overflow checks and debug assertions; run \
         `cargo test --profile fuzz -p anisoap-candle --test fuzz` (scripts/test.sh does)"
    );
    false
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

const SEED_XYZ: &str = "2\nLattice=\"6 0 0 0 6 0 0 0 6\" Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1 pbc=\"T T T\"\nH 0.1 0.2 0.3 1 0 0 0 1 1 2\nC 1.5 0.2 0.3 0.5 0.5 0.5 0.5 1 1.2 3\n";

const SEED_TOML: &str = "max_angular = 3\nradial_basis_name = \"gto\"\ncutoff_radius = 4.0\nradial_gaussian_width = 1.2\nmax_radial = [2, 1, 1, 0]\n";

const SEED_JSON: &str = r#"{"max_angular": 2, "radial_basis_name": "monomial", "cutoff_radius": 3.5, "max_radial": 1, "subtract_center_contribution": true}"#;

/// Byte-level mutation: (position, byte, kind) triples replace, delete or insert bytes.
fn mutate(seed: &str, ops: &[(usize, u8, u8)]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for &(pos, byte, kind) in ops {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let p = pos % bytes.len();
        match kind % 3 {
            0 => bytes[p] = byte,
            1 => {
                bytes.remove(p);
            }
            _ => bytes.insert(p, byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"0123456789 .-eE\n\"=:[]TFRSIL,".to_vec()),
    ]
}

fn ops() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), byte(), any::<u8>()), 1..10)
}

/// Runs `target` on `cases()` generated inputs and returns the number of executions.
fn fuzz<S: Strategy>(name: &str, strategy: S, target: impl Fn(S::Value)) -> usize
where
    S::Value: std::fmt::Debug,
{
    fuzz_n(name, cases(), strategy, target)
}

/// Like [`fuzz`] with an explicit number of cases.
fn fuzz_n<S: Strategy>(name: &str, n: u32, strategy: S, target: impl Fn(S::Value)) -> usize
where
    S::Value: std::fmt::Debug,
{
    let executions = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| {
            executions.fetch_add(1, Ordering::Relaxed);
            target(value);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let n = executions.load(Ordering::Relaxed);
    eprintln!("fuzz {name}: {n} executions, 0 crashes");
    n
}

#[test]
fn xyz_parser_never_panics() {
    if !fuzz_profile("xyz_parser_never_panics") {
        return;
    }
    let path = Path::new("<fuzz>");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ellipsoids.xyz"),
    )
    .unwrap();
    let first_frame: String = example.lines().take(8).collect::<Vec<_>>().join("\n");
    let n = fuzz("xyz mutated seed", ops(), |ops| {
        let _ = xyz::read_xyz_str(&mutate(SEED_XYZ, &ops), path);
    }) + fuzz("xyz mutated example", ops(), |ops| {
        let _ = xyz::read_xyz_str(&mutate(&first_frame, &ops), path);
    }) + fuzz("xyz arbitrary", "\\PC{0,300}", |text: String| {
        let _ = xyz::read_xyz_str(&text, path);
    });
    assert!(n >= 3 * cases() as usize);
}

#[test]
fn config_parsers_never_panic() {
    if !fuzz_profile("config_parsers_never_panic") {
        return;
    }
    let n = fuzz("toml mutated", ops(), |ops| {
        let _ = Hypers::from_toml_str(&mutate(SEED_TOML, &ops));
    }) + fuzz("json mutated", ops(), |ops| {
        let _ = Hypers::from_json_str(&mutate(SEED_JSON, &ops));
    }) + fuzz("json arbitrary", "\\PC{0,200}", |text: String| {
        let _ = Hypers::from_json_str(&text);
    });
    assert!(n >= 3 * cases() as usize);
}

/// Parse → validate → compute on mutated inputs: every failure is an `Err`, never a panic.
#[test]
fn pipeline_never_panics() {
    if !fuzz_profile("pipeline_never_panics") {
        return;
    }
    let hypers = Hypers::gto(2, 3.0, 1.0);
    let calculator = Calculator::new(&hypers, Backend::Reference).unwrap();
    let runs = AtomicUsize::new(0);
    fuzz("pipeline mutated", ops(), |ops| {
        if let Ok(frames) = xyz::read_xyz_str(&mutate(SEED_XYZ, &ops), Path::new("<fuzz>")) {
            if frames.iter().map(|f| f.len()).sum::<usize>() <= 50 {
                runs.fetch_add(1, Ordering::Relaxed);
                let _ = calculator.compute(&frames, Quantity::PowerSpectrumMean, &mut |_, _| {});
            }
        }
    });
    assert!(
        runs.load(Ordering::Relaxed) > 0,
        "no mutated input reached the calculator"
    );
}

/// Hypers of every shape, including out-of-range and extreme values, straight into
/// `Basis::new` (validation, Löwdin, tables): errors only, never a panic or a huge allocation.
#[test]
fn basis_constants_never_panic() {
    if !fuzz_profile("basis_constants_never_panic") {
        return;
    }
    let extreme = prop_oneof![
        Just(f64::MIN_POSITIVE),
        Just(1e-300),
        Just(1e300),
        Just(f64::INFINITY),
        Just(f64::NAN),
        Just(-1.0),
        Just(0.0),
        0.01f64..100.0,
    ];
    let max_radial = prop_oneof![
        Just(MaxRadial::Default),
        // Mostly small bases (one of degree 40 takes tens of ms), some past every cap.
        prop_oneof![
            8 => 0usize..6,
            1 => 21usize..30,
            1 => prop_oneof![Just(usize::MAX), Just(1usize << 62)],
        ]
        .prop_map(MaxRadial::Uniform),
        prop::collection::vec(
            prop_oneof![8 => 0usize..6, 1 => 21usize..25, 1 => Just(usize::MAX)],
            0..12
        )
        .prop_map(MaxRadial::PerChannel),
    ];
    let strategy = (
        // Valid bases stay small (one of lmax 20 and degree 40 takes seconds and ~1 GB to
        // build: legal, but not a fuzzing target); out-of-range values test the caps.
        prop_oneof![8 => 0usize..9, 1 => 21usize..40, 1 => Just(usize::MAX)],
        any::<bool>(),
        extreme.clone(),
        extreme.clone(),
        max_radial,
        prop_oneof![Just(0.0), extreme.clone()],
        prop_oneof![Just(1e-8), extreme],
    );
    let built = AtomicUsize::new(0);
    // A valid basis of high degree takes milliseconds to build: a tenth of the cases.
    fuzz_n(
        "basis constants",
        (cases() / 10).max(300),
        strategy,
        |(max_angular, gto, cutoff, width, max_radial, rcond, tol)| {
            let hypers = Hypers {
                max_angular,
                radial_basis: if gto {
                    RadialBasis::Gto
                } else {
                    RadialBasis::Monomial
                },
                cutoff_radius: cutoff,
                radial_gaussian_width: gto.then_some(width),
                max_radial,
                subtract_center_contribution: false,
                rotation_key: "c_q".into(),
                rotation_type: RotationType::Quaternion,
                basis_rcond: rcond,
                basis_tol: tol,
                cutoff_function: Default::default(),
            };
            if let Ok(basis) = Basis::new(&hypers) {
                built.fetch_add(1, Ordering::Relaxed);
                assert!(basis.radial_norms.iter().all(|v| v.is_finite()));
            }
        },
    );
    assert!(
        built.load(Ordering::Relaxed) > 0,
        "no fuzzed hypers built a basis"
    );
}

/// Parse → validate → compute with the batched backend (the CLI default: fused CPU kernel,
/// f64 and f32, several output kinds): errors only, and what is returned is finite.
#[test]
fn batched_pipeline_never_panics() {
    if !fuzz_profile("batched_pipeline_never_panics") {
        return;
    }
    let hypers = Hypers::gto(2, 3.0, 1.0);
    let f64_calc = Calculator::new(&hypers, Backend::Batched(BatchedOptions::cpu_f64())).unwrap();
    let f32_calc = Calculator::new(
        &hypers,
        Backend::Batched(BatchedOptions {
            dtype: candle_core::DType::F32,
            chunk_pairs: 3,
            ..BatchedOptions::cpu_f64()
        }),
    )
    .unwrap();
    let runs = AtomicUsize::new(0);
    fuzz(
        "batched pipeline mutated",
        (ops(), 0u8..6),
        |(ops, pick)| {
            if let Ok(frames) = xyz::read_xyz_str(&mutate(SEED_XYZ, &ops), Path::new("<fuzz>")) {
                if frames.iter().map(|f| f.len()).sum::<usize>() <= 50 {
                    runs.fetch_add(1, Ordering::Relaxed);
                    let calculator = if pick % 2 == 0 { &f64_calc } else { &f32_calc };
                    let quantity = match pick / 2 {
                        0 => Quantity::PowerSpectrumMean,
                        1 => Quantity::PowerSpectrumPerCenter,
                        _ => Quantity::Density,
                    };
                    if let Ok(features) = calculator.compute(&frames, quantity, &mut |_, _| {}) {
                        assert!(features.values.data.iter().all(|v| v.is_finite()));
                    }
                }
            }
        },
    );
    assert!(
        runs.load(Ordering::Relaxed) > 0,
        "no mutated input reached the calculator"
    );
}

/// A valid `.npy` (2×3 float64) as bytes.
fn seed_npy() -> Vec<u8> {
    npy_with_shape("(2, 3)")
}

/// A `.npy` with the given shape text in its header and six float64 values as data.
fn npy_with_shape(shape: &str) -> Vec<u8> {
    let header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    let mut padded = header;
    while (10 + padded.len() + 1) % 64 != 0 {
        padded.push(' ');
    }
    padded.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    for v in [1.0f64, -2.0, 3.5, 0.0, 1e-3, 7.0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// The NPY reader behind `compare` and the tests, on mutated and arbitrary bytes, including
/// headers whose shapes multiply past `usize::MAX`.
#[test]
fn npy_reader_never_panics() {
    if !fuzz_profile("npy_reader_never_panics") {
        return;
    }
    let path = Path::new("<fuzz>.npy");
    let seed = seed_npy();
    assert_eq!(npy::parse_npy(&seed, path).unwrap().shape, vec![2, 3]);
    let n = fuzz(
        "npy mutated",
        prop::collection::vec((any::<usize>(), byte(), any::<u8>()), 1..10),
        |ops| {
            let mut bytes = seed.clone();
            for (pos, b, kind) in ops {
                let p = pos % bytes.len().max(1);
                match kind % 3 {
                    0 if !bytes.is_empty() => bytes[p] = b,
                    1 if !bytes.is_empty() => {
                        bytes.remove(p);
                    }
                    _ => bytes.insert(p.min(bytes.len()), b),
                }
            }
            let _ = npy::parse_npy(&bytes, path);
        },
    ) + fuzz(
        "npy huge shapes",
        (any::<u64>(), any::<u64>(), 0usize..3),
        |(a, b, k)| {
            let shape = match k {
                0 => format!("({a}, {b})"),
                1 => format!("({a}, {b}, {a})"),
                _ => format!("({a},)"),
            };
            let _ = npy::parse_npy(&npy_with_shape(&shape), path);
        },
    ) + fuzz(
        "npy arbitrary",
        prop::collection::vec(any::<u8>(), 0..200),
        |bytes| {
            let mut with_magic = b"\x93NUMPY".to_vec();
            with_magic.extend(bytes);
            let _ = npy::parse_npy(&with_magic, path);
        },
    );
    assert!(n >= 3 * cases() as usize);
}
