//! Runs the CUDA kernels without a GPU: `scripts/cuda-emulate.sh` compiles
//! every kernels/*.cu with g++ against a CPU emulation of the CUDA execution
//! model (one thread per CUDA thread, barriers, warp shuffles, the
//! tensor-core mma.sync fragments) and checks each kernel against a
//! double-precision reference. This is CI's only execution of the CUDA
//! kernels' index arithmetic; tests/cuda_parity.rs checks them on a real GPU.
//! Needs g++ (C++20) and python3: under CI their absence fails the test,
//! elsewhere it is reported skipped.

mod common;

use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn cuda_kernels_match_double_precision_references_on_the_cpu_emulator() {
    if !have("g++") || !have("python3") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide g++ and python3 for the CUDA kernel emulator"
        );
        common::skip("CUDA kernel emulator (g++ or python3 not found)");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cuda-emulate.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "emulated CUDA kernels disagree with their references:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failures"), "{stdout}");
}
