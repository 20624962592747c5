//! `plot` subcommand: every figure under `<results>/figures/` from the tables under
//! `<results>/tables/`, so one command regenerates them all:
//!
//! * from `combined_from_metrics.csv` (`aggregate`): `wall_time_by_system.png` (grouped bars;
//!   with `cpu_kernel_side_by_side.csv` and `real_dataset.csv` when present),
//!   `wall_time_large_systems.png` (with `cuda_throughput_h200.csv`), `speedup.png`,
//!   `wall_time_vs_species.png` (time / N²) and `scaling.png` (time and pairs/s vs N);
//! * `threads_scaling.png` from `threads_sweep.csv`, `streaming_rss.png` from
//!   `streaming_rss.csv`, `roofline.png` from `peak_flops.csv`, `roofline_counts.csv` and the
//!   kernel tables, and the Gay-Berne figure from `gradients/gay_berne_fit.json`,
//!   each when its input exists.
//!
//! Text is drawn with the bundled DejaVu Sans (`cli/assets`, Bitstream Vera licence), so no
//! system font library is needed.

mod bars;
mod lines;
mod roofline;
mod streaming;
mod systems;
mod tables;
mod threads;

use anyhow::{bail, Context, Result};
use lines::xy_chart;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core), licence in `cli/assets/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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
    preset: String,
    n: f64,
    pairs: u64,
    threads: u32,
    dtype: String,
    gpu_model: String,
    commit: String,
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
            preset: get("preset").to_string(),
            n,
            pairs: num("pairs").unwrap_or(0.0) as u64,
            threads: num("threads").unwrap_or(0.0) as u32,
            dtype: get("dtype").to_string(),
            gpu_model: get("gpu_model").to_string(),
            commit: get("git_commit").chars().take(7).collect(),
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

/// Series colours of the line charts (matplotlib's tab10 order).
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

/// Median of a non-empty slice (0 for an empty one).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Writes the figures of the combined table `table` (and of the tables beside it in
/// `tables`) into `figures`; returns their paths.
pub fn plot_table(table: &Path, tables: &Path, figures: &Path) -> Result<Vec<PathBuf>> {
    register_font()?;
    let rows = read_rows(table)?;
    if rows.is_empty() {
        bail!("{}: no successful runs to plot", table.display());
    }
    std::fs::create_dir_all(figures)
        .with_context(|| format!("cannot create {}", figures.display()))?;
    let labels: BTreeSet<String> = rows.iter().map(|r| r.label.clone()).collect();
    let palette = Palette(labels.into_iter().collect());
    let mut written = Vec::new();

    // 1. Wall time by system (2-core CPU study and the original's dataset), grouped bars.
    let side_by_side = tables::side_by_side(&tables.join("cpu_kernel_side_by_side.csv"))?;
    let real = tables::real_runs(&tables.join("real_dataset.csv"))?;
    let path = figures.join("wall_time_by_system.png");
    systems::wall_time_by_system(&path, &rows, &side_by_side, &real)?;
    written.push(path);

    // 2. The GPU runs, grouped bars.
    let gpu = tables::gpu_runs(&tables.join("cuda_throughput_h200.csv"))?;
    let path = figures.join("wall_time_large_systems.png");
    if systems::wall_time_large_systems(&path, &rows, &gpu)? {
        written.push(path);
    }

    // 3. Speed-up over the original (or the reference), grouped bars.
    let path = figures.join("speedup.png");
    systems::speedup(&path, &rows)?;
    written.push(path);

    // 4. Time / N² vs species at fixed N.
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
    let path = figures.join("wall_time_vs_species.png");
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

    // 5. Scaling with N: time and pairs/s, log-log.
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
    let path = figures.join("scaling.png");
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

    // 6. Threads sweep and streaming memory, when measured.
    let path = figures.join("threads_scaling.png");
    if threads::threads_scaling(
        &path,
        &tables::threads_rows(&tables.join("threads_sweep.csv"))?,
    )? {
        written.push(path);
    }
    let path = figures.join("streaming_rss.png");
    if streaming::streaming_rss(
        &path,
        &tables::streaming_rows(&tables.join("streaming_rss.csv"))?,
    )? {
        written.push(path);
    }
    let path = figures.join("roofline.png");
    if roofline::roofline(&path, tables)? {
        written.push(path);
    }
    Ok(written)
}

/// Runs the `plot` subcommand.
pub fn run(args: &PlotArgs) -> Result<()> {
    let table = args
        .input
        .clone()
        .unwrap_or_else(|| args.results.join("tables/combined_from_metrics.csv"));
    let mut written = plot_table(
        &table,
        &args.results.join("tables"),
        &args.results.join("figures"),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A combined table of two sizes and two species on the CPU, and one GPU-preset run.
    const COMBINED: &str = "\
run_id,preset,status,system,kind,n_particles,pairs,species,backend,dtype,label,threads,lmax,sweeps,median_s,pairs_per_s,speedup_vs_upstream,speedup_vs_reference,git_commit,gpu_model
a,cpu,ok,b32,benzene,32,956,1,upstream,f64,upstream f64,2,6,size;species,0.33,2900,1,0.01,694f0ff,
b,cpu,ok,b32,benzene,32,956,1,candle-cpu,f64,candle-cpu f64,2,6,size;species,0.0029,3.3e5,117,1.1,694f0ff,
c,cpu,ok,b64,benzene,64,1756,1,upstream,f64,upstream f64,2,6,size,0.42,4100,1,0.01,694f0ff,
d,cpu,ok,b64,benzene,64,1756,1,candle-cpu,f64,candle-cpu f64,2,6,size,0.0044,4.0e5,97,1.4,694f0ff,
e,cpu,ok,b32s2,benzene,32,956,2,upstream,f64,upstream f64,2,6,species,0.35,2700,1,0.01,694f0ff,
f,cpu,ok,b32s2,benzene,32,956,2,candle-cpu,f64,candle-cpu f64,2,6,species,0.0030,3.2e5,116,1.2,694f0ff,
g,gpu,ok,b1024,benzene,1024,26412,1,candle-cuda,f64,candle-cuda f64,16,6,size,0.0107,2.5e6,,,,NVIDIA H100 80GB HBM3
";

    fn png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
    }

    #[test]
    fn every_table_present_gives_its_figure_and_a_bad_one_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let tables = dir.path().join("tables");
        let figures = dir.path().join("figures");
        std::fs::create_dir_all(&tables).unwrap();
        let combined = tables.join("combined_from_metrics.csv");
        std::fs::write(&combined, COMBINED).unwrap();

        // Only the combined table: the CPU figures and the GPU-preset panel.
        let written = plot_table(&combined, &tables, &figures).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "wall_time_by_system.png",
                "wall_time_large_systems.png",
                "speedup.png",
                "wall_time_vs_species.png",
                "scaling.png"
            ]
        );
        assert!(written.iter().all(|p| png(p)), "{written:?}");

        // The threads sweep and the real dataset add their figure and panel.
        std::fs::write(
            tables.join("threads_sweep.csv"),
            "host,device,threads,system,particles,pairs,lmax,dtype,backend,wall_s,pairs_per_s,commit\n\
             vm,cpu,1,b2048,2048,54706,6,f64,candle-cpu,0.036,1.5e6,x\n\
             vm,cpu,2,b2048,2048,54706,6,f64,candle-cpu,0.019,2.9e6,x\n",
        )
        .unwrap();
        std::fs::write(
            tables.join("real_dataset.csv"),
            "system,implementation,device,threads,wall_s,commit,source\n\
             ellipsoids.xyz,original AniSOAP (Python),2-core VM,2,411.18,a,s\n\
             ellipsoids.xyz,anisoap-candle candle-cpu f64,2-core VM,2,0.77,b,s\n",
        )
        .unwrap();
        let written = plot_table(&combined, &tables, &figures).unwrap();
        assert!(written.contains(&figures.join("threads_scaling.png")));
        assert!(png(&figures.join("threads_scaling.png")));

        std::fs::write(
            tables.join("threads_sweep.csv"),
            "host,device,threads,system,particles,pairs,lmax,dtype,backend,wall_s,pairs_per_s,commit\n\
             vm,cpu,two,b2048,2048,54706,6,f64,candle-cpu,0.036,1.5e6,x\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            plot_table(&combined, &tables, &figures).unwrap_err()
        );
        assert!(
            err.contains("threads_sweep.csv line 2") && err.contains("'threads' = 'two'"),
            "{err}"
        );
    }
}
