//! Figure of the Gay-Berne example potential (`results/gradients/gay_berne_fit.json`): energy
//! parity on held-out clusters for both fits, and the relaxation with the learned forces.

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = 0.05 * (hi - lo).max(1e-9);
    (lo - pad, hi + pad)
}

/// Draws `figures/gay_berne_fit.png` from the example's JSON; returns the path written.
pub fn plot_gay_berne(json: &Path, figures: &Path) -> Result<PathBuf> {
    crate::plot::register_font()?;
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    let fit: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", json.display()))?;
    std::fs::create_dir_all(figures)?;
    let path = figures.join("gay_berne_fit.png");
    draw(&fit, &path)?;
    Ok(path)
}

fn draw(fit: &Value, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(800);

    let fits = [
        ("energies_only", RGBColor(31, 119, 180)),
        ("energies_and_forces", RGBColor(255, 127, 14)),
    ];
    let mut points = Vec::new();
    for (key, color) in fits {
        let key = key.replace(' ', "_");
        let test = &fit["errors"][&key]["test"];
        let truth = numbers(&test["parity_energy_true"]);
        let predicted = numbers(&test["parity_energy_predicted"]);
        let rmse = test["energy_rmse"].as_f64().unwrap_or(f64::NAN);
        points.push((key, color, truth, predicted, rmse));
    }
    let (lo, hi) = range(points.iter().flat_map(|p| p.2.iter().chain(&p.3).copied()));
    let mut chart = ChartBuilder::on(&left)
        .caption("Gay-Berne energy, held-out clusters", ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(lo..hi, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("true energy")
        .y_desc("predicted energy")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))?;
    for (key, color, truth, predicted, rmse) in &points {
        chart
            .draw_series(
                truth
                    .iter()
                    .zip(predicted)
                    .map(|(&t, &p)| Circle::new((t, p), 5, color.filled())),
            )?
            .label(format!("fit on {} (RMSE {rmse:.2})", key.replace('_', " ")))
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;

    let path_points = fit["relaxation"]["path"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let series = |name: &str| -> Vec<(f64, f64)> {
        path_points
            .iter()
            .filter_map(|p| Some((p["step"].as_f64()?, p[name].as_f64()?)))
            .collect()
    };
    let (true_e, model_e) = (series("true_energy"), series("model_energy"));
    let (ylo, yhi) = range(true_e.iter().chain(&model_e).map(|p| p.1));
    let steps = true_e.last().map(|p| p.0).unwrap_or(1.0).max(1.0);
    let mut chart = ChartBuilder::on(&right)
        .caption("Relaxation with the learned forces", ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..steps, ylo..yhi)?;
    chart
        .configure_mesh()
        .x_desc("steepest-descent step")
        .y_desc("energy")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    for (name, data, color) in [
        ("true Gay-Berne energy", true_e, RGBColor(44, 160, 44)),
        ("model energy", model_e, RGBColor(214, 39, 40)),
    ] {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}
