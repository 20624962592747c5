//! `threads_scaling.png` from `tables/threads_sweep.csv`: throughput against worker threads
//! (log-log, with the ideal linear scaling from each series' fewest-thread point dashed) and
//! the parallel efficiency, one series per (host, device, backend, dtype, lmax, system).

use super::tables::ThreadsRow;
use super::{log_range, median, nice_log_label, COLORS};
use anyhow::Result;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One series: legend label and `(threads, pairs/s)` points sorted by threads (repeats of a
/// thread count reduced to their median).
pub(super) type ThreadSeries = Vec<(String, Vec<(f64, f64)>)>;

/// Groups the sweep's rows into series.
pub(super) fn thread_series(rows: &[ThreadsRow]) -> ThreadSeries {
    type Key = (String, String, String, String, u64, u64, String);
    let mut map: BTreeMap<Key, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in rows {
        map.entry((
            r.host.clone(),
            r.device.clone(),
            r.backend.clone(),
            r.dtype.clone(),
            r.lmax,
            r.particles,
            r.system.clone(),
        ))
        .or_default()
        .entry(r.threads)
        .or_default()
        .push(r.pairs_per_s);
    }
    map.into_iter()
        .map(
            |((host, device, backend, dtype, lmax, particles, _system), points)| {
                let on = if device == "cpu" {
                    String::new()
                } else {
                    format!(" on {device}")
                };
                let label = format!("{host}: {backend} {dtype}{on}, lmax {lmax}, N = {particles}");
                let points = points
                    .into_iter()
                    .map(|(t, v)| (t as f64, median(&v)))
                    .collect();
                (label, points)
            },
        )
        .collect()
}

/// Parallel efficiency of each point: speed-up over the fewest-thread point / thread ratio.
pub(super) fn efficiency(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let Some(&(t0, v0)) = points.first() else {
        return Vec::new();
    };
    points
        .iter()
        .map(|&(t, v)| (t, (v / v0) / (t / t0)))
        .collect()
}

/// Draws the figure; `Ok(false)` (nothing written) when there are no rows.
pub(super) fn threads_scaling(path: &Path, rows: &[ThreadsRow]) -> Result<bool> {
    let data = thread_series(rows);
    if data.is_empty() {
        return Ok(false);
    }
    let root = BitMapBackend::new(path, (1800, 820)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(900);
    // x is log2(threads) on a linear axis, labelled 1, 2, 4, 8 ...
    let t_max = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max);
    let t_min = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(f64::INFINITY, f64::min);
    let xr = (t_min.log2() - 0.3)..(t_max.log2() + 0.3).max(t_min.log2() + 1.3);
    let x_label = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 && v.round() >= 0.0 {
            format!("{}", 2u64.pow(v.round() as u32))
        } else {
            String::new()
        }
    };
    let log2_points =
        |p: &[(f64, f64)]| -> Vec<(f64, f64)> { p.iter().map(|&(t, v)| (t.log2(), v)).collect() };
    let color = |i: usize| COLORS[i % COLORS.len()];

    // Throughput, log-log, ideal scaling dashed.
    let ideal: Vec<Vec<(f64, f64)>> = data
        .iter()
        .map(|(_, p)| {
            let (t0, v0) = p[0];
            p.iter().map(|&(t, _)| (t, v0 * t / t0)).collect()
        })
        .collect();
    let ys = log_range(
        data.iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .chain(ideal.iter().flatten().map(|q| q.1)),
    );
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "Throughput vs worker threads (dashed: linear scaling)",
            ("sans-serif", 24),
        )
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(95)
        .build_cartesian_2d(xr.clone(), ys.log_scale())?;
    chart
        .configure_mesh()
        .x_labels(24)
        .y_labels(10)
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc("threads")
        .y_desc("pairs / s")
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| nice_log_label(*v))
        .draw()?;
    for (i, ((label, points), ideal)) in data.iter().zip(&ideal).enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(log2_points(points), c.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(
            log2_points(points)
                .into_iter()
                .map(|p| Circle::new(p, 5, c.filled())),
        )?;
        chart.draw_series(DashedLineSeries::new(
            log2_points(ideal),
            6,
            4,
            c.mix(0.6).stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    // Parallel efficiency.
    let eff: Vec<Vec<(f64, f64)>> = data.iter().map(|(_, p)| efficiency(p)).collect();
    let e_max = eff.iter().flatten().map(|q| q.1).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("Parallel efficiency (dashed: ideal)", ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(xr.clone(), 0.0..e_max)?;
    chart
        .configure_mesh()
        .x_labels(24)
        .y_labels(12)
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc("threads")
        .y_desc("speed-up / thread ratio")
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()?;
    chart.draw_series(DashedLineSeries::new(
        [(xr.start, 1.0), (xr.end, 1.0)],
        6,
        4,
        BLACK.stroke_width(1),
    ))?;
    for (i, points) in eff.iter().enumerate() {
        let c = color(i);
        chart.draw_series(LineSeries::new(log2_points(points), c.stroke_width(2)))?;
        chart.draw_series(
            log2_points(points)
                .into_iter()
                .map(|p| Circle::new(p, 5, c.filled())),
        )?;
    }
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, threads: u64, pps: f64) -> ThreadsRow {
        ThreadsRow {
            host: host.into(),
            device: "cpu".into(),
            threads,
            system: "benzene_n2048_s1_f1".into(),
            particles: 2048,
            lmax: 6,
            dtype: "f64".into(),
            backend: "candle-cpu".into(),
            pairs_per_s: pps,
        }
    }

    #[test]
    fn series_take_medians_and_efficiency_is_relative_to_fewest_threads() {
        let rows = [
            row("vm", 2, 3.0e6),
            row("vm", 1, 2.0e6),
            row("vm", 1, 1.0e6),
            row("vm", 1, 1.5e6),
            row("gpu-host", 1, 1.0e6),
        ];
        let series = thread_series(&rows);
        assert_eq!(series.len(), 2);
        let (label, points) = &series[1];
        assert!(label.starts_with("vm: candle-cpu f64"), "{label}");
        assert_eq!(points, &[(1.0, 1.5e6), (2.0, 3.0e6)]);
        assert_eq!(efficiency(points), [(1.0, 1.0), (2.0, 1.0)]);
        assert_eq!(
            efficiency(&[(2.0, 4.0), (8.0, 8.0)]),
            [(2.0, 1.0), (8.0, 0.5)]
        );
    }
}
