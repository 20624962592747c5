//! The stage breakdown of a Rust backend's run: ordinary production calls
//! (`Calculator::compute`) with the span recorder ([`super::spans`]) on, and their output
//! checked against the reference backend.

use super::metrics::{self, StageBreakdown};
use super::{spans, Prepared};
use anisoap_candle::{Backend, BatchedOptions, Calculator, Matrix, Quantity};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::time::Instant;

/// Runs `stage_repeats` span-recorded calls of `calculator` on `p`'s frames; with `options`
/// (a candle backend) and at most `check_max_pairs` pairs, checks the first call's output
/// against the reference backend.
pub(super) fn breakdown(
    calculator: &Calculator,
    p: &Prepared,
    options: Option<&BatchedOptions>,
    stage_repeats: usize,
    check_max_pairs: usize,
) -> Result<StageBreakdown> {
    let recorder = spans::global();
    if stage_repeats > 0 && !recorder.is_installed() {
        bail!("the stage breakdown needs the span recorder that `main` installs for bench");
    }
    let mut self_s: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut inclusive_s: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut calls = BTreeMap::new();
    let mut threads: BTreeMap<String, usize> = BTreeMap::new();
    let mut walls = Vec::new();
    let mut totals = Vec::new();
    let mut staged_output = None;
    for k in 0..stage_repeats {
        let (result, spans) = recorder.record(|| -> Result<_> {
            let t = Instant::now();
            let features =
                calculator.compute(&p.frames, Quantity::PowerSpectrumMean, &mut |_, _| {})?;
            if let Some(o) = options {
                o.device.synchronize()?;
            }
            Ok((features, t.elapsed().as_secs_f64()))
        });
        let (features, wall) = result?;
        walls.push(wall);
        totals.push(spans.values().map(|t| t.self_s).sum::<f64>());
        for (name, t) in spans {
            self_s.entry(name.clone()).or_default().push(t.self_s);
            inclusive_s.entry(name.clone()).or_default().push(t.busy_s);
            let n = threads.entry(name.clone()).or_default();
            *n = (*n).max(t.threads);
            if k == 0 {
                calls.insert(name, t.calls);
            }
        }
        if k == 0 {
            staged_output = Some(features.values);
        }
    }
    let check = match (options, staged_output) {
        (Some(_), Some(staged)) if p.pairs <= check_max_pairs => {
            let reference = Calculator::new(&p.hypers, Backend::Reference)?
                .compute(&p.frames, Quantity::PowerSpectrumMean, &mut |_, _| {})?
                .values;
            Some(max_abs_diff(&staged, &reference)?)
        }
        _ => None,
    };
    let medians = |all: &BTreeMap<String, Vec<f64>>| {
        all.iter()
            .filter_map(|(k, v)| metrics::median(v).map(|x| (k.clone(), x)))
            .collect()
    };
    Ok(StageBreakdown {
        method: "production spans (bench/spans.rs): Calculator::compute of the per-frame \
                 mean power spectrum with a tracing layer adding up, per span name of \
                 anisoap-candle, the busy time without child spans (median_s) and with \
                 them (inclusive_median_s), summed over threads; wall_median_s is the \
                 whole call (spans on several threads at once sum to more than it). On \
                 GPUs spans time the host: a device stage is exact only where its span \
                 waits for the device (those that copy results to the host, e.g. chunk and \
                 power_spectrum); kernels a span only launches are paid in the next span \
                 that synchronises."
            .into(),
        median_s: medians(&self_s),
        inclusive_median_s: medians(&inclusive_s),
        all_s: self_s,
        total_median_s: metrics::median(&totals),
        calls,
        threads,
        wall_median_s: metrics::median(&walls),
        check_max_abs_diff: check,
    })
}

/// Largest pair count on which a candle backend's staged output is checked against the
/// reference backend unless the config sets `check_max_pairs`.
pub const CHECK_MAX_PAIRS: usize = 2_000_000;

/// Largest |a − b| over two outputs of the same shape; NaN when either holds a non-finite
/// value (so that it never reads as agreement).
fn max_abs_diff(a: &Matrix, b: &Matrix) -> Result<f64> {
    if (a.rows, a.cols) != (b.rows, b.cols) {
        bail!(
            "staged output is {}x{}, the reference {}x{}",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
    }
    if a.data.iter().chain(&b.data).any(|x| !x.is_finite()) {
        return Ok(f64::NAN);
    }
    Ok(a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max))
}
