//! `plot` subcommand: figures from `<results>/tables/combined_from_metrics.csv` into
//! `<results>/figures/`: `wall_time_by_system.png`, `wall_time_vs_species.png` (time / N²),
//! `scaling.png` (time and pairs/s vs N, log-log) and `speedup.png` (each backend vs upstream,
//! or vs reference when there is no upstream run).
//!
//! Text is drawn with the bundled DejaVu Sans (`cli/assets`, Bitstream Vera licence), so no
//! system font library is needed.

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core), licence in `cli/assets/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Figure file names written by `plot`.
pub const FIGURES: [&str; 4] = [
    "wall_time_by_system.png",
    "wall_time_vs_species.png",
    "scaling.png",
    "speedup.png",
];

/// Arguments of `anisoap-candle plot`.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Results directory (reads DIR/tables/combined_from_metrics.csv, writes DIR/figures/).
    #[arg(long, visible_alias = "out", default_value = "results")]
    pub results: PathBuf,
    /// Input table (default: DIR/tables/combined_from_metrics.csv).
    #[arg(long, short = 'i')]
    pub input: Option<PathBuf>,
}

/// One `ok` row of the combined table.
#[derive(Debug, Clone)]
struct Row {
    system: String,
    kind: String,
    n: f64,
    species: u32,
    lmax: u32,
    label: String,
    sweeps: Vec<String>,
    median: f64,
    pairs_per_s: f64,
    per_n2: f64,
    speedup_upstream: Option<f64>,
    speedup_reference: Option<f64>,
    backend: String,
}

pub(crate) fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if !ok {
        bail!("the bundled font cannot be loaded");
    }
    Ok(())
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        let get = |name: &str| -> &str {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .unwrap_or_default()
        };
        let num = |name: &str| get(name).parse::<f64>().ok();
        if get("status") != "ok" {
            continue;
        }
        let (Some(median), Some(n)) = (num("median_s"), num("n_particles")) else {
            continue;
        };
        rows.push(Row {
            system: get("system").to_string(),
            kind: get("kind").to_string(),
            n,
            species: num("species").unwrap_or(0.0) as u32,
            lmax: num("lmax").unwrap_or(0.0) as u32,
            // CPU runs from the GPU preset ran on the GPU machine's host: keep them apart.
            label: if get("preset") == "gpu" && !get("backend").contains("cuda") {
                format!("{} [GPU host]", get("label"))
            } else {
                get("label").to_string()
            },
            sweeps: get("sweeps").split(';').map(str::to_string).collect(),
            median,
            pairs_per_s: num("pairs_per_s").unwrap_or(0.0),
            per_n2: num("time_per_n2_s").unwrap_or(median / (n * n)),
            speedup_upstream: num("speedup_vs_upstream"),
            speedup_reference: num("speedup_vs_reference"),
            backend: get("backend").to_string(),
        });
    }
    Ok(rows)
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Stable colour per series label (sorted order of all labels).
struct Palette(Vec<String>);

impl Palette {
    fn color(&self, label: &str) -> RGBColor {
        let base = label.split(" (").next().unwrap_or(label);
        let i = self.0.iter().position(|l| l == base).unwrap_or(0);
        COLORS[i % COLORS.len()]
    }
}

fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.1..10.0;
    }
    let (lo, hi) = if hi / lo < 10.0 {
        let mid = (lo * hi).sqrt();
        (mid / 4.0, mid * 4.0)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    lo..hi
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Label of a log-axis tick: only mantissas 1, 2 and 5 are written, so labels never overlap.
fn nice_log_label(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let decade = 10f64.powf(v.log10().floor());
    let mantissa = (v / decade).round();
    if (v / decade - mantissa).abs() > 1e-6 || ![1.0, 2.0, 5.0].contains(&mantissa) {
        return String::new();
    }
    if (1e-3..1e6).contains(&v) {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        format!("{v:.0e}")
    }
}

/// Groups rows into series by label (with lmax appended when several are present).
fn series(rows: &[&Row], x: impl Fn(&Row) -> f64, y: impl Fn(&Row) -> Option<f64>) -> Series {
    let lmaxes: BTreeSet<u32> = rows.iter().map(|r| r.lmax).collect();
    let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        let Some(yv) = y(r) else { continue };
        let label = if lmaxes.len() > 1 {
            format!("{} (lmax {})", r.label, r.lmax)
        } else {
            r.label.clone()
        };
        map.entry(label).or_default().push((x(r), yv));
    }
    map.into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, v)
        })
        .collect()
}

/// A log-log (or lin-log) chart of series with lines and markers.
#[allow(clippy::too_many_arguments)]
fn xy_chart(
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
                .y_label_formatter(&|v| format!("{v:.1e}"))
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

/// Categories (one per system and lmax) on x, a log y, markers per series, optional
/// horizontal line.
fn category_chart(
    path: &Path,
    palette: &Palette,
    title: &str,
    y_desc: &str,
    categories: &[String],
    data: &[(String, Vec<(usize, f64)>)],
    hline: Option<f64>,
) -> Result<()> {
    let root = BitMapBackend::new(path, (1400, 820)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = data
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .chain(hline);
    let ys = log_range(values);
    if data.is_empty() || categories.is_empty() {
        root.draw(&Text::new(
            format!("{title}: no data"),
            (40, 40),
            ("sans-serif", 24),
        ))?;
        root.present()?;
        return Ok(());
    }
    let n = categories.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(100)
        .build_cartesian_2d((0..n - 1).into_segmented(), ys.log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(10)
        .light_line_style(RGBColor(238, 238, 238))
        .x_labels(categories.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => categories.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.1e}"))
        .y_desc(y_desc)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    if let Some(h) = hline {
        chart.draw_series(LineSeries::new(
            [(SegmentValue::Exact(0), h), (SegmentValue::Last, h)],
            BLACK.stroke_width(1),
        ))?;
    }
    for (label, points) in data {
        let color = palette.color(label);
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|&(i, y)| (SegmentValue::CenterOf(i as i32), y)),
                color.mix(0.5).stroke_width(1),
            ))?
            .label(label.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, color.filled()));
        chart.draw_series(points.iter().map(|&(i, y)| {
            Circle::new((SegmentValue::CenterOf(i as i32), y), 7, color.filled())
        }))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Category key and label of a row: systems ordered by species, size, then lmax.
fn categories(rows: &[Row]) -> (Vec<String>, HashMap<(String, u32), usize>) {
    let kinds: BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let lmaxes: BTreeSet<u32> = rows.iter().map(|r| r.lmax).collect();
    let mut keys: Vec<(u32, u64, u32, String)> = rows
        .iter()
        .map(|r| (r.species, r.n as u64, r.lmax, r.system.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut labels = Vec::new();
    let mut index = HashMap::new();
    for (species, n, lmax, system) in keys {
        let mut label = if kinds.len() > 1 || kinds.contains("file") {
            system.clone()
        } else {
            format!("N={n} S={species}")
        };
        if lmaxes.len() > 1 {
            label.push_str(&format!(" l{lmax}"));
        }
        index.insert((system, lmax), labels.len());
        labels.push(label);
    }
    (labels, index)
}

/// Writes the four figures from `table` into `figures`; returns their paths.
pub fn plot_table(table: &Path, figures: &Path) -> Result<Vec<PathBuf>> {
    register_font()?;
    let rows = read_rows(table)?;
    if rows.is_empty() {
        bail!("{}: no successful runs to plot", table.display());
    }
    std::fs::create_dir_all(figures)?;
    let labels: BTreeSet<String> = rows.iter().map(|r| r.label.clone()).collect();
    let palette = Palette(labels.into_iter().collect());
    let (cats, cat_index) = categories(&rows);
    let by_label = |value: &dyn Fn(&Row) -> Option<f64>, exclude: &str| {
        let mut map: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
        for r in &rows {
            if r.backend == exclude {
                continue;
            }
            if let Some(v) = value(r) {
                map.entry(r.label.clone())
                    .or_default()
                    .push((cat_index[&(r.system.clone(), r.lmax)], v));
            }
        }
        map.into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|p| p.0);
                (k, v)
            })
            .collect::<Vec<_>>()
    };
    let mut written = Vec::new();

    // 1. Wall time by system.
    let path = figures.join(FIGURES[0]);
    category_chart(
        &path,
        &palette,
        "Wall time of one power_spectrum call (median), by system",
        "wall time [s]",
        &cats,
        &by_label(&|r| Some(r.median), ""),
        None,
    )?;
    written.push(path);

    // 2. Time / N² vs species at fixed N.
    let species_rows: Vec<&Row> = {
        let swept: Vec<&Row> = rows
            .iter()
            .filter(|r| r.sweeps.iter().any(|s| s == "species"))
            .collect();
        let pool = if swept.is_empty() {
            rows.iter().collect()
        } else {
            swept
        };
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for r in &pool {
            *counts.entry(r.n as u64).or_default() += 1;
        }
        let common = counts
            .iter()
            .max_by_key(|(n, c)| (**c, **n))
            .map(|(n, _)| *n)
            .unwrap_or(0);
        pool.into_iter().filter(|r| r.n as u64 == common).collect()
    };
    let n_fixed = species_rows.first().map_or(0.0, |r| r.n);
    let path = figures.join(FIGURES[1]);
    {
        let root = BitMapBackend::new(&path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        xy_chart(
            &root,
            &palette,
            &format!("Wall time / N² vs number of species (N = {n_fixed})"),
            "species",
            "median wall time / N²  [s]",
            &series(&species_rows, |r| r.species as f64, |r| Some(r.per_n2)),
            false,
            true,
        )?;
        root.present()?;
    }
    written.push(path);

    // 3. Scaling with N: time and pairs/s, log-log.
    let size_rows: Vec<&Row> = {
        let swept: Vec<&Row> = rows
            .iter()
            .filter(|r| r.sweeps.iter().any(|s| s == "size"))
            .collect();
        if swept.is_empty() {
            let min_species = rows.iter().map(|r| r.species).min().unwrap_or(1);
            rows.iter().filter(|r| r.species == min_species).collect()
        } else {
            swept
        }
    };
    let path = figures.join(FIGURES[2]);
    {
        let root = BitMapBackend::new(&path, (1800, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(900);
        xy_chart(
            &left,
            &palette,
            "Wall time vs particles",
            "particles N",
            "median wall time [s]",
            &series(&size_rows, |r| r.n, |r| Some(r.median)),
            true,
            false,
        )?;
        xy_chart(
            &right,
            &palette,
            "Throughput vs particles",
            "particles N",
            "pairs / s",
            &series(&size_rows, |r| r.n, |r| Some(r.pairs_per_s)),
            true,
            false,
        )?;
        root.present()?;
    }
    written.push(path);

    // 4. Speedup vs upstream (or reference).
    let has_upstream = rows.iter().any(|r| r.backend == "upstream");
    let baseline = if has_upstream {
        "upstream"
    } else {
        "reference"
    };
    let value = |r: &Row| {
        if has_upstream {
            r.speedup_upstream
        } else {
            r.speedup_reference
        }
    };
    let path = figures.join(FIGURES[3]);
    category_chart(
        &path,
        &palette,
        &format!("Speedup over {baseline} (median wall time ratio; line = 1)"),
        &format!("speedup vs {baseline}"),
        &cats,
        &by_label(&value, baseline),
        Some(1.0),
    )?;
    written.push(path);
    Ok(written)
}

/// Runs the `plot` subcommand.
pub fn run(args: &PlotArgs) -> Result<()> {
    let table = args
        .input
        .clone()
        .unwrap_or_else(|| args.results.join("tables/combined_from_metrics.csv"));
    let mut written = plot_table(&table, &args.results.join("figures"))?;
    let fit = args.results.join("gradients/gay_berne_fit.json");
    if fit.exists() {
        written.push(crate::plot_fit::plot_gay_berne(
            &fit,
            &args.results.join("figures"),
        )?);
    }
    for p in &written {
        eprintln!("plot: {}", p.display());
    }
    Ok(())
}
