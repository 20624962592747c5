//! Reading an output back (`merge`): its metadata, values as f64 and index columns, from any
//! of the formats the writer produces.

use super::{sidecar_path, METADATA_FORMAT};
use crate::output::OutputFormat;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// An output read back for `merge`: metadata, values (as f64) and index columns.
pub struct ReadOutput {
    /// The metadata it carries.
    pub metadata: serde_json::Map<String, Value>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row-major values.
    pub values: Vec<f64>,
    /// Stored as float32.
    pub as_f32: bool,
    /// Global frame of each row (from the index column, or the metadata's frame range for a
    /// per-frame `.npy`).
    pub frame: Vec<usize>,
    /// Centre of each row (per-centre outputs with index columns).
    pub center: Option<Vec<usize>>,
}

fn metadata_object(value: Value, path: &Path) -> Result<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map)
            if map.get("format").and_then(Value::as_str) == Some(METADATA_FORMAT) =>
        {
            Ok(map)
        }
        _ => bail!(
            "{}: no anisoap-candle output metadata (was it written by `compute` of this version?)",
            path.display()
        ),
    }
}

fn read_sidecar(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let sidecar = sidecar_path(path);
    let text = std::fs::read_to_string(&sidecar).with_context(|| {
        format!(
            "{}: its metadata sidecar {} is missing (an .npy/.csv output without it is \
             incomplete)",
            path.display(),
            sidecar.display()
        )
    })?;
    metadata_object(serde_json::from_str(&text)?, path)
}

fn usize_column(data: &[f64]) -> Vec<usize> {
    data.iter().map(|&v| v as usize).collect()
}

/// Reads an output written by [`StreamingOutput`](super::StreamingOutput) (any format).
pub fn read_output(path: &Path) -> Result<ReadOutput> {
    let format = OutputFormat::from_path(path)?;
    let (metadata, values, shape, as_f32, frame, center) = match format {
        OutputFormat::Npy => {
            let metadata = read_sidecar(path)?;
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let as_f32 = npy_is_f32(&bytes);
            let array = anisoap_candle::npy::parse_npy(&bytes, path)?;
            (metadata, array.data, array.shape, as_f32, None, None)
        }
        OutputFormat::Csv => {
            let metadata = read_sidecar(path)?;
            let per_center =
                metadata.get("quantity").and_then(Value::as_str) != Some("power_spectrum_mean");
            let mut reader = csv::Reader::from_path(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let skip = if per_center { 2 } else { 1 };
            let (mut values, mut frame, mut center) = (Vec::new(), Vec::new(), Vec::new());
            let mut cols = 0;
            let mut rows = 0;
            for record in reader.records() {
                let record = record.with_context(|| format!("{}: bad CSV", path.display()))?;
                let parse_index = |k: usize| -> Result<usize> {
                    record
                        .get(k)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| anyhow!("{}: row {rows}: bad index column", path.display()))
                };
                frame.push(parse_index(0)?);
                if per_center {
                    center.push(parse_index(1)?);
                }
                cols = record.len() - skip;
                for field in record.iter().skip(skip) {
                    values.push(field.parse::<f64>().with_context(|| {
                        format!("{}: row {rows}: '{field}' is not a number", path.display())
                    })?);
                }
                rows += 1;
            }
            let as_f32 = metadata.get("dtype").and_then(Value::as_str) == Some("f32");
            (
                metadata,
                values,
                vec![rows, cols],
                as_f32,
                Some(frame),
                per_center.then_some(center),
            )
        }
        OutputFormat::Npz => {
            let file =
                File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut zip = zip::ZipArchive::new(file)
                .with_context(|| format!("{}: not a readable npz", path.display()))?;
            let mut member = |name: &str| -> Result<Option<Vec<u8>>> {
                match zip.by_name(name) {
                    Ok(mut m) => {
                        let mut bytes = Vec::new();
                        m.read_to_end(&mut bytes)?;
                        Ok(Some(bytes))
                    }
                    Err(zip::result::ZipError::FileNotFound) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            };
            let metadata_bytes = member("metadata.json")?
                .ok_or_else(|| anyhow!("{}: no metadata.json member", path.display()))?;
            let metadata = metadata_object(serde_json::from_slice(&metadata_bytes)?, path)?;
            let name = metadata
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("power_spectrum")
                .to_string();
            let values_bytes = member(&format!("{name}.npy"))?
                .ok_or_else(|| anyhow!("{}: no {name}.npy member", path.display()))?;
            let as_f32 = npy_is_f32(&values_bytes);
            let array = anisoap_candle::npy::parse_npy(&values_bytes, path)?;
            let frame = member("frame.npy")?
                .map(|b| anisoap_candle::npy::parse_npy(&b, path))
                .transpose()?
                .map(|a| usize_column(&a.data));
            let center = member("center.npy")?
                .map(|b| anisoap_candle::npy::parse_npy(&b, path))
                .transpose()?
                .map(|a| usize_column(&a.data));
            (metadata, array.data, array.shape, as_f32, frame, center)
        }
        OutputFormat::Safetensors => read_safetensors(path)?,
    };
    let (rows, cols) = match shape.as_slice() {
        [r, c] => (*r, *c),
        other => bail!(
            "{}: expected a 2-D array, got shape {other:?}",
            path.display()
        ),
    };
    let frame = match frame {
        Some(f) => f,
        None => {
            let start = metadata["frames"]["start"].as_u64().unwrap_or(0) as usize;
            if metadata.get("quantity").and_then(Value::as_str) == Some("power_spectrum_mean") {
                (start..start + rows).collect()
            } else {
                Vec::new()
            }
        }
    };
    Ok(ReadOutput {
        metadata,
        rows,
        cols,
        values,
        as_f32,
        frame,
        center,
    })
}

fn npy_is_f32(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(256)];
    String::from_utf8_lossy(head).contains("'<f4'")
}

type Parts = (
    serde_json::Map<String, Value>,
    Vec<f64>,
    Vec<usize>,
    bool,
    Option<Vec<usize>>,
    Option<Vec<usize>>,
);

fn read_safetensors(path: &Path) -> Result<Parts> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bad = || anyhow!("{}: not a valid safetensors file", path.display());
    let n = u64::from_le_bytes(bytes.get(..8).ok_or_else(bad)?.try_into()?) as usize;
    let header: Value = serde_json::from_slice(
        bytes
            .get(8..8usize.checked_add(n).ok_or_else(bad)?)
            .ok_or_else(bad)?,
    )?;
    let data = &bytes[8 + n..];
    let text = header["__metadata__"]["anisoap_candle"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no anisoap_candle metadata", path.display()))?;
    let metadata = metadata_object(serde_json::from_str(text)?, path)?;
    type Entry<'b> = Option<(String, Vec<usize>, &'b [u8])>;
    let tensor = |name: &str| -> Result<Entry> {
        let Some(t) = header.get(name) else {
            return Ok(None);
        };
        let dtype = t["dtype"].as_str().ok_or_else(bad)?.to_string();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|v| v.as_u64().map(|x| x as usize).ok_or_else(bad))
            .collect::<Result<_>>()?;
        let offsets = t["data_offsets"].as_array().ok_or_else(bad)?;
        let (a, b) = (
            offsets.first().and_then(Value::as_u64).ok_or_else(bad)? as usize,
            offsets.get(1).and_then(Value::as_u64).ok_or_else(bad)? as usize,
        );
        Ok(Some((dtype, shape, data.get(a..b).ok_or_else(bad)?)))
    };
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("power_spectrum")
        .to_string();
    let (dtype, shape, raw) = tensor(&name)?.ok_or_else(bad)?;
    let as_f32 = dtype == "F32";
    let values: Vec<f64> = if as_f32 {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect()
    } else {
        raw.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    };
    let index = |name: &str| -> Result<Option<Vec<usize>>> {
        Ok(tensor(name)?.map(|(_, _, raw)| {
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
                .collect()
        }))
    };
    let (frame, center) = (index("frame")?, index("center")?);
    Ok((metadata, values, shape, as_f32, frame, center))
}
