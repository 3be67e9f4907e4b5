//! The wgpu device behind the backend: adapter discovery and choice, the
//! device and queue, compiled pipelines (built lazily on first use and cached
//! by shader, entry point and storage dtype), and the helpers every launcher
//! uses to dispatch a kernel and to read results back. One context per process is
//! shared by every `Wgpu` value, so tests and tools do not each pay for
//! device creation and shader compilation.

use super::storage::{Pool, Pooled};
use super::variant::storage_variant;
use crate::backend::{sources, DType};
use crate::error::{Error, Result};
use ::wgpu::{Adapter, BufferUsages, ComputePipeline, DeviceType, Instance, InstanceDescriptor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One adapter as `lmech devices` lists it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// False for software adapters (lavapipe / llvmpipe, WARP).
    pub hardware: bool,
    /// The adapter offers `SHADER_F16`, so `dtype = "f16"` can run on it.
    pub f16: bool,
}

fn summary(adapter: &Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        hardware: info.device_type != DeviceType::Cpu,
        f16: adapter.features().contains(::wgpu::Features::SHADER_F16),
    }
}

fn instance() -> Instance {
    super::runtime_dir::ensure();
    Instance::new(InstanceDescriptor::new_without_display_handle())
}

fn all_adapters(inst: &Instance) -> Vec<Adapter> {
    pollster::block_on(inst.enumerate_adapters(::wgpu::Backends::all()))
}

/// Preference order when several adapters are present: a discrete GPU, then
/// an integrated one, then anything else, and a software (CPU) adapter last.
fn rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

/// Every adapter wgpu finds on this machine, best first.
pub fn adapters() -> Vec<AdapterSummary> {
    let mut found = all_adapters(&instance());
    found.sort_by_key(|a| rank(a.get_info().device_type));
    found.iter().map(summary).collect()
}

pub struct Context {
    pub device: ::wgpu::Device,
    pub queue: ::wgpu::Queue,
    pub info: AdapterSummary,
    pub pool: Arc<Pool>,
    /// The device was created with `SHADER_F16`: f16 storage is available.
    pub shader_f16: bool,
    modules: Mutex<HashMap<(&'static str, DType), ::wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str, DType), ComputePipeline>>,
    submits: Mutex<u64>,
}

/// Work items per workgroup of every one-thread-per-element kernel.
pub const GROUP: u32 = 256;
const MAX_GROUPS: u32 = 65535;

/// 4-byte words holding `bytes` bytes.
pub fn words(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// The workgroup grid covering `threads` threads of a one-thread-per-element
/// kernel; past 65535 workgroups it folds into a 2-D grid (the shaders'
/// `flat` unfolds it).
pub fn grid(threads: usize) -> (u32, u32, u32) {
    workgroups(threads.div_ceil(GROUP as usize))
}

/// A grid of (at least) `n` workgroups, folded into two dimensions past
/// 65535, for kernels that give each workgroup one unit of work (a row);
/// a shader's unit is `wg.x + wg.y * nwg.x`, and units past `n` return.
pub fn workgroups(n: usize) -> (u32, u32, u32) {
    let n = n.max(1) as u32;
    if n <= MAX_GROUPS {
        (n, 1, 1)
    } else {
        (MAX_GROUPS, n.div_ceil(MAX_GROUPS), 1)
    }
}

impl Context {
    /// The process-wide context, created on first use on the best adapter.
    pub fn shared() -> Result<Arc<Context>> {
        static CTX: OnceLock<std::result::Result<Arc<Context>, String>> = OnceLock::new();
        CTX.get_or_init(|| Context::create().map(Arc::new))
            .clone()
            .map_err(Error::Device)
    }

    fn create() -> std::result::Result<Context, String> {
        let inst = instance();
        let mut found = all_adapters(&inst);
        found.sort_by_key(|a| rank(a.get_info().device_type));
        let adapter = found.into_iter().next().ok_or_else(|| {
            "no wgpu adapter found (no Vulkan, Metal or D3D12 device; on Debian, \
             `apt-get install mesa-vulkan-drivers libvulkan1` provides a software one); \
             run with --device cpu"
                .to_string()
        })?;
        let info = adapter.get_info();
        // One device serves every dtype, so take f16 whenever the adapter
        // offers it; the f32 shader variants do not use it.
        let shader_f16 = adapter.features().contains(::wgpu::Features::SHADER_F16);
        let required_features = if shader_f16 {
            ::wgpu::Features::SHADER_F16
        } else {
            ::wgpu::Features::empty()
        };
        // The adapter's own limits, not WebGPU's defaults: a data set is one
        // storage buffer, and the defaults cap bindings at 128 MiB.
        let desc = ::wgpu::DeviceDescriptor {
            label: Some("lmech"),
            required_features,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| format!("wgpu adapter {} refused a device: {e}", info.name))?;
        let pool = Arc::new(Pool::new(device.clone()));
        Ok(Context {
            device,
            queue,
            info: summary(&adapter),
            pool,
            shader_f16,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            submits: Mutex::new(0),
        })
    }

    fn pipeline(&self, shader: &'static str, entry: &'static str, dtype: DType) -> ComputePipeline {
        let mut pipes = self.pipelines.lock().unwrap();
        if let Some(p) = pipes.get(&(shader, entry, dtype)) {
            return p.clone();
        }
        let module = {
            let mut mods = self.modules.lock().unwrap();
            mods.entry((shader, dtype))
                .or_insert_with(|| {
                    // build.rs validated both variants of every shader.
                    let src = sources::shader(shader)
                        .and_then(|s| storage_variant(s, dtype == DType::F16))
                        .unwrap_or_else(|| panic!("internal: no shader {shader}.wgsl embedded"));
                    self.device
                        .create_shader_module(::wgpu::ShaderModuleDescriptor {
                            label: Some(shader),
                            source: ::wgpu::ShaderSource::Wgsl(src.into()),
                        })
                })
                .clone()
        };
        let pipe = self
            .device
            .create_compute_pipeline(&::wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        pipes.insert((shader, entry, dtype), pipe.clone());
        pipe
    }

    /// A buffer of at least `elems` f32 from the pool; contents undefined.
    pub fn alloc(&self, elems: usize) -> Result<Arc<Pooled>> {
        self.alloc_bytes(elems * 4)
    }

    /// A buffer of at least `bytes` bytes (rounded up to whole 4-byte words,
    /// as buffer copies require) from the pool; contents undefined.
    pub fn alloc_bytes(&self, bytes: usize) -> Result<Arc<Pooled>> {
        self.pool.take(words(bytes).max(1) as u64 * 4)
    }

    /// Run `entry` of `shaders/{shader}.wgsl`, in its `dtype` storage
    /// variant, over `groups` workgroups.
    /// `params` fill the shader's `Params` struct (binding 0, u32 words, f32
    /// fields as bits); `bindings` are the other (binding, buffer) pairs the
    /// entry point uses; `clear` buffers are zeroed first.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &self,
        shader: &'static str,
        entry: &'static str,
        dtype: DType,
        params: &[u32],
        bindings: &[(u32, &::wgpu::Buffer)],
        groups: (u32, u32, u32),
        clear: &[&::wgpu::Buffer],
    ) -> Result<()> {
        let pipe = self.pipeline(shader, entry, dtype);
        let pbuf = self.alloc(params.len())?;
        self.queue
            .write_buffer(pbuf.buffer(), 0, bytemuck::cast_slice(params));
        let mut entries = vec![::wgpu::BindGroupEntry {
            binding: 0,
            resource: pbuf.buffer().as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|(b, buf)| ::wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.as_entire_binding(),
        }));
        let group = self.device.create_bind_group(&::wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipe.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut enc = self
            .device
            .create_command_encoder(&::wgpu::CommandEncoderDescriptor { label: Some(entry) });
        for buf in clear {
            enc.clear_buffer(buf, 0, None);
        }
        {
            let mut pass = enc.begin_compute_pass(&::wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        self.submit(enc);
        Ok(())
    }

    /// Submit recorded work. Every so often, poll without blocking so wgpu
    /// frees what finished submissions held; nothing here waits for the GPU.
    pub fn submit(&self, enc: ::wgpu::CommandEncoder) {
        self.queue.submit([enc.finish()]);
        let mut n = self.submits.lock().unwrap();
        *n += 1;
        if *n % 64 == 0 {
            let _ = self.device.poll(::wgpu::PollType::Poll);
        }
    }

    /// Copy the first `bytes` bytes of `src` into a fresh pooled buffer.
    pub fn copy(&self, src: &::wgpu::Buffer, bytes: usize) -> Result<Arc<Pooled>> {
        let dst = self.alloc_bytes(bytes)?;
        if bytes > 0 {
            let mut enc = self
                .device
                .create_command_encoder(&::wgpu::CommandEncoderDescriptor {
                    label: Some("copy"),
                });
            enc.copy_buffer_to_buffer(src, 0, dst.buffer(), 0, Some(words(bytes) as u64 * 4));
            self.submit(enc);
        }
        Ok(dst)
    }

    /// Wait for the queue and read the first `words` 4-byte words of `src`:
    /// the only host round trip, used for downloads and logged scalars.
    pub fn read_words(&self, src: &::wgpu::Buffer, words: usize) -> Result<Vec<u32>> {
        if words == 0 {
            return Ok(Vec::new());
        }
        let bytes = (words * 4) as u64;
        let staging = self.device.create_buffer(&::wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&::wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, Some(bytes));
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(::wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(::wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("wgpu: waiting for the GPU failed: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Device("wgpu: buffer mapping was dropped".into()))?
            .map_err(|e| Error::Device(format!("wgpu: reading a buffer back failed: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Device(format!("wgpu: mapped range: {e}")))?;
            bytemuck::cast_slice::<u8, u32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// `read_words` as f32.
    pub fn read(&self, src: &::wgpu::Buffer, elems: usize) -> Result<Vec<f32>> {
        Ok(self
            .read_words(src, elems)?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    }
}
