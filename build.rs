//! Build script: validates every WGSL shader in `shaders/` with naga, in
//! both storage variants (f32 and f16, `src/backend/wgpu/variant.rs`; a
//! shader that does not parse or validate fails the build, not a user's run)
//! and embeds the shader and CUDA kernel sources into the binary, so a built
//! lmech needs no source tree at run time. CUDA sources are compiled at run
//! time by NVRTC; their compile check is `tests/cuda_compile.rs`.

#[path = "src/backend/wgpu/variant.rs"]
mod variant;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, ext: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some(ext) {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                out.push((name, path));
            }
        }
    }
    out.sort();
    out
}

/// Validate the f32 and the f16 storage variant of a shader (`variant.rs`).
fn validate_wgsl(path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for half in [false, true] {
        let src = variant::storage_variant(&text, half).unwrap_or_else(|| {
            panic!(
                "{} declares no storage type: it needs a line `{}`",
                path.display(),
                variant::STORAGE_ALIAS
            )
        });
        let shown = format!(
            "{} ({} storage)",
            path.display(),
            if half { "f16" } else { "f32" }
        );
        validate_source(&src, &shown);
    }
}

fn validate_source(src: &str, shown: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("\n{}", e.emit_to_string_with_path(src, shown)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("\n{}", e.emit_to_string_with_path(src, shown)));
}

fn table(name: &str, files: &[(String, PathBuf)]) -> String {
    let mut s = format!("pub const {name}: &[(&str, &str)] = &[\n");
    for (stem, path) in files {
        let abs = path.canonicalize().unwrap();
        writeln!(
            s,
            "    ({stem:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    s.push_str("];\n");
    s
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/backend/wgpu/variant.rs");

    let shaders = sources(&root.join("shaders"), "wgsl");
    for (_, path) in &shaders {
        println!("cargo:rerun-if-changed={}", path.display());
        validate_wgsl(path);
    }
    let kernels = sources(&root.join("kernels"), "cu");
    let headers = sources(&root.join("kernels"), "cuh");
    for (_, path) in kernels.iter().chain(&headers) {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let mut out = String::new();
    out.push_str(&table("SHADERS", &shaders));
    out.push_str(&table("KERNELS", &kernels));
    out.push_str(&table("KERNEL_HEADERS", &headers));
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("sources.rs");
    std::fs::write(dest, out).unwrap();
}
