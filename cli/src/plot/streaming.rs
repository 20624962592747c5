//! `streaming_rss.png` from `tables/streaming_rss.csv` (`scripts/measure_streaming.sh`): peak
//! resident memory against the number of frames, for small and large frames, one line per
//! binary (streaming, in-memory) and output kind.

use super::lines::xy_chart;
use super::tables::StreamingRow;
use super::{Palette, Series};
use anyhow::Result;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Series of one frame size: `"binary, output"` → `(frames, peak RSS MB)` sorted by frames.
fn series_for(rows: &[StreamingRow], particles_per_frame: u64) -> Series {
    let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.particles_per_frame == particles_per_frame)
    {
        map.entry(format!("{}, {}", r.binary, r.output))
            .or_default()
            .push((r.frames as f64, r.peak_rss_mb));
    }
    map.into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, v)
        })
        .collect()
}

/// Draws the figure (one panel per frame size with more than one trajectory length);
/// `Ok(false)` when there is nothing to draw.
pub(super) fn streaming_rss(path: &Path, rows: &[StreamingRow]) -> Result<bool> {
    let mut counts: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for r in rows {
        counts
            .entry(r.particles_per_frame)
            .or_default()
            .insert(r.frames);
    }
    let sizes: Vec<u64> = counts
        .into_iter()
        .filter(|(_, frames)| frames.len() > 1)
        .map(|(p, _)| p)
        .collect();
    if sizes.is_empty() {
        return Ok(false);
    }
    let labels: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{}, {}", r.binary, r.output))
        .collect();
    let palette = Palette(labels.into_iter().collect());
    let width = 900 * sizes.len() as u32;
    let root = BitMapBackend::new(path, (width, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, sizes.len()));
    for (area, &p) in areas.iter().zip(&sizes) {
        xy_chart(
            area,
            &palette,
            &format!("peak RSS vs frames, {p}-particle frames"),
            "frames in the input",
            "peak RSS [MB]",
            &series_for(rows, p),
            true,
            false,
        )?;
    }
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_per_binary_and_output_sorted_by_frames() {
        let row = |binary: &str, frames, p, rss| StreamingRow {
            binary: binary.into(),
            frames,
            particles_per_frame: p,
            output: "mean".into(),
            peak_rss_mb: rss,
        };
        let rows = [
            row("streaming", 100, 2, 12.0),
            row("streaming", 10, 2, 11.0),
            row("in-memory", 10, 2, 50.0),
            row("streaming", 1, 1_000_000, 348.0),
        ];
        let s = series_for(&rows, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "in-memory, mean");
        assert_eq!(s[1].1, [(10.0, 11.0), (100.0, 12.0)]);
    }
}
