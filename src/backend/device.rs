//! Device selection (`--device auto|cpu|cuda[:N]|wgpu`). `auto` takes CUDA
//! when a driver and GPU are present, else a hardware wgpu adapter, else the
//! CPU, and says which it took. Asking by name for a backend that cannot run
//! here is an error that suggests the CPU.

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
            DeviceRequest::Auto => {
                // Only a hardware adapter beats the CPU backend: a software
                // one (lavapipe) runs the same math more slowly.
                let adapters = crate::backend::wgpu::adapters();
                if let Some(a) = adapters.iter().find(|a| a.hardware) {
                    return Ok((
                        Device::Wgpu,
                        format!("device: auto chose wgpu ({}, {})", a.name, a.backend),
                    ));
                }
                let why = if adapters.is_empty() {
                    "no CUDA backend in this build, no wgpu adapter".to_string()
                } else {
                    "no CUDA backend in this build, only software wgpu adapters".to_string()
                };
                Ok((Device::Cpu, format!("device: auto chose cpu ({why})")))
            }
            DeviceRequest::Cuda(i) => Err(Error::Device(format!(
                "cuda:{i} requested, but this build of lmech has no CUDA backend yet; run with --device cpu"
            ))),
            DeviceRequest::Wgpu => match crate::backend::wgpu::adapters().first() {
                Some(a) => Ok((
                    Device::Wgpu,
                    format!("device: wgpu ({}, {}, {})", a.name, a.backend, a.device_type),
                )),
                None => Err(Error::Device(
                    "wgpu requested, but no wgpu adapter was found (no Vulkan, Metal or D3D12 \
                     device); run with --device cpu"
                        .into(),
                )),
            },
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
    let mut lines = vec![
        cpu,
        "cuda: not in this build (the CUDA backend is not written yet)".into(),
    ];
    let adapters = crate::backend::wgpu::adapters();
    if adapters.is_empty() {
        lines.push(
            "wgpu: no adapter found (no Vulkan, Metal or D3D12 device; on Debian, \
             mesa-vulkan-drivers provides a software one)"
                .into(),
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        lines.push(format!(
            "wgpu adapter {i}: {} (backend {}, type {}{}){}",
            a.name,
            a.backend,
            a.device_type,
            if a.hardware { "" } else { ", software" },
            if i == 0 { " <- --device wgpu" } else { "" }
        ));
    }
    lines
}
