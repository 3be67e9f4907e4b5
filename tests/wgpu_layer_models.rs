//! Whole CNNs, ResNets, a BatchNorm CNN and a transformer block on wgpu (Mesa lavapipe in CI)
//! against the CPU: training steps, evaluation, HVP and Gauss-Newton
//! products, Lanczos, per-sample norms and the NTK; and a token transformer
//! under a sequence loss with ignored positions (`common::model_parity`).

mod common;

#[test]
fn layer_graph_models_on_wgpu_track_the_cpu() {
    let Some(g) = common::wgpu_pair::gpu(lmech::DType::F32) else {
        return;
    };
    common::model_parity::models_track_cpu(&g);
}

#[test]
fn a_masked_sequence_loss_on_wgpu_tracks_the_cpu() {
    let Some(g) = common::wgpu_pair::gpu(lmech::DType::F32) else {
        return;
    };
    common::model_parity::masked_sequences_track_cpu(&g);
}
