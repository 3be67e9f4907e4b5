#!/usr/bin/env bash
# Regenerates the PyTorch parity fixtures that `tests/pytorch_parity.rs`
# checks lmech against:
#
#   bash bench/pytorch/make_parity_fixtures.sh
#
# It builds lmech, trains a few small f64 models for a few GD steps with
# `lmech train`, copies each checkpoint to tests/fixtures/parity/NAME.safetensors
# and runs bench/pytorch/parity.py on it to write tests/fixtures/parity/NAME.json.
# Needs PyTorch, NumPy, safetensors and SciPy (bench/pytorch/requirements.txt).
# The models are small (a few hundred to ~1000 parameters, 16 examples) so
# that dense Hessians are cheap and the fixtures stay small.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
OUT="tests/fixtures/parity"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.safetensors

# fixture NAME, then the config (TOML on stdin)
fixture() {
    local name="$1"
    shift
    cat >"$WORK/$name.toml"
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

ls -l "$OUT"
