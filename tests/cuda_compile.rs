//! Every CUDA kernel family compiles with NVRTC to PTX for sm_80 (A100) and
//! sm_90 (H100/H200), and for sm_75 (T4) without its tensor-core kernels —
//! no GPU needed, only libnvrtc (CI installs PyPI's
//! nvidia-cuda-nvrtc-cu12 wheel and puts its lib/ on LD_LIBRARY_PATH). Where
//! NVRTC cannot be loaded the test fails under CI (env CI set) and reports
//! itself skipped elsewhere. With LMECH_EMIT_PTX=DIR it also writes each
//! family's PTX there (scripts/ptxas-report.sh feeds them to ptxas).

mod common;

use lmech::backend::cuda::{compile_family, family_source, nvrtc_present, FAMILIES};
use lmech::backend::sources;

/// sm_80 (A100) and sm_90 (H100/H200), the targets; sm_75 (T4) checks that
/// the families build without their tensor-core kernels on older GPUs.
const ARCHS: [&str; 3] = ["compute_75", "compute_80", "compute_90"];

#[test]
fn every_kernel_family_has_a_source_and_its_headers() {
    for family in FAMILIES {
        let src = family_source(family).unwrap();
        assert!(
            !src.contains("#include \""),
            "{family}.cu: unresolved include"
        );
        assert!(
            src.contains("extern \"C\" __global__"),
            "{family}.cu: no kernel"
        );
    }
    // No stray .cu file outside the families the backend loads.
    for (name, _) in sources::KERNELS {
        assert!(
            FAMILIES.contains(name),
            "kernels/{name}.cu is not a known family"
        );
    }
}

#[test]
fn every_kernel_compiles_with_nvrtc_for_sm75_sm80_and_sm90() {
    if !nvrtc_present() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must compile the CUDA kernels, but libnvrtc.so could not be loaded \
             (pip install nvidia-cuda-nvrtc-cu12 and add its lib/ to LD_LIBRARY_PATH)"
        );
        common::skip("NVRTC not found (libnvrtc.so not on the loader path)");
        return;
    }
    let emit = std::env::var_os("LMECH_EMIT_PTX").map(std::path::PathBuf::from);
    let mut failures = Vec::new();
    for family in FAMILIES {
        for arch in ARCHS {
            match compile_family(family, arch) {
                Ok(ptx) => {
                    let text = ptx.to_src();
                    assert!(
                        text.contains(".entry"),
                        "{family} {arch}: PTX without kernels"
                    );
                    if family == "matmul" {
                        let tc = text.contains(".entry gemm_tc_tf32");
                        assert_eq!(tc, arch != "compute_75", "{arch}: tensor-core kernels");
                    }
                    if let Some(dir) = &emit {
                        std::fs::create_dir_all(dir).unwrap();
                        std::fs::write(dir.join(format!("{family}.{arch}.ptx")), text).unwrap();
                    }
                    println!("compiled kernels/{family}.cu for {arch}");
                }
                Err(e) => failures.push(format!("{family} for {arch}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_compile_error_comes_back_as_an_error_with_the_log() {
    if !nvrtc_present() {
        common::skip("NVRTC not found (libnvrtc.so not on the loader path)");
        return;
    }
    let bad = "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }";
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some("compute_80"),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(bad, opts) {
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => {
            assert!(log.to_string_lossy().contains("undefined_name"))
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}
