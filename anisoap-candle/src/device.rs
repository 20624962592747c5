//! Choosing a Candle device and dtype at run time, with clear errors for absent backends.

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// Parses `cpu`, `cuda`, `cuda:N` or `metal` and opens the device.
///
/// Errors name what is missing: a binary built without the `cuda`/`metal` feature, no GPU,
/// a broken driver, or an unknown name.
pub fn open_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_lowercase();
    let (name, ordinal) = match spec.split_once(':') {
        Some((name, n)) => {
            let ordinal = n.parse::<usize>().map_err(|_| {
                Error::Device(format!("'{spec}': the device ordinal must be an integer"))
            })?;
            (name.to_string(), ordinal)
        }
        None => (spec.clone(), 0),
    };
    match name.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => open_cuda(ordinal),
        "metal" => open_metal(ordinal),
        _ => Err(Error::Device(format!(
            "unknown device '{spec}'; expected cpu, cuda, cuda:N or metal"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    match std::panic::catch_unwind(|| Device::new_cuda(ordinal)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(Error::Device(format!(
            "CUDA device {ordinal} is not available: {e}"
        ))),
        Err(_) => Err(Error::Device(format!(
            "CUDA device {ordinal} could not be initialised (driver or library missing)"
        ))),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> Result<Device> {
    Err(Error::Device(
        "this binary was built without CUDA support; rebuild with `--features cuda` \
         (see scripts/build-cuda.sh)"
            .into(),
    ))
}

#[cfg(all(feature = "metal", target_os = "macos"))]
fn open_metal(ordinal: usize) -> Result<Device> {
    Device::new_metal(ordinal)
        .map_err(|e| Error::Device(format!("Metal device {ordinal} is not available: {e}")))
}

#[cfg(not(all(feature = "metal", target_os = "macos")))]
fn open_metal(_ordinal: usize) -> Result<Device> {
    Err(Error::Device(
        "this binary was built without Metal support; Metal needs macOS and `--features metal`"
            .into(),
    ))
}

/// Parses `f64`/`float64` or `f32`/`float32`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec.trim().to_lowercase().as_str() {
        "f64" | "float64" | "double" => Ok(DType::F64),
        "f32" | "float32" | "float" => Ok(DType::F32),
        other => Err(Error::Device(format!(
            "unknown dtype '{other}'; expected f64 or f32"
        ))),
    }
}

/// Rejects combinations the device cannot run (Metal has no float64).
pub fn check_dtype(device: &Device, dtype: DType) -> Result<()> {
    if device.is_metal() && dtype == DType::F64 {
        return Err(Error::Device(
            "Metal has no float64 support; use --dtype f32 on Metal, or --device cpu for f64"
                .into(),
        ));
    }
    Ok(())
}

/// Parses a device list and opens every device: `cuda:0,1,2,3` (a bare number continues the
/// previous kind), `cuda:0,cuda:1`, `cuda:all` (every GPU that opens), `cpu` or `cpu,cpu`
/// (several CPU workers: for tests of the multi-device logic). One entry gives one device.
pub fn open_devices(spec: &str) -> Result<Vec<Device>> {
    let spec = spec.trim().to_lowercase();
    if spec.is_empty() {
        return Err(Error::Device(
            "empty device; expected cpu, cuda, cuda:N, cuda:0,1,... or metal".into(),
        ));
    }
    let mut devices = Vec::new();
    let mut kind = String::new();
    for entry in spec.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(Error::Device(format!(
                "'{spec}': empty entry in the device list"
            )));
        }
        let full = if entry.bytes().all(|b| b.is_ascii_digit()) {
            if kind.is_empty() {
                return Err(Error::Device(format!(
                    "'{spec}': '{entry}' needs a device kind before it, e.g. cuda:{entry}"
                )));
            }
            format!("{kind}:{entry}")
        } else {
            kind = entry.split(':').next().unwrap_or_default().to_string();
            entry.to_string()
        };
        if full.ends_with(":all") {
            let name = full.trim_end_matches(":all");
            if name == "cpu" {
                return Err(Error::Device(
                    "cpu:all is not a device list; list CPU workers as cpu,cpu,...".into(),
                ));
            }
            let mut found = 0;
            for ordinal in 0..64 {
                match open_device(&format!("{name}:{ordinal}")) {
                    Ok(device) => {
                        devices.push(device);
                        found += 1;
                    }
                    Err(e) if found == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            continue;
        }
        devices.push(open_device(&full)?);
    }
    Ok(devices)
}

/// Threads of rayon's global pool, which the CPU kernels and the neighbour search use (its
/// size comes from `RAYON_NUM_THREADS` when the pool starts, else the logical CPUs).
pub fn rayon_threads() -> usize {
    rayon::current_num_threads()
}

/// Short human-readable name of a device (`cpu`, `cuda:0`, `metal:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        assert!(open_device("cpu").unwrap().is_cpu());
        assert!(open_device("CPU").unwrap().is_cpu());
        let err = open_device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device 'tpu'"), "{err}");
        assert!(open_device("cuda:x")
            .unwrap_err()
            .to_string()
            .contains("ordinal"));
        #[cfg(not(feature = "cuda"))]
        assert!(open_device("cuda")
            .unwrap_err()
            .to_string()
            .contains("without CUDA"));
        #[cfg(not(all(feature = "metal", target_os = "macos")))]
        assert!(open_device("metal")
            .unwrap_err()
            .to_string()
            .contains("without Metal"));
        assert_eq!(parse_dtype("f32").unwrap(), DType::F32);
        assert_eq!(parse_dtype("float64").unwrap(), DType::F64);
        assert!(parse_dtype("f16").unwrap_err().to_string().contains("f16"));
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }

    #[test]
    fn parses_device_lists() {
        assert_eq!(open_devices("cpu,cpu,cpu").unwrap().len(), 3);
        assert_eq!(open_devices("cpu").unwrap().len(), 1);
        for (spec, message) in [
            ("", "empty device"),
            ("cpu,,cpu", "empty entry"),
            ("1,2", "needs a device kind"),
            ("cpu,tpu", "unknown device 'tpu'"),
        ] {
            let err = open_devices(spec).unwrap_err().to_string();
            assert!(err.contains(message), "{spec}: {err}");
        }
        #[cfg(not(feature = "cuda"))]
        for spec in ["cuda:0,1", "cuda:all"] {
            let err = open_devices(spec).unwrap_err().to_string();
            assert!(err.contains("without CUDA"), "{spec}: {err}");
        }
    }
}
