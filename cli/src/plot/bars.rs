//! Grouped bar charts on a log axis (groups = systems along x, one bar per implementation in
//! each group) and the legend strip that the panels of one figure share.
//!
//! Group labels are drawn by hand under the axis, centred on their group and split on `'\n'`,
//! so long system names take several short lines instead of overlapping their neighbours.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Font sizes (pixels), chosen so that a 2000-pixel-wide figure printed at a page's width
/// keeps its text at about 6 pt or more.
mod font {
    pub const TITLE: u32 = 30;
    pub const PANEL: u32 = 25;
    pub const TICK: u32 = 20;
    pub const GROUP: u32 = 19;
    pub const AXIS: u32 = 21;
    pub const LEGEND: u32 = 20;
    pub const NOTE: u32 = 17;
}

/// What the values of a panel are, for tick labels and annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (ticks "1 ms", "10 s", ...).
    Seconds,
    /// A dimensionless ratio (ticks "1×", "100×").
    Ratio,
}

impl Unit {
    /// Tick label of a log axis: decades (1, 10, 100 ... in the unit), and 2 and 5 times a
    /// decade when `dense`; empty otherwise.
    pub fn tick(self, v: f64, dense: bool) -> String {
        if !(v.is_finite() && v > 0.0) {
            return String::new();
        }
        let e = v.log10().floor() as i32;
        let mantissa = v / decade(e);
        let Some(m) = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .find(|m| (mantissa - m).abs() < 1e-6 * m)
        else {
            return String::new();
        };
        let (m, e) = if m == 10.0 { (1.0, e + 1) } else { (m, e) };
        if m != 1.0 && !dense {
            return String::new();
        }
        let number = |e: i32| {
            let text = decade_number(e);
            match m as u32 {
                1 => text,
                d => text.replacen('1', &d.to_string(), 1),
            }
        };
        match self {
            Unit::Ratio => format!("{}×", number(e)),
            Unit::Seconds => match e {
                i32::MIN..=-7 => format!("{v:.0e} s"),
                -6..=-4 => format!("{} µs", number(e + 6)),
                -3..=-1 => format!("{} ms", number(e + 3)),
                _ => format!("{} s", number(e)),
            },
        }
    }

    /// Value written above a bar: two significant digits (three from 100 up) and the unit.
    pub fn annotation(self, v: f64) -> String {
        match self {
            Unit::Ratio => format!("{}×", sig(v, 2)),
            Unit::Seconds if v < 1e-3 => format!("{} µs", sig(v * 1e6, 2)),
            Unit::Seconds if v < 1.0 => format!("{} ms", sig(v * 1e3, 2)),
            Unit::Seconds => format!("{} s", sig(v, 2)),
        }
    }
}

/// `10^e`, the double nearest to it (as the literal `1e{e}` parses).
pub fn decade(e: i32) -> f64 {
    format!("1e{e}").parse().unwrap_or(f64::NAN)
}

/// `10^e` written out (`e` ≥ 0), or as a decimal fraction (`e` < 0).
fn decade_number(e: i32) -> String {
    if e >= 0 {
        format!("1{}", "0".repeat(e as usize))
    } else {
        format!("0.{}1", "0".repeat((-e - 1) as usize))
    }
}

/// `v` with `digits` significant digits (at least all of its integer digits), no exponent.
pub fn sig(v: f64, digits: i32) -> String {
    if !(v.is_finite() && v > 0.0) {
        return format!("{v}");
    }
    let magnitude = v.log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// One implementation's bars: legend label, colour, one value per group (`None`: no bar).
#[derive(Debug, Clone)]
pub struct BarSeries {
    /// Legend label.
    pub label: String,
    /// Fill colour.
    pub color: RGBColor,
    /// One value per group of the panel.
    pub values: Vec<Option<f64>>,
}

/// One panel: groups along x, series as bars within each group, a log y axis.
#[derive(Debug, Clone)]
pub struct BarPanel {
    /// Panel title.
    pub title: String,
    /// Axis title under the group labels.
    pub x_desc: String,
    /// Axis title of the log y axis (with its unit).
    pub y_desc: String,
    /// Group labels; `'\n'` starts a new line.
    pub groups: Vec<String>,
    /// Bars; a series without any value is left out (and out of the legend).
    pub series: Vec<BarSeries>,
    /// Write each bar's value above it.
    pub annotate: bool,
    /// What the values are.
    pub unit: Unit,
    /// A horizontal reference line (e.g. speed-up 1).
    pub hline: Option<f64>,
    /// Whether the series enter the figure's legend (false: the group labels name the bars).
    pub legend: bool,
}

impl BarPanel {
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .filter(|v| v.is_finite() && *v > 0.0)
    }

    /// Whether the panel has at least one bar.
    pub fn has_data(&self) -> bool {
        !self.groups.is_empty() && self.values().next().is_some()
    }
}

/// Log range from a decade at or below the smallest value to above the largest, with room for
/// the annotations when `annotate`; always spans at least one whole decade.
fn y_range(lo: f64, hi: f64, annotate: bool) -> (f64, f64) {
    let bottom = decade((lo / 1.5).log10().floor() as i32);
    let decades = (hi / bottom).log10().max(1.0);
    let top = if annotate {
        hi * 10f64.powf(0.22 * decades + 0.15)
    } else {
        hi * 10f64.powf(0.06 * decades + 0.05)
    };
    (bottom, top.max(bottom * 10.0))
}

/// Draws one panel into `area`.
pub fn draw_panel(area: &DrawingArea<BitMapBackend, Shift>, panel: &BarPanel) -> Result<()> {
    if !panel.has_data() {
        area.draw(&Text::new(
            format!("{}: no data", panel.title),
            (30, 40),
            ("sans-serif", font::PANEL),
        ))?;
        return Ok(());
    }
    let lo = panel
        .values()
        .chain(panel.hline)
        .fold(f64::INFINITY, f64::min);
    let hi = panel.values().chain(panel.hline).fold(0.0, f64::max);
    let (bottom, top) = y_range(lo, hi, panel.annotate);
    let n = panel.groups.len();
    let lines = panel
        .groups
        .iter()
        .map(|g| g.lines().count())
        .max()
        .unwrap_or(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", font::PANEL))
        .margin(12)
        .margin_right(20)
        .x_label_area_size(44 + (font::GROUP + 4) * lines as u32)
        .y_label_area_size(100)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (bottom..top).log_scale())?;
    let unit = panel.unit;
    let dense = (top / bottom).log10() <= 2.5;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(2))
        .x_label_formatter(&|_| String::new())
        .y_labels(12)
        .y_max_light_lines(0)
        .y_label_formatter(&|v| unit.tick(*v, dense))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_desc(&panel.x_desc)
        .y_desc(&panel.y_desc)
        .label_style(("sans-serif", font::TICK))
        .axis_desc_style(("sans-serif", font::AXIS))
        .draw()?;

    // Bars: the present series of a group side by side, centred on the group.
    let present = |g: usize| -> Vec<(usize, f64)> {
        panel
            .series
            .iter()
            .enumerate()
            .filter_map(|(s, series)| {
                series
                    .values
                    .get(g)
                    .copied()
                    .flatten()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(|v| (s, v))
            })
            .collect()
    };
    let widest = (0..n).map(|g| present(g).len()).max().unwrap_or(1).max(1);
    let slot = 0.82 / widest as f64;
    let label_style = TextStyle::from(("sans-serif", font::NOTE).into_font())
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let flat_label = TextStyle::from(("sans-serif", font::NOTE + 1).into_font())
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for g in 0..n {
        let bars = present(g);
        let start = g as f64 - slot * bars.len() as f64 / 2.0;
        for (j, &(s, v)) in bars.iter().enumerate() {
            let x0 = start + slot * j as f64;
            let x1 = x0 + slot * 0.9;
            let color = panel.series[s].color;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, bottom), (x1, v)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, bottom), (x1, v)],
                BLACK.mix(0.6).stroke_width(1),
            )))?;
            if panel.annotate {
                let text = unit.annotation(v);
                let (px, py) = chart.backend_coord(&((x0 + x1) / 2.0, v));
                let base = area.get_base_pixel();
                if widest == 1 {
                    area.draw(&Text::new(
                        text,
                        (px - base.0, py - base.1 - 4),
                        flat_label.clone(),
                    ))?;
                } else {
                    area.draw(&Text::new(
                        text,
                        (px - base.0, py - base.1 - 5),
                        label_style.clone(),
                    ))?;
                }
            }
        }
    }
    if let Some(h) = panel.hline {
        chart.draw_series(LineSeries::new(
            [(-0.5, h), (n as f64 - 0.5, h)],
            BLACK.stroke_width(2),
        ))?;
    }

    // Group labels, one line under another, centred under the group.
    let base = area.get_base_pixel();
    let style = TextStyle::from(("sans-serif", font::GROUP).into_font())
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (g, label) in panel.groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(g as f64, bottom));
        for (i, line) in label.lines().enumerate() {
            area.draw(&Text::new(
                line.to_string(),
                (
                    px - base.0,
                    py - base.1 + 8 + (font::GROUP as i32 + 4) * i as i32,
                ),
                style.clone(),
            ))?;
        }
    }
    Ok(())
}

/// Legend entries of `panels` in first-seen order, each label once.
pub fn legend_entries(panels: &[BarPanel]) -> Vec<(String, RGBColor)> {
    let mut entries: Vec<(String, RGBColor)> = Vec::new();
    for series in panels.iter().filter(|p| p.legend).flat_map(|p| &p.series) {
        let used = series
            .values
            .iter()
            .flatten()
            .any(|v| v.is_finite() && *v > 0.0);
        if used && !entries.iter().any(|(l, _)| *l == series.label) {
            entries.push((series.label.clone(), series.color));
        }
    }
    entries
}

/// Height of one legend row.
const ROW: u32 = 30;

/// Rows of legend entries that fit in `width` pixels.
fn legend_rows(
    root: &DrawingArea<BitMapBackend, Shift>,
    entries: &[(String, RGBColor)],
    width: u32,
) -> Result<Vec<Vec<usize>>> {
    let font = TextStyle::from(("sans-serif", font::LEGEND).into_font());
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 40u32;
    for (i, (label, _)) in entries.iter().enumerate() {
        let (w, _) = root.estimate_text_size(label, &font)?;
        let item = 28 + w + 36;
        if used + item > width && rows.last().is_some_and(|r| !r.is_empty()) {
            rows.push(Vec::new());
            used = 40;
        }
        used += item;
        if let Some(row) = rows.last_mut() {
            row.push(i);
        }
    }
    Ok(rows)
}

/// Draws the legend rows into `area` (swatch, label; rows centred).
fn draw_legend(
    area: &DrawingArea<BitMapBackend, Shift>,
    entries: &[(String, RGBColor)],
    rows: &[Vec<usize>],
) -> Result<()> {
    let font = TextStyle::from(("sans-serif", font::LEGEND).into_font());
    let (width, _) = area.dim_in_pixel();
    for (r, row) in rows.iter().enumerate() {
        let mut sizes = Vec::new();
        for &i in row {
            sizes.push(area.estimate_text_size(&entries[i].0, &font)?.0);
        }
        let total: u32 = sizes.iter().map(|w| 28 + w + 36).sum();
        let mut x = (width.saturating_sub(total) / 2) as i32;
        let y = 8 + ROW as i32 * r as i32;
        for (&i, w) in row.iter().zip(sizes) {
            let (label, color) = &entries[i];
            area.draw(&Rectangle::new([(x, y), (x + 20, y + 20)], color.filled()))?;
            area.draw(&Rectangle::new(
                [(x, y), (x + 20, y + 20)],
                BLACK.mix(0.6).stroke_width(1),
            ))?;
            area.draw(&Text::new(
                label.clone(),
                (x + 28, y + 10),
                font.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += (28 + w + 36) as i32;
        }
    }
    Ok(())
}

/// A figure of bar panels side by side (relative widths), a title and one shared legend.
pub fn bar_figure(
    path: &Path,
    size: (u32, u32),
    title: &str,
    panels: &[(BarPanel, f64)],
) -> Result<()> {
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(52);
    top.draw(&Text::new(
        title.to_string(),
        (size.0 as i32 / 2, 28),
        TextStyle::from(("sans-serif", font::TITLE).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let only: Vec<BarPanel> = panels.iter().map(|(p, _)| p.clone()).collect();
    let entries = legend_entries(&only);
    let rows = legend_rows(&root, &entries, size.0)?;
    let (legend, body) = body.split_vertically(18 + ROW * rows.len() as u32);
    draw_legend(&legend, &entries, &rows)?;
    let total: f64 = panels
        .iter()
        .map(|(_, w)| w.max(0.0))
        .sum::<f64>()
        .max(1e-9);
    let mut breaks = Vec::new();
    let mut acc = 0.0;
    for (_, w) in &panels[..panels.len().saturating_sub(1)] {
        acc += w.max(0.0) / total;
        breaks.push((acc * size.0 as f64).round() as i32);
    }
    let areas = body.split_by_breakpoints(breaks, Vec::<i32>::new());
    for ((panel, _), area) in panels.iter().zip(&areas) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_label_decades_only() {
        assert_eq!(Unit::Seconds.tick(1e-3, false), "1 ms");
        assert_eq!(Unit::Seconds.tick(0.1, false), "100 ms");
        assert_eq!(Unit::Seconds.tick(100.0, false), "100 s");
        assert_eq!(Unit::Seconds.tick(1e-5, false), "10 µs");
        assert_eq!(Unit::Seconds.tick(2e-3, false), "");
        assert_eq!(Unit::Seconds.tick(3e-3, true), "");
        assert_eq!(Unit::Seconds.tick(2e-3, true), "2 ms");
        assert_eq!(Unit::Seconds.tick(0.05, true), "50 ms");
        assert_eq!(Unit::Seconds.tick(5.0, true), "5 s");
        assert_eq!(Unit::Seconds.tick(0.999_999_999_9, false), "1 s");
        assert_eq!(Unit::Ratio.tick(1000.0, false), "1000×");
        assert_eq!(Unit::Ratio.tick(0.1, false), "0.1×");
        assert_eq!(Unit::Ratio.tick(0.2, true), "0.2×");
    }

    #[test]
    fn annotations_have_two_significant_digits() {
        assert_eq!(Unit::Seconds.annotation(411.18), "411 s");
        assert_eq!(Unit::Seconds.annotation(0.77), "770 ms");
        assert_eq!(Unit::Seconds.annotation(3.511), "3.5 s");
        assert_eq!(Unit::Seconds.annotation(2.855e-3), "2.9 ms");
        assert_eq!(Unit::Seconds.annotation(4.1e-4), "410 µs");
        assert_eq!(Unit::Ratio.annotation(161.4), "161×");
        assert_eq!(Unit::Ratio.annotation(1.93), "1.9×");
    }

    #[test]
    fn y_range_spans_a_decade_below_the_smallest_bar() {
        let (b, t) = y_range(0.0029, 0.0031, false);
        assert_eq!(b, 1e-3);
        assert!(t >= 1e-2, "{t}");
        let (b, t) = y_range(0.77, 411.0, true);
        assert_eq!(b, 0.1);
        assert!(t > 411.0 * 3.0, "{t}");
    }

    #[test]
    fn legend_lists_each_used_label_once() {
        let series = |label: &str, values: Vec<Option<f64>>| BarSeries {
            label: label.into(),
            color: BLACK,
            values,
        };
        let panel = |series| BarPanel {
            title: String::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            groups: vec!["a".into(), "b".into()],
            series,
            annotate: false,
            unit: Unit::Seconds,
            hline: None,
            legend: true,
        };
        let panels = [
            panel(vec![
                series("x", vec![Some(1.0), None]),
                series("empty", vec![None, None]),
            ]),
            panel(vec![
                series("y", vec![None, Some(2.0)]),
                series("x", vec![Some(3.0), None]),
            ]),
        ];
        let labels: Vec<String> = legend_entries(&panels).into_iter().map(|e| e.0).collect();
        assert_eq!(labels, ["x", "y"]);
        assert!(!panels[0].series[1].values.iter().any(|v| v.is_some()));
        assert!(panels[1].has_data());
    }
}
