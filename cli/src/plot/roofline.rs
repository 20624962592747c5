//! `roofline.png`: the fused pair kernels on a roofline (`results/roofline.md`). Per device in
//! `tables/peak_flops.csv`, its compute roofs (f64, f32) and, where the table has one, its
//! memory roof; points are the measured kernel rates (`tables/cuda_kernel_h200.csv`, the
//! fused rows at the default block size, and `tables/cuda_kernel_s15_h200.csv`, the baked
//! kernel split over warps at its default; `tables/cpu_kernel_side_by_side.csv`, the `new`
//! binary at its largest N, lmax 6 f64) placed by the per-pair counts of
//! `tables/roofline_counts.csv` (FLOPs and DRAM bytes).

use super::tables::Table;
use super::{median, nice_log_label};
use anyhow::Result;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One measured kernel rate placed on the roofline.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Point {
    /// Legend label.
    pub label: String,
    /// Label written beside the point.
    pub short: String,
    /// FLOPs per DRAM byte.
    pub intensity: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
    /// f32 points are drawn hollow.
    pub f32: bool,
    /// Colour index: the device's (its roofs' colour), or past the devices for a later
    /// kernel on one of them.
    pub device: usize,
}

/// A device's roofs: name, `(dtype, GFLOP/s)` and the memory bandwidth in GB/s if known.
#[derive(Debug, Clone)]
pub(super) struct Roofs {
    name: String,
    compute: Vec<(String, f64)>,
    memory: Option<f64>,
}

/// Reads the three tables; `None` when any is missing.
pub(super) fn load(tables: &Path) -> Result<Option<(Vec<Roofs>, Vec<Point>)>> {
    let (Some(peaks), Some(counts)) = (
        Table::read(&tables.join("peak_flops.csv"), &["host", "dtype", "gflops"])?,
        Table::read(
            &tables.join("roofline_counts.csv"),
            &[
                "kernel",
                "lmax",
                "flops",
                "dram_bytes_f64",
                "dram_bytes_f32",
            ],
        )?,
    ) else {
        return Ok(None);
    };
    let mut roofs: Vec<Roofs> = Vec::new();
    for r in peaks.rows() {
        let host = r.str("host").to_string();
        let i = match roofs.iter().position(|d| d.name == host) {
            Some(i) => i,
            None => {
                roofs.push(Roofs {
                    name: host,
                    compute: Vec::new(),
                    memory: None,
                });
                roofs.len() - 1
            }
        };
        let v = r.f64("gflops")?;
        match r.str("dtype") {
            "hbm_GB_per_s" | "memory_GB_per_s" => roofs[i].memory = Some(v),
            d => roofs[i].compute.push((d.to_string(), v)),
        }
    }
    // (kernel, lmax) -> (flops, dram f64, dram f32)
    let mut cost: BTreeMap<(String, u64), (f64, f64, f64)> = BTreeMap::new();
    for r in counts.rows() {
        cost.insert(
            (r.str("kernel").to_string(), r.u64("lmax")?),
            (
                r.f64("flops")?,
                r.f64("dram_bytes_f64")?,
                r.f64("dram_bytes_f32")?,
            ),
        );
    }
    let device_of = |needle: &str| roofs.iter().position(|d| d.name.contains(needle));
    let mut points = Vec::new();
    // The GPU pair kernels: each table's default launch, the later kernel in a colour of its
    // own (after the devices' colours).
    let kernel_tables = [
        (
            "cuda_kernel_h200.csv",
            "fused",
            "threads",
            "one thread per pair",
        ),
        (
            "cuda_kernel_s15_h200.csv",
            "baked",
            "parts",
            "split over warps",
        ),
    ];
    for (k, (file, path, setting, kind)) in kernel_tables.into_iter().enumerate() {
        let (Some(kernel), Some(dev)) = (
            Table::read(
                &tables.join(file),
                &["path", "lmax", "dtype", setting, "pairs_per_s"],
            )?,
            device_of("H200"),
        ) else {
            continue;
        };
        let colour = if k == 0 { dev } else { roofs.len() + k - 1 };
        for r in kernel.rows() {
            if r.str("path") != path || r.str(setting) != "default" {
                continue;
            }
            let lmax = r.u64("lmax")?;
            let Some(&(flops, d64, d32)) = cost.get(&("cuda_pair_coefficients".into(), lmax))
            else {
                continue;
            };
            let f32 = r.str("dtype") == "f32";
            let pps = r.f64("pairs_per_s")?;
            points.push(Point {
                label: format!("H200 pair kernel ({kind}), lmax {lmax} {}", r.str("dtype")),
                short: format!("{lmax} {}", r.str("dtype")),
                intensity: flops / if f32 { d32 } else { d64 },
                gflops: pps * flops / 1e9,
                f32,
                device: colour,
            });
        }
    }
    if let (Some(side), Some(dev), Some(&(flops, d64, _))) = (
        Table::read(
            &tables.join("cpu_kernel_side_by_side.csv"),
            &["binary", "particles", "pairs_per_s"],
        )?,
        device_of("VM"),
        cost.get(&("cpu_fused_density".into(), 6)),
    ) {
        let mut by_n: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for r in side.rows().filter(|r| r.str("binary") == "new") {
            by_n.entry(r.u64("particles")?)
                .or_default()
                .push(r.f64("pairs_per_s")?);
        }
        if let Some((n, rates)) = by_n.into_iter().next_back() {
            points.push(Point {
                label: format!("2 CPU cores, whole call N = {n}, lmax 6 f64"),
                short: "6 f64".into(),
                intensity: flops / d64,
                gflops: median(&rates) * flops / 1e9,
                f32: false,
                device: dev,
            });
        }
    }
    Ok(Some((roofs, points)))
}

/// Draws the figure; `Ok(false)` when the tables are missing or hold no point.
pub(super) fn roofline(path: &Path, tables: &Path) -> Result<bool> {
    let Some((roofs, points)) = load(tables)? else {
        return Ok(false);
    };
    if points.is_empty() {
        return Ok(false);
    }
    let colors = [
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
    ];
    let color = |i: usize| colors[i % colors.len()];
    let (x0, x1) = (0.3f64, 300.0f64);
    let top = roofs
        .iter()
        .flat_map(|d| d.compute.iter().map(|c| c.1))
        .fold(1.0f64, f64::max)
        * 3.0;
    let bottom = points
        .iter()
        .map(|p| p.gflops)
        .fold(f64::INFINITY, f64::min)
        / 5.0;
    let root = BitMapBackend::new(path, (1500, 950)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Fused pair kernels on the roofline (point labels: lmax, dtype)",
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(100)
        .build_cartesian_2d((x0..x1).log_scale(), (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc("arithmetic intensity [FLOP / DRAM byte]")
        .y_desc("GFLOP/s")
        .label_style(("sans-serif", 19))
        .axis_desc_style(("sans-serif", 21))
        .x_label_formatter(&|v| nice_log_label(*v))
        .y_label_formatter(&|v| nice_log_label(*v))
        .draw()?;
    for (i, d) in roofs.iter().enumerate() {
        let c = color(i);
        for (dtype, peak) in &d.compute {
            // The roof: memory slope up to the ridge, then flat.
            let ridge = d.memory.map_or(x0, |bw| (peak / bw).clamp(x0, x1));
            let mut line = Vec::new();
            if let Some(bw) = d.memory {
                line.push((x0, bw * x0));
            }
            line.push((ridge, *peak));
            line.push((x1, *peak));
            let style = if dtype == "f32" {
                c.mix(0.5).stroke_width(2)
            } else {
                c.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(line, style))?
                .label(format!("{} {dtype} roof ({} GFLOP/s)", d.name, peak))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        }
    }
    for p in &points {
        let c = color(p.device);
        let style = if p.f32 { c.stroke_width(3) } else { c.filled() };
        chart
            .draw_series(std::iter::once(Circle::new(
                (p.intensity, p.gflops),
                8,
                style,
            )))?
            .label(format!(
                "{}: {} GFLOP/s",
                p.label,
                super::bars::sig(p.gflops, 2)
            ))
            .legend(move |(x, y)| Circle::new((x + 11, y), 7, style));
        chart.draw_series(std::iter::once(Text::new(
            p.short.clone(),
            // f64 labels above the point, f32 labels below it: close points stay readable.
            if p.f32 {
                (p.intensity * 1.1, p.gflops * 0.9)
            } else {
                (p.intensity * 0.93, p.gflops * 1.45)
            },
            ("sans-serif", 16).into_font(),
        )))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_take_counts_from_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        std::fs::write(
            t.join("peak_flops.csv"),
            "host,device,dtype,kind,gflops\nNVIDIA H200,cuda:0,f64,d,34000\n\
             NVIDIA H200,cuda:0,hbm_GB_per_s,d,4800\n2-core VM,cpu,f64,m,44\n",
        )
        .unwrap();
        std::fs::write(
            t.join("roofline_counts.csv"),
            "kernel,lmax,flops,dram_bytes_f64,dram_bytes_f32\n\
             cuda_pair_coefficients,6,2000,800,400\ncpu_fused_density,6,1800,100,50\n",
        )
        .unwrap();
        assert!(load(t).unwrap().unwrap().1.is_empty());
        std::fs::write(
            t.join("cuda_kernel_h200.csv"),
            "path,lmax,dtype,threads,pairs_per_s\nfused,6,f64,default,3e8\n\
             fused,6,f64,32,9e9\ntensor-op,6,f64,default,4e7\nfused,6,f32,default,4e8\n",
        )
        .unwrap();
        std::fs::write(
            t.join("cpu_kernel_side_by_side.csv"),
            "binary,particles,pairs_per_s\nnew,32,1e6\nnew,2048,2e6\nnew,2048,4e6\nold,2048,1e5\n",
        )
        .unwrap();
        let (roofs, points) = load(t).unwrap().unwrap();
        assert_eq!(roofs.len(), 2);
        assert_eq!(roofs[0].memory, Some(4800.0));
        assert_eq!(points.len(), 3);
        // The later kernel's table adds its default rows, in a colour past the devices'.
        std::fs::write(
            t.join("cuda_kernel_s15_h200.csv"),
            "path,lmax,dtype,parts,pairs_per_s\nbaked,6,f64,default,8e8\nbaked,6,f64,2,9e8\n\
             tables,6,f64,default,3e8\n",
        )
        .unwrap();
        let (_, with_later) = load(t).unwrap().unwrap();
        assert_eq!(with_later.len(), 4);
        assert_eq!(with_later[2].gflops, 8e8 * 2000.0 / 1e9);
        assert_eq!(with_later[2].device, 2);
        assert!(with_later[2].label.contains("split over warps"));
        std::fs::remove_file(t.join("cuda_kernel_s15_h200.csv")).unwrap();
        assert_eq!(points[0].intensity, 2.5);
        assert_eq!(points[0].gflops, 600.0);
        assert_eq!(points[1].intensity, 5.0);
        assert!(points[1].f32);
        assert_eq!(points[2].intensity, 18.0);
        assert_eq!(points[2].gflops, 3e6 * 1800.0 / 1e9);
        assert_eq!(points[2].device, 1);
        let png = t.join("roofline.png");
        crate::plot::register_font().unwrap();
        assert!(roofline(&png, t).unwrap());
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    }
}
