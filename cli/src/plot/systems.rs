//! The grouped-bar figures of wall time and speed-up by system: `wall_time_by_system.png`
//! (the CPU study: size sweep, species sweep, the original's real dataset),
//! `wall_time_large_systems.png` (the GPU runs: `bench --preset gpu` and the 10⁶-particle
//! whole-command runs) and `speedup.png`.
//!
//! Each implementation keeps one colour in every figure ([`color_of`]), and bars of different
//! measurements (one `power_spectrum` call, a whole `compute` command) never share a panel.

use super::bars::{bar_figure, BarPanel, BarSeries, Unit};
use super::tables::{GpuRun, RealRun, SideBySide};
use super::Row;
use anyhow::Result;
use plotters::style::RGBColor;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Colours of the implementations, the same in every figure.
mod colors {
    use plotters::style::RGBColor;
    pub const ORIGINAL: RGBColor = RGBColor(127, 127, 127);
    pub const REFERENCE: RGBColor = RGBColor(140, 86, 75);
    pub const CPU_OLD: RGBColor = RGBColor(255, 127, 14);
    pub const CPU_NEW: RGBColor = RGBColor(214, 39, 40);
    pub const CPU_ONE_THREAD: RGBColor = RGBColor(255, 152, 150);
    pub const CPU_HOST_F64: RGBColor = RGBColor(255, 187, 120);
    pub const CPU_HOST_F32: RGBColor = RGBColor(219, 219, 141);
    pub const CUDA_OLD_F64: RGBColor = RGBColor(23, 190, 207);
    pub const CUDA_OLD_F32: RGBColor = RGBColor(158, 218, 229);
    pub const FUSED_F64: RGBColor = RGBColor(148, 103, 189);
    pub const FUSED_F32: RGBColor = RGBColor(31, 119, 180);
    pub const TENSOR_F64: RGBColor = RGBColor(197, 176, 213);
    pub const TENSOR_F32: RGBColor = RGBColor(174, 199, 232);
}

/// Short GPU name from a model string ("NVIDIA H100 80GB HBM3" → "H100").
fn gpu_short(model: &str) -> String {
    let mut words = model.split([' ', ',']).filter(|w| !w.is_empty());
    match words.next() {
        Some("NVIDIA") => words.next().unwrap_or("GPU").to_string(),
        Some(w) => w.to_string(),
        None => "GPU".to_string(),
    }
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Legend label and colour of a combined-table row's implementation.
pub(super) fn color_of(r: &Row) -> (String, RGBColor) {
    let at = if r.commit.is_empty() {
        String::new()
    } else {
        format!(" · {}", r.commit)
    };
    match r.backend.as_str() {
        "upstream" => ("original AniSOAP (Python)".to_string(), colors::ORIGINAL),
        "reference" => (
            format!(
                "reference {} ({}){at}",
                r.dtype,
                plural(r.threads, "thread")
            ),
            colors::REFERENCE,
        ),
        "candle-cpu" if r.preset == "gpu" => (
            format!(
                "candle-cpu {}, GPU host, {}{at}",
                r.dtype,
                plural(r.threads, "thread")
            ),
            if r.dtype == "f32" {
                colors::CPU_HOST_F32
            } else {
                colors::CPU_HOST_F64
            },
        ),
        "candle-cpu" => (
            format!(
                "candle-cpu {} ({}){at}",
                r.dtype,
                plural(r.threads, "thread")
            ),
            colors::CPU_OLD,
        ),
        _ => (
            format!("{} {}, {}{at}", r.backend, r.dtype, gpu_short(&r.gpu_model)),
            if r.dtype == "f32" {
                colors::CUDA_OLD_F32
            } else {
                colors::CUDA_OLD_F64
            },
        ),
    }
}

/// Order of implementations in a group: original first, then the Rust backends, the GPU's
/// fused kernels before its tensor-op path.
fn rank(label: &str) -> u32 {
    if label.contains("tensor-op") {
        return 5;
    }
    if label.contains("fused") && label.contains("cuda") {
        return 4;
    }
    ["original", "reference", "candle-cpu", "candle-cuda"]
        .iter()
        .position(|k| label.contains(k))
        .unwrap_or(9) as u32
}

/// Bars of `rows` with groups keyed by `group(row)`; `value` picks what is drawn.
fn series_of(
    rows: &[&Row],
    groups: &[u64],
    group: impl Fn(&Row) -> u64,
    value: impl Fn(&Row) -> Option<f64>,
) -> Vec<BarSeries> {
    let mut map: BTreeMap<(u32, bool, String), BarSeries> = BTreeMap::new();
    for r in rows {
        let Some(v) = value(r) else { continue };
        let Some(g) = groups.iter().position(|&k| k == group(r)) else {
            continue;
        };
        let (label, color) = color_of(r);
        let entry = map
            .entry((rank(&label), r.dtype == "f32", label.clone()))
            .or_insert_with(|| BarSeries {
                label,
                color,
                values: vec![None; groups.len()],
            });
        entry.values[g] = Some(v);
    }
    map.into_values().collect()
}

/// Rows of the CPU study's size sweep (not from the GPU preset) at lmax of the most rows.
fn cpu_size_rows(rows: &[Row]) -> Vec<&Row> {
    let cpu: Vec<&Row> = rows.iter().filter(|r| r.preset != "gpu").collect();
    let swept: Vec<&Row> = cpu
        .iter()
        .copied()
        .filter(|r| r.sweeps.iter().any(|s| s == "size"))
        .collect();
    if swept.is_empty() {
        let min_species = cpu.iter().map(|r| r.species).min().unwrap_or(1);
        cpu.into_iter()
            .filter(|r| r.species == min_species)
            .collect()
    } else {
        swept
    }
}

/// Rows of the CPU study's species sweep at the N most of them share.
fn cpu_species_rows(rows: &[Row]) -> Vec<&Row> {
    let swept: Vec<&Row> = rows
        .iter()
        .filter(|r| r.preset != "gpu" && r.sweeps.iter().any(|s| s == "species"))
        .collect();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &swept {
        *counts.entry(r.n as u64).or_default() += 1;
    }
    let Some(common) = counts
        .iter()
        .max_by_key(|(n, c)| (**c, **n))
        .map(|(n, _)| *n)
    else {
        return Vec::new();
    };
    swept.into_iter().filter(|r| r.n as u64 == common).collect()
}

/// `N = 32` over `956 pairs`.
fn size_label(n: u64, pairs: u64) -> String {
    if pairs > 0 {
        format!("{n}\n{pairs} pairs")
    } else {
        format!("{n}")
    }
}

/// Groups (particle counts) and their labels from rows.
fn size_groups(rows: &[&Row]) -> (Vec<u64>, Vec<String>) {
    let sizes: BTreeMap<u64, u64> = rows.iter().map(|r| (r.n as u64, r.pairs)).collect();
    let labels = sizes.iter().map(|(&n, &p)| size_label(n, p)).collect();
    (sizes.into_keys().collect(), labels)
}

/// A count, as `10⁶` when it is a power of ten from 10⁴ up.
fn count_label(n: u64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let s = n.to_string();
    if n >= 10_000 && s[1..].bytes().all(|b| b == b'0') && s.starts_with('1') {
        let e = (s.len() - 1).to_string();
        format!(
            "10{}",
            e.bytes()
                .map(|b| DIGITS[(b - b'0') as usize])
                .collect::<String>()
        )
    } else {
        s
    }
}

/// Text split into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Colour of a real-dataset row.
fn real_color(r: &RealRun) -> RGBColor {
    let what = format!("{} {}", r.implementation, r.device).to_lowercase();
    if what.contains("original") || what.contains("upstream") {
        colors::ORIGINAL
    } else if what.contains("cuda") || what.contains("gpu") || what.contains("h200") {
        if what.contains("f32") {
            colors::FUSED_F32
        } else {
            colors::FUSED_F64
        }
    } else if r.threads == "1" {
        colors::CPU_ONE_THREAD
    } else {
        colors::CPU_NEW
    }
}

/// Panel of the original's dataset: one bar per row, named under the axis.
fn real_panel(real: &[RealRun]) -> BarPanel {
    let systems: BTreeSet<&str> = real.iter().map(|r| r.system.as_str()).collect();
    let devices: BTreeSet<&str> = real.iter().map(|r| r.device.as_str()).collect();
    let groups = real
        .iter()
        .map(|r| {
            let name = r
                .implementation
                .strip_prefix("anisoap-candle ")
                .unwrap_or(&r.implementation);
            let mut lines = wrap(name, 14);
            if devices.len() > 1 {
                lines.extend(wrap(&r.device, 14));
            }
            if !r.threads.is_empty() {
                let threads = r
                    .threads
                    .parse::<u32>()
                    .map_or(r.threads.clone(), |t| plural(t, "thread"));
                lines.push(threads);
            }
            if systems.len() > 1 {
                lines.extend(wrap(&r.system, 14));
            }
            lines.join("\n")
        })
        .collect();
    let series = real
        .iter()
        .enumerate()
        .map(|(i, r)| BarSeries {
            label: r.implementation.clone(),
            color: real_color(r),
            values: (0..real.len())
                .map(|j| (j == i).then_some(r.wall_s))
                .collect(),
        })
        .collect();
    let title = match systems.iter().next() {
        Some(s) if systems.len() == 1 => format!("{s}, whole command"),
        _ => "the original's dataset, whole command".to_string(),
    };
    let x_desc = match devices.iter().next() {
        Some(d) if devices.len() == 1 => d.to_string(),
        _ => String::new(),
    };
    BarPanel {
        title,
        x_desc,
        y_desc: "wall time, whole command".into(),
        groups,
        series,
        annotate: true,
        unit: Unit::Seconds,
        hline: None,
        legend: false,
    }
}

/// The figure of the CPU study: size sweep, species sweep, and the original's dataset.
pub(super) fn wall_time_by_system(
    path: &Path,
    rows: &[Row],
    side_by_side: &[SideBySide],
    real: &[RealRun],
) -> Result<()> {
    let size_rows = cpu_size_rows(rows);
    let (sizes, labels) = size_groups(&size_rows);
    let mut size_series = series_of(&size_rows, &sizes, |r| r.n as u64, |r| Some(r.median));
    // The later run of the fused kernel (same VM): median over rounds per size.
    let mut later: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for s in side_by_side.iter().filter(|s| s.binary == "new") {
        later
            .entry(s.commit.clone())
            .or_default()
            .entry(s.particles)
            .or_default()
            .push(s.median_s);
    }
    for (commit, by_size) in later {
        let values: Vec<Option<f64>> = sizes
            .iter()
            .map(|n| by_size.get(n).map(|v| super::median(v)))
            .collect();
        if values.iter().any(Option::is_some) {
            size_series.push(BarSeries {
                label: format!("candle-cpu f64, fused kernel (later run) · {commit}"),
                color: colors::CPU_NEW,
                values,
            });
        }
    }
    let size_n = size_rows.first().map_or(0, |r| r.species);
    let species_rows = cpu_species_rows(rows);
    let species: Vec<u64> = species_rows
        .iter()
        .map(|r| r.species as u64)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let species_n = species_rows.first().map_or(0, |r| r.n as u64);
    let lmax = size_rows.first().map_or(0, |r| r.lmax);
    let mut panels = vec![
        (
            BarPanel {
                title: format!("size sweep ({}, lmax {lmax})", plural(size_n, "species")),
                x_desc: "particles N (pairs)".into(),
                y_desc: "wall time per call (median)".into(),
                groups: labels,
                series: size_series,
                annotate: false,
                unit: Unit::Seconds,
                hline: None,
                legend: true,
            },
            sizes.len().max(1) as f64,
        ),
        (
            BarPanel {
                title: format!("species sweep (N = {species_n})"),
                x_desc: "species".into(),
                y_desc: "wall time per call (median)".into(),
                groups: species.iter().map(|s| s.to_string()).collect(),
                series: series_of(
                    &species_rows,
                    &species,
                    |r| r.species as u64,
                    |r| Some(r.median),
                ),
                annotate: false,
                unit: Unit::Seconds,
                hline: None,
                legend: true,
            },
            species.len().max(1) as f64 * 0.8,
        ),
    ];
    if !real.is_empty() {
        panels.push((real_panel(real), real.len() as f64 * 0.9 + 0.5));
    }
    panels.retain(|(p, _)| p.has_data());
    let width = 360 + 190 * panels.iter().map(|(_, w)| *w).sum::<f64>() as u32;
    bar_figure(
        path,
        (width.clamp(1200, 2400), 1000),
        "Wall time of the AniSOAP power spectrum: the original vs this project (lower is better)",
        &panels,
    )
}

/// The figure of the GPU runs: the `gpu` preset's size sweep and the whole-command runs.
pub(super) fn wall_time_large_systems(path: &Path, rows: &[Row], gpu: &[GpuRun]) -> Result<bool> {
    let gpu_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.preset == "gpu" && r.sweeps.iter().any(|s| s == "size"))
        .collect();
    let (sizes, labels) = size_groups(&gpu_rows);
    let lmax = gpu_rows.first().map_or(0, |r| r.lmax);
    let models: BTreeSet<String> = gpu_rows
        .iter()
        .filter(|r| !r.gpu_model.is_empty())
        .map(|r| gpu_short(&r.gpu_model))
        .collect();
    let mut panels = vec![(
        BarPanel {
            title: format!(
                "bench --preset gpu, {} (lmax {lmax}, prepared system)",
                models.into_iter().collect::<Vec<_>>().join(", ")
            ),
            x_desc: "particles N (pairs)".into(),
            y_desc: "wall time per call (median)".into(),
            groups: labels,
            series: series_of(&gpu_rows, &sizes, |r| r.n as u64, |r| Some(r.median)),
            annotate: false,
            unit: Unit::Seconds,
            hline: None,
            legend: true,
        },
        sizes.len().max(1) as f64,
    )];
    // Whole-command runs: one panel per (particles, GPU), groups = lmax.
    let mut by_system: BTreeMap<(u64, u64, String), Vec<&GpuRun>> = BTreeMap::new();
    for run in gpu {
        by_system
            .entry((run.particles, run.pairs, gpu_short(&run.gpu)))
            .or_default()
            .push(run);
    }
    for ((particles, pairs, model), runs) in by_system {
        let lmaxes: Vec<u64> = runs
            .iter()
            .map(|r| r.lmax)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut series: BTreeMap<(u32, String), BarSeries> = BTreeMap::new();
        for run in &runs {
            let fused = run.path == "fused";
            let color = match (fused, run.dtype.as_str()) {
                (true, "f32") => colors::FUSED_F32,
                (true, _) => colors::FUSED_F64,
                (false, "f32") => colors::TENSOR_F32,
                (false, _) => colors::TENSOR_F64,
            };
            let label = format!(
                "candle-cuda {} {}, {model} · {}",
                run.path, run.dtype, run.commit
            );
            let g = lmaxes.iter().position(|&l| l == run.lmax).unwrap_or(0);
            let key = (
                rank(&label) * 2 + u32::from(run.dtype == "f32"),
                label.clone(),
            );
            series
                .entry(key)
                .or_insert_with(|| BarSeries {
                    label,
                    color,
                    values: vec![None; lmaxes.len()],
                })
                .values[g] = Some(run.wall_s);
        }
        let reps = runs.iter().map(|r| r.reps).max().unwrap_or(1);
        panels.push((
            BarPanel {
                title: format!(
                    "{} particles ({:.2e} pairs), {model}, best of {reps}",
                    count_label(particles),
                    pairs as f64
                ),
                x_desc: "lmax".into(),
                y_desc: "wall time, whole command (reading included)".into(),
                groups: lmaxes.iter().map(|l| l.to_string()).collect(),
                series: series.into_values().collect(),
                annotate: true,
                unit: Unit::Seconds,
                hline: None,
                legend: true,
            },
            lmaxes.len().max(1) as f64 * 1.2,
        ));
    }
    panels.retain(|(p, _)| p.has_data());
    if panels.is_empty() {
        return Ok(false);
    }
    bar_figure(
        path,
        (2000, 1000),
        "Benzene-like systems on GPUs: candle-cuda against candle-cpu on the GPU host (lower is better)",
        &panels,
    )?;
    Ok(true)
}

/// Speed-up over the baseline (same run) for the size and species sweeps.
pub(super) fn speedup(path: &Path, rows: &[Row]) -> Result<()> {
    let has_upstream = rows.iter().any(|r| r.backend == "upstream");
    let baseline = if has_upstream {
        "the original AniSOAP"
    } else {
        "the reference backend"
    };
    let value = |r: &Row| {
        if has_upstream {
            r.speedup_upstream.filter(|_| r.backend != "upstream")
        } else {
            r.speedup_reference.filter(|_| r.backend != "reference")
        }
    };
    let size_rows = cpu_size_rows(rows);
    let (sizes, labels) = size_groups(&size_rows);
    let species_rows = cpu_species_rows(rows);
    let species: Vec<u64> = species_rows
        .iter()
        .map(|r| r.species as u64)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let species_n = species_rows.first().map_or(0, |r| r.n as u64);
    let y_desc = format!("speed-up over {baseline} (same run)");
    // The 1× line only where some bar comes near it (otherwise it costs decades of axis).
    let smallest = rows.iter().filter_map(value).fold(f64::INFINITY, f64::min);
    let hline = (smallest < 10.0).then_some(1.0);
    let mut panels = vec![
        (
            BarPanel {
                title: "size sweep".into(),
                x_desc: "particles N (pairs)".into(),
                y_desc: y_desc.clone(),
                groups: labels,
                series: series_of(&size_rows, &sizes, |r| r.n as u64, value),
                annotate: true,
                unit: Unit::Ratio,
                hline,
                legend: true,
            },
            sizes.len().max(1) as f64,
        ),
        (
            BarPanel {
                title: format!("species sweep (N = {species_n})"),
                x_desc: "species".into(),
                y_desc,
                groups: species.iter().map(|s| s.to_string()).collect(),
                series: series_of(&species_rows, &species, |r| r.species as u64, value),
                annotate: true,
                unit: Unit::Ratio,
                hline,
                legend: true,
            },
            species.len().max(1) as f64 * 0.8,
        ),
    ];
    panels.retain(|(p, _)| p.has_data());
    if panels.is_empty() {
        panels.push((
            BarPanel {
                title: format!("speed-up over {baseline}"),
                x_desc: String::new(),
                y_desc: String::new(),
                groups: Vec::new(),
                series: Vec::new(),
                annotate: false,
                unit: Unit::Ratio,
                hline: None,
                legend: true,
            },
            1.0,
        ));
    }
    bar_figure(
        path,
        (1900, 950),
        &format!("Speed-up over {baseline}, ratio of median wall times (higher is better)"),
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_gpu_names() {
        assert_eq!(
            wrap("original AniSOAP 6b288697 (Python)", 17),
            ["original AniSOAP", "6b288697 (Python)"]
        );
        assert_eq!(gpu_short("NVIDIA H100 80GB HBM3"), "H100");
        assert_eq!(count_label(1_000_000), "10⁶");
        assert_eq!(count_label(1024), "1024");
        assert_eq!(count_label(20_000), "20000");
        assert_eq!(gpu_short("NVIDIA H200, 580.159.04"), "H200");
        assert_eq!(plural(1, "thread"), "1 thread");
        assert_eq!(plural(2, "core"), "2 cores");
        assert!(rank("original AniSOAP") < rank("reference f64"));
        assert!(rank("candle-cuda fused f64") < rank("candle-cuda tensor-op f64"));
    }
}
