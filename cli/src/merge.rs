//! `merge` subcommand: joins the shards of one run (`compute --shard K/N` or `--frames`) into
//! one output, after checking that they belong together and tile the frames exactly.

use crate::output::OutputFormat;
use crate::sink::{self, OutputSpec, ReadOutput, StreamingOutput};
use anisoap_candle::system::Layout;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::PathBuf;

/// Arguments of `anisoap-candle merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Shard outputs of one run (any order, any of the output formats).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Merged output; the format follows the extension (it may differ from the shards').
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// Metadata fields that must be equal in every shard of one run.
const MUST_AGREE: [&str; 8] = [
    "format_version",
    "version",
    "name",
    "quantity",
    "dtype",
    "hypers",
    "columns",
    "width",
];

/// The inputs' identity (frames and checksums; paths may differ between machines).
fn inputs_identity(metadata: &serde_json::Map<String, Value>) -> Value {
    match metadata.get("inputs") {
        Some(Value::Array(inputs)) => Value::Array(
            inputs
                .iter()
                .map(|i| serde_json::json!([i["frames"], i["bytes"], i["xxh3_128"]]))
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn frames_of(shard: &ReadOutput) -> Result<(usize, usize, usize)> {
    let f = &shard.metadata["frames"];
    match (f["start"].as_u64(), f["stop"].as_u64(), f["total"].as_u64()) {
        (Some(a), Some(b), Some(t)) => Ok((a as usize, b as usize, t as usize)),
        _ => bail!("no frame range in the metadata"),
    }
}

/// The layout described by an output's `columns` metadata.
fn layout_of(columns: &Value) -> Result<Layout> {
    let ints = |v: &Value| -> Option<Vec<i64>> {
        v.as_array()?
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<_>>>()
    };
    let types: Vec<i32> = ints(&columns["types"])
        .context("columns.types")?
        .into_iter()
        .map(|t| t as i32)
        .collect();
    let center_types: Vec<i32> = ints(&columns["center_types"])
        .context("columns.center_types")?
        .into_iter()
        .map(|t| t as i32)
        .collect();
    let neighbor_slots = columns["neighbor_types"]
        .as_array()
        .context("columns.neighbor_types")?
        .iter()
        .map(|row| {
            ints(row)
                .context("columns.neighbor_types")?
                .into_iter()
                .map(|t| {
                    types
                        .binary_search(&(t as i32))
                        .map_err(|_| anyhow::anyhow!("neighbour type {t} not in types"))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let n_radial = ints(&columns["n_radial"])
        .context("columns.n_radial")?
        .into_iter()
        .map(|n| n as usize)
        .collect();
    Ok(Layout {
        types,
        center_types,
        neighbor_slots,
        n_radial,
        is_sample: Vec::new(),
        n_frames: 0,
    })
}

/// Runs `merge`.
pub fn run(args: &MergeArgs) -> Result<()> {
    let format = OutputFormat::from_path(&args.output)?;
    let mut shards = Vec::with_capacity(args.shards.len());
    for path in &args.shards {
        let shard = sink::read_output(path).with_context(|| format!("shard {}", path.display()))?;
        let range = frames_of(&shard).with_context(|| format!("shard {}", path.display()))?;
        shards.push((path.clone(), range, shard));
    }
    shards.sort_by_key(|(_, (start, stop, _), _)| (*start, *stop));
    let (first_path, _, first) = &shards[0];
    for (path, _, shard) in &shards[1..] {
        for key in MUST_AGREE {
            if shard.metadata.get(key) != first.metadata.get(key) {
                bail!(
                    "{} and {} are not shards of one run: their '{key}' differs ({} vs {}){}",
                    first_path.display(),
                    path.display(),
                    first.metadata.get(key).unwrap_or(&Value::Null),
                    shard.metadata.get(key).unwrap_or(&Value::Null),
                    if key == "columns" {
                        "; compute the shards with the same --species list"
                    } else {
                        ""
                    }
                );
            }
        }
        if inputs_identity(&shard.metadata) != inputs_identity(&first.metadata) {
            bail!(
                "{} and {} were computed from different inputs (frame counts or checksums differ)",
                first_path.display(),
                path.display()
            );
        }
    }
    let total = shards[0].1 .2;
    let mut next = 0;
    for (path, (start, stop, _), _) in &shards {
        if *start > next {
            bail!(
                "frames {next}..{start} are missing: no shard covers them (next shard: {})",
                path.display()
            );
        }
        if *start < next {
            bail!(
                "{} (frames {start}..{stop}) overlaps the shards before it (they end at frame {next})",
                path.display()
            );
        }
        next = *stop;
    }
    if next != total {
        bail!("frames {next}..{total} are missing: no shard covers them");
    }
    let per_center =
        first.metadata.get("quantity").and_then(Value::as_str) != Some("power_spectrum_mean");
    let name = first
        .metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("power_spectrum")
        .to_string();
    let layout = layout_of(&first.metadata["columns"]).context("shard metadata")?;
    let mut metadata = first.metadata.clone();
    metadata.insert(
        "frames".into(),
        serde_json::json!({"start": 0, "stop": total, "total": total}),
    );
    metadata.insert("shard".into(), Value::Null);
    metadata.insert(
        "merged_from".into(),
        Value::Array(
            shards
                .iter()
                .map(|(p, (a, b, _), _)| serde_json::json!({"path": p.display().to_string(), "start": a, "stop": b}))
                .collect(),
        ),
    );
    let spec = OutputSpec {
        path: args.output.clone(),
        format,
        name,
        as_f32: first.as_f32,
        per_center,
    };
    let needs_index = per_center && format != OutputFormat::Npy;
    let mut out = StreamingOutput::new(spec, metadata)?;
    let width = first.cols;
    anisoap_candle::pipeline::RowSink::columns(&mut out, &layout, width)?;
    for (path, _, shard) in &shards {
        if shard.cols != width {
            bail!(
                "{}: {} columns, expected {width}",
                path.display(),
                shard.cols
            );
        }
        let frame: Vec<usize> = if shard.frame.len() == shard.rows {
            shard.frame.clone()
        } else if needs_index {
            bail!(
                "{}: a per-centre .npy shard has no frame/centre index columns; write the \
                 shards as .npz, .safetensors or .csv to merge into {}",
                path.display(),
                args.output.display()
            );
        } else {
            vec![0; shard.rows]
        };
        let center = match (&shard.center, needs_index) {
            (Some(c), _) => Some(c.as_slice()),
            (None, false) => None,
            (None, true) => bail!(
                "{}: no centre index column; write the shards as .npz, .safetensors or .csv",
                path.display()
            ),
        };
        out.append(&shard.values, &frame, center)?;
    }
    let rows = out.rows();
    out.finish()?;
    eprintln!(
        "merged {} shards: {rows} rows x {width} columns, frames 0..{total} -> {}",
        shards.len(),
        args.output.display()
    );
    Ok(())
}
