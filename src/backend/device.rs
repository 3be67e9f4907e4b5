//! Device selection (`--device auto|cpu|cuda[:N]|wgpu`). `auto` takes CUDA
//! when a driver and GPU are present, else a hardware wgpu adapter, else the
//! CPU, and says which it took. The GPU backends are not in this build yet:
//! asking for one by name is an error that suggests the CPU.

use crate::error::{Error, Result};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
    Wgpu,
}

/// A device the engine can run on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Wgpu,
    Cuda(usize),
}

impl Device {
    pub fn name(self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Wgpu => "wgpu".into(),
            Device::Cuda(i) => format!("cuda:{i}"),
        }
    }
}

impl DeviceRequest {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" => Ok(DeviceRequest::Cuda(0)),
            "wgpu" => Ok(DeviceRequest::Wgpu),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceRequest::Cuda(i)),
                _ => Err(Error::config(
                    "device",
                    format!("unknown device {s:?}; expected auto, cpu, cuda, cuda:N or wgpu"),
                )),
            },
        }
    }

    /// The device to run on, and a line saying why.
    pub fn resolve(self) -> Result<(Device, String)> {
        match self {
            DeviceRequest::Cpu => Ok((Device::Cpu, "device: cpu".into())),
            DeviceRequest::Auto => Ok((
                Device::Cpu,
                "device: auto chose cpu (this build has no CUDA or wgpu backend yet)".into(),
            )),
            DeviceRequest::Cuda(i) => Err(Error::Device(format!(
                "cuda:{i} requested, but this build of lmech has no CUDA backend yet; run with --device cpu"
            ))),
            DeviceRequest::Wgpu => Err(Error::Device(
                "wgpu requested, but this build of lmech has no wgpu backend yet; run with --device cpu".into(),
            )),
        }
    }
}

/// Lines describing what `lmech devices` can offer on this machine.
pub fn describe_devices() -> Vec<String> {
    let mut cpu = format!("cpu: {} threads", rayon::current_num_threads());
    #[cfg(target_arch = "x86_64")]
    {
        let feats: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        cpu.push_str(&format!(
            ", SIMD: {}",
            if feats.is_empty() {
                "none".to_string()
            } else {
                feats.join(" ")
            }
        ));
    }
    cpu.push_str(", dtypes f32 f64");
    vec![
        cpu,
        "cuda: not in this build (the CUDA backend is not written yet)".into(),
        "wgpu: not in this build (the WGSL backend is not written yet)".into(),
    ]
}
