#!/usr/bin/env bash
# Regenerates the PyTorch parity fixtures that `tests/pytorch_parity.rs`
# checks lmech against:
#
#   bash bench/pytorch/make_parity_fixtures.sh              # every fixture
#   bash bench/pytorch/make_parity_fixtures.sh NAME [NAME..] # only these
#
# It builds lmech, trains a few small f64 models for a few GD steps with
# `lmech train`, copies each checkpoint to tests/fixtures/parity/NAME.safetensors
# and runs bench/pytorch/parity.py on it to write tests/fixtures/parity/NAME.json.
# Needs PyTorch, NumPy, safetensors and SciPy (bench/pytorch/requirements.txt;
# PYTHON=path/to/python picks the interpreter).
# The models are small (a few hundred to ~1100 parameters, 16 examples) so
# that dense Hessians are cheap and the fixtures stay small: four MLPs and
# six layer-graph models (a CNN with pooling and LayerNorm, a ResNet with an
# identity and a projected skip, the same with BatchNorm, a Conv1d net with
# RMSNorm and a residual block on vectors, a transformer block with causal
# and non-causal attention, a 2-layer transformer on token ids, the same under muP with a tied
# unembedding). Regenerating a fixture changes its last digits with the
# BLAS and thread count, so regenerate only the ones you mean to change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
OUT="tests/fixtures/parity"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet
mkdir -p "$OUT"
ONLY=("$@")
if [ ${#ONLY[@]} -eq 0 ]; then
    rm -f "$OUT"/*.json "$OUT"/*.safetensors
fi

wanted() {
    [ ${#ONLY[@]} -eq 0 ] && return 0
    local w
    for w in "${ONLY[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# fixture NAME [parity.py options], then the config (TOML on stdin; @WORK@
# stands for the scratch directory)
fixture() {
    local name="$1"
    shift
    if ! wanted "$name"; then
        cat >/dev/null
        return
    fi
    sed "s|@WORK@|$WORK|g" >"$WORK/$name.toml"
    ./target/release/lmech --threads 1 train "$WORK/$name.toml" --out "$WORK/runs/$name" --quiet
    cp "$WORK/runs/$name/model.safetensors" "$OUT/$name.safetensors"
    "$PY" bench/pytorch/parity.py "$OUT/$name.safetensors" --out "$OUT/$name.json" "$@"
}

# tanh MLP, standard parametrization, softmax cross-entropy, on the bundled
# digits (the batch is the first 16 training digits, as lmech preprocesses them)
fixture tanh_sp_xent --n 16 --seed 0 <<'EOF'
name = "parity-tanh-sp-xent"
seed = 1
dtype = "f64"
[model]
width = 12
depth = 3
activation = "tanh"
parametrization = "sp"
[data]
source = "digits"
n_train = 64
scale = 0.0625
[optim]
name = "gd"
lr = 0.2
[train]
steps = 20
loss = "xent"
EOF

# gelu MLP, NTK parametrization, 0.5 ||f - y||^2 (random batch)
fixture gelu_ntk_mse --n 16 --seed 1 <<'EOF'
name = "parity-gelu-ntk-mse"
seed = 2
dtype = "f64"
[model]
width = 16
depth = 3
activation = "gelu"
parametrization = "ntk"
[data]
source = "teacher_student"
n = 64
input_dim = 6
output_dim = 2
[optim]
name = "gd"
lr = 0.5
[train]
steps = 20
loss = "mse"
EOF

# relu MLP, muP at width 24 over base width 16, no biases, mean squared error
fixture relu_mup_msemean_nobias --n 16 --seed 2 <<'EOF'
name = "parity-relu-mup-msemean"
seed = 3
dtype = "f64"
[model]
width = 24
depth = 3
activation = "relu"
bias = false
parametrization = "mup"
base_width = 16
[data]
source = "teacher_student"
n = 64
input_dim = 8
output_dim = 3
[optim]
name = "gd"
lr = 0.1
[train]
steps = 20
loss = "mse_mean"
EOF

# depth-4 softplus MLP, mean-field parametrization, 0.5 ||f - y||^2
fixture softplus_mf_depth4 --n 16 --seed 3 <<'EOF'
name = "parity-softplus-mf-depth4"
seed = 4
dtype = "f64"
[model]
width = 12
depth = 4
activation = "softplus"
parametrization = "mf"
base_width = 8
[data]
source = "teacher_student"
n = 64
input_dim = 5
output_dim = 1
[optim]
name = "gd"
lr = 1.0
[train]
steps = 20
loss = "mse"
EOF

# Inputs for the layer graphs on .npy data: Gaussian 3x8x8 images and 2x16
# signals (several input channels, so the order of the data's channels
# matters), with Gaussian targets.
"$PY" - "$WORK" <<'EOF'
import sys
import numpy as np
rng = np.random.default_rng(7)
np.save(f"{sys.argv[1]}/images_x.npy", rng.standard_normal((64, 3, 8, 8)))
np.save(f"{sys.argv[1]}/images_y.npy", rng.standard_normal((64, 4)))
np.save(f"{sys.argv[1]}/signals_x.npy", rng.standard_normal((64, 2, 16)))
np.save(f"{sys.argv[1]}/signals_y.npy", rng.standard_normal((64, 3)))
# Token ids (6 per example from a vocabulary of 10) and class labels, from
# a generator of their own so the arrays above stay as they were.
tok = np.random.default_rng(8)
np.save(f"{sys.argv[1]}/tokens_x.npy", tok.integers(0, 10, size=(64, 6)))
np.save(f"{sys.argv[1]}/tokens_y.npy", tok.integers(0, 3, size=64))
EOF

# CNN on the digits (1x8x8), standard parametrization, cross-entropy: conv
# 3x3 + tanh, 2x2 max pooling, conv 3x3, LayerNorm over the channels, gelu,
# 2x2 average pooling, flatten, dense readout (524 parameters). The
# reference GD run takes lr 0.05, below 2 / sharpness (about 21), so that it
# is stable and f32 rounding is not amplified; the digits' blank borders
# give max-pooling windows with tied maxima (the first one wins, as in
# PyTorch).
fixture cnn_sp_xent --n 16 --seed 4 --gd-lr 0.05 <<'EOF'
name = "parity-cnn-sp-xent"
seed = 5
dtype = "f64"
[model]
parametrization = "sp"
width = 4
base_width = 4
[[model.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
activation = "tanh"
[[model.layers]]
kind = "max_pool"
kernel = 2
[[model.layers]]
kind = "conv2d"
channels = 6
kernel = 3
padding = 1
[[model.layers]]
kind = "layer_norm"
[[model.layers]]
kind = "activation"
activation = "gelu"
[[model.layers]]
kind = "avg_pool"
kernel = 2
[[model.layers]]
kind = "flatten"
[[model.layers]]
kind = "dense"
width = 10
[data]
source = "digits"
n_train = 64
scale = 0.0625
[optim]
name = "gd"
lr = 0.2
[train]
steps = 20
loss = "xent"
EOF

# ResNet on Gaussian 3x8x8 images, muP at width 4 over base width 2,
# 0.5 ||f - y||^2 on Gaussian targets: a relu stem; a basic block with an
# identity skip (conv, LayerNorm, gelu, conv, LayerNorm, then relu of the
# sum); a block with stride 2 into 6 channels (LayerNorm without bias, eps
# 1e-3) and a projected skip (bias-free 1x1 convolution, stride 2); global
# average pooling; dense readout. (On the digits, whose blank borders make
# LayerNorm's input nearly constant over the channels, GD was unstable along
# the first block's convolution bias: a 1e-7 change of the learning rate
# grew to 1e-3 in 10 steps. Gaussian images avoid that.) The reference GD
# run takes lr 0.1, where the loss decreases every step. The seed of the batch,
# v and the probes is picked for f32 conditioning: with seed 5 PyTorch's own
# f32 HVP is off by 1.4e-6 (the f32 tolerance is 2e-6); with seed 7 the
# probes' Hutchinson mean is 1.4 for a trace of 8.2, and its f32 relative
# error 1.4e-5; seed 8 has neither problem.
fixture resnet_mup_mse --n 16 --seed 8 --gd-lr 0.1 <<'EOF'
name = "parity-resnet-mup-mse"
seed = 6
dtype = "f64"
[model]
parametrization = "mup"
width = 4
base_width = 2
[[model.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
activation = "relu"
[[model.layers]]
kind = "residual"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "activation"
activation = "gelu"
[[model.layers.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers]]
kind = "residual"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 6
kernel = 3
stride = 2
padding = 1
[[model.layers.layers]]
kind = "layer_norm"
bias = false
eps = 1e-3
[[model.layers.layers]]
kind = "activation"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 6
kernel = 3
padding = 1
[[model.layers]]
kind = "global_avg_pool"
[[model.layers]]
kind = "dense"
width = 4
[data]
source = "npy"
x_path = "@WORK@/images_x.npy"
y_path = "@WORK@/images_y.npy"
input_shape = [3, 8, 8]
[optim]
name = "gd"
lr = 0.2
[train]
steps = 20
loss = "mse"
EOF

# Conv1d net on Gaussian 2-channel signals of length 16, mean-field at width 4 over base
# width 2, 0.5 ||f - y||^2: conv1d + silu, RMSNorm with a bias, average
# pooling with padding (count_include_pad), strided conv1d + elu, max
# pooling with stride 1, flatten, dense + softplus, a residual block on
# vectors whose skip is a bias-free dense projection (8 -> 5), LayerNorm
# without gain, dense readout. The reference GD run takes lr 0.3, where the
# loss decreases every step.
fixture conv1d_mf_mse --n 16 --seed 6 --gd-lr 0.3 <<'EOF'
name = "parity-conv1d-mf-mse"
seed = 7
dtype = "f64"
[model]
parametrization = "mf"
width = 4
base_width = 2
[[model.layers]]
kind = "conv1d"
channels = 4
kernel = 3
padding = 1
activation = "silu"
[[model.layers]]
kind = "rms_norm"
bias = true
[[model.layers]]
kind = "avg_pool"
kernel = 3
stride = 2
padding = 1
[[model.layers]]
kind = "conv1d"
channels = 6
kernel = 3
stride = 2
activation = "elu"
[[model.layers]]
kind = "max_pool"
kernel = 2
stride = 1
[[model.layers]]
kind = "flatten"
[[model.layers]]
kind = "dense"
width = 8
activation = "softplus"
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "dense"
width = 5
activation = "softplus"
[[model.layers.layers]]
kind = "dense"
width = 5
[[model.layers]]
kind = "layer_norm"
gain = false
[[model.layers]]
kind = "dense"
width = 3
[data]
source = "npy"
x_path = "@WORK@/signals_x.npy"
y_path = "@WORK@/signals_y.npy"
input_shape = [2, 16]
[optim]
name = "gd"
lr = 0.5
[train]
steps = 20
loss = "mse"
EOF

# ResNet with BatchNorm on Gaussian 3x8x8 images, NTK parametrization,
# 0.5 ||f - y||^2 on Gaussian targets: a bias-free convolution stem,
# BatchNorm, relu; a basic block with an identity skip (bias-free conv,
# BatchNorm, relu, bias-free conv, BatchNorm without gain and momentum 0.3,
# then relu of the sum); a block with stride 2 into 6 channels (BatchNorm
# eps 1e-3) and a projected skip; global average pooling; dense readout.
# Curvature is of the training-mode function (batch statistics); the
# per-example norms and the NTK are not defined (lmech refuses them); the
# checkpoint's running statistics, moved by its 20 training steps, give the
# eval-mode outputs; the reference GD run also checks the running statistics
# after its 10 steps.
fixture resnet_bn_ntk_mse --n 16 --seed 9 --gd-lr 0.1 <<'EOF'
name = "parity-resnet-bn-ntk-mse"
seed = 8
dtype = "f64"
[model]
parametrization = "ntk"
width = 4
[[model.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
bias = false
[[model.layers]]
kind = "batch_norm"
[[model.layers]]
kind = "activation"
activation = "relu"
[[model.layers]]
kind = "residual"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
bias = false
[[model.layers.layers]]
kind = "batch_norm"
[[model.layers.layers]]
kind = "activation"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 4
kernel = 3
padding = 1
bias = false
[[model.layers.layers]]
kind = "batch_norm"
gain = false
momentum = 0.3
[[model.layers]]
kind = "residual"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 6
kernel = 3
stride = 2
padding = 1
bias = false
[[model.layers.layers]]
kind = "batch_norm"
eps = 1e-3
[[model.layers.layers]]
kind = "activation"
activation = "relu"
[[model.layers.layers]]
kind = "conv2d"
channels = 6
kernel = 3
padding = 1
[[model.layers]]
kind = "global_avg_pool"
[[model.layers]]
kind = "dense"
width = 4
[data]
source = "npy"
x_path = "@WORK@/images_x.npy"
y_path = "@WORK@/images_y.npy"
input_shape = [3, 8, 8]
[optim]
name = "gd"
lr = 0.2
[train]
steps = 20
loss = "mse"
EOF

# A pre-norm transformer block on Gaussian 2-channel signals of length 16
# (16 positions), muP at width 8 over base width 4 (zero-initialized
# queries, 1/head_dim scores), 0.5 ||f - y||^2: a conv1d embedding into 8
# channels + tanh; a residual causal 2-head attention after LayerNorm; a
# residual MLP of 1x1 convolutions after LayerNorm; a non-causal biased
# 4-head attention with head_dim 3; global average pooling; dense readout.
fixture transformer_mup_mse --n 16 --seed 10 --gd-lr 0.05 <<'EOF'
name = "parity-transformer-mup-mse"
seed = 9
dtype = "f64"
[model]
parametrization = "mup"
width = 8
base_width = 4
[[model.layers]]
kind = "conv1d"
channels = 8
kernel = 3
padding = 1
activation = "tanh"
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "attention"
heads = 2
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "conv1d"
channels = 16
kernel = 1
activation = "gelu"
[[model.layers.layers]]
kind = "conv1d"
channels = 8
kernel = 1
[[model.layers]]
kind = "attention"
heads = 4
head_dim = 3
causal = false
bias = true
[[model.layers]]
kind = "global_avg_pool"
[[model.layers]]
kind = "dense"
width = 3
[data]
source = "npy"
x_path = "@WORK@/signals_x.npy"
y_path = "@WORK@/signals_y.npy"
input_shape = [2, 16]
[optim]
name = "gd"
lr = 0.05
[train]
steps = 20
loss = "mse"
EOF

# A 2-layer pre-norm transformer on token ids, standard parametrization,
# cross-entropy on the last position: embedding (vocab 10, width 8),
# learned positions, two blocks of [LayerNorm, causal 2-head attention] and
# [LayerNorm, 1x1 conv 16 + gelu, 1x1 conv 8], a final LayerNorm, the last
# position, dense readout.
fixture tokens_transformer_sp_xent --n 16 --seed 12 --gd-lr 0.1 <<'EOF'
name = "parity-tokens-transformer-sp-xent"
seed = 11
dtype = "f64"
[model]
parametrization = "sp"
[[model.layers]]
kind = "embedding"
vocab = 10
width = 8
[[model.layers]]
kind = "position_embedding"
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "attention"
heads = 2
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "conv1d"
channels = 16
kernel = 1
activation = "gelu"
[[model.layers.layers]]
kind = "conv1d"
channels = 8
kernel = 1
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "attention"
heads = 2
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "conv1d"
channels = 16
kernel = 1
activation = "gelu"
[[model.layers.layers]]
kind = "conv1d"
channels = 8
kernel = 1
[[model.layers]]
kind = "layer_norm"
[[model.layers]]
kind = "pick_position"
[[model.layers]]
kind = "dense"
width = 3
[data]
source = "npy"
x_path = "@WORK@/tokens_x.npy"
y_path = "@WORK@/tokens_y.npy"
[optim]
name = "gd"
lr = 0.1
[train]
steps = 20
loss = "xent"
EOF

# The same transformer under muP (base width 4, so m = 2) read out through
# the embedding's own weight (a tied unembedding at the last position):
# logits over the 10 tokens, one parameter fed by two uses.
fixture tokens_transformer_tied_mup_xent --n 16 --seed 13 --gd-lr 0.1 <<'EOF'
name = "parity-tokens-transformer-tied-mup-xent"
seed = 11
dtype = "f64"
[model]
parametrization = "mup"
base_width = 4
[[model.layers]]
kind = "embedding"
vocab = 10
width = 8
[[model.layers]]
kind = "position_embedding"
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "attention"
heads = 2
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "conv1d"
channels = 16
kernel = 1
activation = "gelu"
[[model.layers.layers]]
kind = "conv1d"
channels = 8
kernel = 1
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "attention"
heads = 2
[[model.layers]]
kind = "residual"
[[model.layers.layers]]
kind = "layer_norm"
[[model.layers.layers]]
kind = "conv1d"
channels = 16
kernel = 1
activation = "gelu"
[[model.layers.layers]]
kind = "conv1d"
channels = 8
kernel = 1
[[model.layers]]
kind = "layer_norm"
[[model.layers]]
kind = "pick_position"
[[model.layers]]
kind = "unembedding"
tied = true
[data]
source = "npy"
x_path = "@WORK@/tokens_x.npy"
y_path = "@WORK@/tokens_y.npy"
num_classes = 10
[optim]
name = "gd"
lr = 0.1
[train]
steps = 20
loss = "xent"
EOF

ls -l "$OUT"
