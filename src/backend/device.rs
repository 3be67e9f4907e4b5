//! Device selection (`--device auto|cpu|cuda[:N]|wgpu`). `auto` takes CUDA
//! when a driver and GPU are present, else a hardware wgpu adapter, else the
//! CPU, and says which it took; for a run whose dtype only some backends
//! hold (f64: the CPU; f16 storage: wgpu) it takes one of those. Asking for a
//! backend that cannot run here is an error that says why and suggests the
//! CPU.

use crate::backend::{cuda, DType};
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

    /// `resolve` for a run stored in `dtype`: `auto` takes only a device
    /// that holds it, so an f64 run stays on the CPU wherever it is started.
    pub fn resolve_for(self, dtype: DType) -> Result<(Device, String)> {
        if self != DeviceRequest::Auto {
            return self.resolve();
        }
        match dtype {
            DType::F32 => self.resolve(),
            DType::F64 => Ok((
                Device::Cpu,
                "device: auto chose cpu (f64 runs on the CPU backend only)".into(),
            )),
            DType::F16 => match crate::backend::wgpu::adapters().into_iter().find(|a| a.f16) {
                Some(a) => Ok((
                    Device::Wgpu,
                    format!(
                        "device: auto chose wgpu ({}, {}) for f16 storage",
                        a.name, a.backend
                    ),
                )),
                None => Err(Error::config(
                    "dtype",
                    "f16 storage needs a wgpu adapter with SHADER_F16 and none was found; \
                     use dtype = \"f32\"",
                )),
            },
        }
    }

    /// The device to run on, and a line saying why.
    pub fn resolve(self) -> Result<(Device, String)> {
        match self {
            DeviceRequest::Cpu => Ok((Device::Cpu, "device: cpu".into())),
            DeviceRequest::Auto => {
                if let Some(name) = usable_cuda() {
                    return Ok((
                        Device::Cuda(0),
                        format!("device: auto chose cuda:0 ({name})"),
                    ));
                }
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
                    "no usable CUDA GPU, no wgpu adapter".to_string()
                } else {
                    "no usable CUDA GPU, only software wgpu adapters".to_string()
                };
                Ok((Device::Cpu, format!("device: auto chose cpu ({why})")))
            }
            DeviceRequest::Cuda(i) => {
                let gpus = cuda::list_gpus().map_err(|e| {
                    Error::Device(format!("cuda:{i} requested, but {}", device_msg(e)))
                })?;
                let gpu = gpus.get(i).ok_or_else(|| {
                    Error::Device(if gpus.is_empty() {
                        format!("cuda:{i} requested, but the CUDA driver reports no GPU; run with --device cpu")
                    } else {
                        format!(
                            "cuda:{i} requested, but this machine has {} CUDA GPU(s) (cuda:0 to cuda:{})",
                            gpus.len(),
                            gpus.len() - 1
                        )
                    })
                })?;
                Ok((Device::Cuda(i), format!("device: cuda:{i} ({})", gpu.name)))
            }
            DeviceRequest::Wgpu => match crate::backend::wgpu::adapters().first() {
                Some(a) => Ok((
                    Device::Wgpu,
                    format!(
                        "device: wgpu ({}, {}, {})",
                        a.name, a.backend, a.device_type
                    ),
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
    let mut lines = vec![cpu];
    lines.extend(describe_cuda());
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
            "wgpu adapter {i}: {} (backend {}, type {}{}, dtypes {}){}",
            a.name,
            a.backend,
            a.device_type,
            if a.hardware { "" } else { ", software" },
            if a.f16 { "f32 f16" } else { "f32" },
            if i == 0 { " <- --device wgpu" } else { "" }
        ));
    }
    lines
}

/// The name of GPU 0 when CUDA can run here (driver, a GPU and NVRTC).
fn usable_cuda() -> Option<String> {
    if !cuda::driver_present() || !cuda::nvrtc_present() {
        return None;
    }
    cuda::list_gpus().ok()?.into_iter().next().map(|g| g.name)
}

/// The message of a device error without its variant's prefix.
fn device_msg(e: Error) -> String {
    match e {
        Error::Device(m) => m,
        other => other.to_string(),
    }
}

/// One line per CUDA GPU, or one line saying why there is none.
fn describe_cuda() -> Vec<String> {
    if !cuda::driver_present() {
        return vec!["cuda: none (no NVIDIA driver: libcuda.so could not be loaded)".into()];
    }
    let gpus = match cuda::list_gpus() {
        Ok(g) if g.is_empty() => return vec!["cuda: none (the driver reports no GPU)".into()],
        Ok(g) => g,
        Err(e) => return vec![format!("cuda: none ({})", device_msg(e))],
    };
    let nvrtc = if cuda::nvrtc_present() {
        ""
    } else {
        " [unusable: libnvrtc.so not found; pip install nvidia-cuda-nvrtc-cu12 and add its lib/ to LD_LIBRARY_PATH]"
    };
    gpus.iter()
        .map(|g| {
            format!(
                "cuda:{}: {}, compute capability {}.{}, {:.1} GiB, dtypes f32{nvrtc}",
                g.ordinal,
                g.name,
                g.compute_capability.0,
                g.compute_capability.1,
                g.total_mem as f64 / (1u64 << 30) as f64
            )
        })
        .collect()
}
