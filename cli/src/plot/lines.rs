//! Line charts: series of (x, y) points with markers on log (or linear) axes, with the legend
//! inside the plot. Used where x is a continuous parameter of one family of systems (particles,
//! species, threads), never to join unrelated systems.

use super::{log_range, nice_log_label, Palette, Series};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A log-log (or lin-log) chart of series with lines and markers.
#[allow(clippy::too_many_arguments)]
pub(super) fn xy_chart(
    area: &DrawingArea<BitMapBackend, Shift>,
    palette: &Palette,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    data: &Series,
    log_x: bool,
    x_integer: bool,
) -> Result<()> {
    let ys = log_range(data.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)));
    let xs: Vec<f64> = data
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.0))
        .collect();
    let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_hi = xs.iter().copied().fold(0.0f64, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(95);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_max_light_lines(if x_integer { 0 } else { 9 })
                .y_labels(10)
                .light_line_style(RGBColor(238, 238, 238))
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .x_label_formatter(&|v| {
                    if x_integer {
                        if (v - v.round()).abs() < 1e-9 {
                            format!("{}", v.round() as i64)
                        } else {
                            String::new()
                        }
                    } else {
                        nice_log_label(*v)
                    }
                })
                .y_label_formatter(&|v| nice_log_label(*v))
                .draw()?;
            for (label, points) in data {
                let color = palette.color(label);
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    if data.is_empty() || !x_lo.is_finite() {
        area.draw(&Text::new(
            format!("{title}: no data"),
            (40, 40),
            ("sans-serif", 24),
        ))?;
        return Ok(());
    }
    if log_x {
        let xr = log_range([x_lo, x_hi].into_iter());
        let xr = (x_lo / 1.3).min(xr.start).max(x_lo / 1.5)..(x_hi * 1.3).max(x_lo * 2.0);
        draw!(builder.build_cartesian_2d(xr.log_scale(), ys.log_scale())?);
    } else {
        draw!(builder.build_cartesian_2d((x_lo - 0.5)..(x_hi + 0.5), ys.log_scale())?);
    }
    Ok(())
}
