//! Fuzz harness (proptest-based, runs in CI for a bounded number of cases): the XYZ parser, the
//! hyperparameter parsers and the whole pipeline must return errors, never panic, on arbitrary
//! and mutated inputs. `FUZZ_CASES=N` sets the cases per target (default 3000); the corpus of
//! seeds is the small set of valid inputs below plus the bundled example.
//!
//! Long run (reported in the README): `FUZZ_CASES=1000000 cargo test --release --test fuzz`.

use anisoap_candle::{xyz, Backend, Calculator, Hypers, Quantity};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let executions = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
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
