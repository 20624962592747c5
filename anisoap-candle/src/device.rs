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
}
