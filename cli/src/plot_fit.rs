//! Figures of the Gay-Berne example potential: `gay_berne_fit.png` from the linear model's
//! `results/gradients/gay_berne_fit.json` (energy parity on held-out clusters for both fits,
//! and the relaxation with the learned forces), and `gay_berne_mlp.png` from the MLP
//! potential's `gay_berne_mlp.json` beside it (held-out energy and force parity, NVE total
//! energy against time with the step and the smooth cutoff and under the analytic potential).

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
    // The MLP potential's figure, when its results sit beside the linear model's.
    let mlp = json.with_file_name("gay_berne_mlp.json");
    if mlp.exists() {
        let written = plot_gay_berne_mlp(&mlp, figures)?;
        eprintln!("plot: {}", written.display());
    }
    Ok(path)
}

/// Draws `figures/gay_berne_mlp.png` from the MLP example's JSON; returns the path written.
pub fn plot_gay_berne_mlp(json: &Path, figures: &Path) -> Result<PathBuf> {
    crate::plot::register_font()?;
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    let report: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", json.display()))?;
    std::fs::create_dir_all(figures)?;
    let path = figures.join("gay_berne_mlp.png");
    draw_mlp(&report, &path)?;
    Ok(path)
}

const VARIANTS: [(&str, &str, RGBColor); 2] = [
    ("step_cutoff", "step cutoff", RGBColor(31, 119, 180)),
    ("smooth_cutoff", "smooth cutoff", RGBColor(255, 127, 14)),
];

/// One parity panel: `key` = `energy` or `force`.
fn parity(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    report: &Value,
    key: &str,
) -> Result<()> {
    let mut sets = Vec::new();
    for (variant, label, color) in VARIANTS {
        let test = &report["variants"][variant]["training"]["errors"]["test"];
        let truth = numbers(&test[format!("parity_{key}_true")]);
        if truth.is_empty() {
            continue;
        }
        let predicted = numbers(&test[format!("parity_{key}_predicted")]);
        let ratio = test[if key == "energy" {
            "energy_rmse_over_std"
        } else {
            "force_rmse_over_rms"
        }]
        .as_f64()
        .unwrap_or(f64::NAN);
        sets.push((label, color, truth, predicted, ratio));
    }
    let (lo, hi) = range(sets.iter().flat_map(|s| s.2.iter().chain(&s.3).copied()));
    let (caption, unit) = if key == "energy" {
        ("Held-out energies", "RMSE / std")
    } else {
        ("Held-out force components", "RMSE / RMS")
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "Gay-Berne {key} (ε0{})",
            if key == "energy" { "" } else { "/σ0" }
        ))
        .y_desc(format!("MLP {key}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))?;
    let radius = if key == "energy" { 4 } else { 2 };
    for (label, color, truth, predicted, ratio) in &sets {
        let color = *color;
        chart
            .draw_series(
                truth
                    .iter()
                    .zip(predicted)
                    .map(|(&t, &p)| Circle::new((t, p), radius, color.mix(0.6).filled())),
            )?
            .label(format!("{label} ({unit} {:.0} %)", 100.0 * ratio))
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    Ok(())
}

fn draw_mlp(report: &Value, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (2100, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    parity(&panels[0], report, "energy")?;
    parity(&panels[1], report, "force")?;

    // NVE: total energy minus its start value against time.
    let series = |md: &Value, key: &str| -> Vec<(f64, f64)> {
        let t = numbers(&md["time_tau"]);
        let e = numbers(&md[key]);
        let e0 = e.first().copied().unwrap_or(0.0);
        t.into_iter().zip(e).map(|(t, e)| (t, e - e0)).collect()
    };
    let mut lines = Vec::new();
    for (variant, label, color) in VARIANTS {
        let md = &report["variants"][variant]["md"];
        let data = series(md, "total_energy");
        if !data.is_empty() {
            let drift = md["drift_per_ns_equivalent"].as_f64().unwrap_or(f64::NAN);
            lines.push((format!("MLP, {label} ({drift:.2e} ε0/ns)"), color, data));
        }
    }
    let gb = &report["md"]["analytic_gb"];
    let data = series(gb, "total_energy");
    if !data.is_empty() {
        let drift = gb["drift_per_ns_equivalent"].as_f64().unwrap_or(f64::NAN);
        lines.push((
            format!("analytic GB ({drift:.2e} ε0/ns)"),
            RGBColor(44, 160, 44),
            data,
        ));
    }
    let (ylo, yhi) = range(lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)));
    let tmax = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(1e-9, f64::max);
    let mut chart = ChartBuilder::on(&panels[2])
        .caption("NVE total energy (held-out cluster)", ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..tmax, ylo..yhi)?;
    chart
        .configure_mesh()
        .x_desc("time (τ; 1 ns-equivalent = 200 τ)")
        .y_desc("E_total − E_total(0) (ε0)")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    for (label, color, data) in lines {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn variant(offset: f64) -> Value {
        json!({"training": {"errors": {"test": {
                "parity_energy_true": [-3.0, -2.0, -1.0],
                "parity_energy_predicted": [-2.5 + offset, -2.2, -0.8],
                "parity_force_true": [1.0, -2.0, 0.5, 3.0],
                "parity_force_predicted": [0.8, -1.5, 0.7, 2.0],
                "energy_rmse_over_std": 0.3, "force_rmse_over_rms": 0.4}}},
            "md": {"time_tau": [0.0, 0.1, 0.2], "total_energy": [-5.0, -4.99, -4.98],
                "drift_per_ns_equivalent": 20.0}})
    }

    #[test]
    fn mlp_figure_is_drawn_from_a_minimal_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = json!({
            "variants": {"step_cutoff": variant(0.0), "smooth_cutoff": variant(0.1)},
            "md": {"analytic_gb": {"time_tau": [0.0, 0.1, 0.2],
                "total_energy": [-5.0, -5.001, -5.0], "drift_per_ns_equivalent": 0.1}}});
        let json_path = dir.path().join("gay_berne_mlp.json");
        std::fs::write(&json_path, report.to_string()).unwrap();
        let png = plot_gay_berne_mlp(&json_path, &dir.path().join("figures")).unwrap();
        assert_eq!(png, dir.path().join("figures/gay_berne_mlp.png"));
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(
            bytes.len() > 10_000,
            "{} bytes: an empty canvas?",
            bytes.len()
        );
    }

    #[test]
    fn a_missing_or_broken_report_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let err = plot_gay_berne_mlp(&missing, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("nope.json"), "{err:#}");
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let err = plot_gay_berne_mlp(&broken, dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("broken.json: not JSON"),
            "{err:#}"
        );
    }
}
