"""Each script under examples/python/ runs to the end and writes its plot
(they need matplotlib; the CNN one needs PyTorch)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = {
    "train_and_plot.py": "loss.png",
    "mup_transfer.py": "transfer.png",
    "torch_cnn_spectrum.py": "spectrum.png",
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs(script, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: examples not run")
    if script.startswith("torch"):
        pytest.importorskip("torch", reason="PyTorch is not installed: the bridge example not run")
    path = os.path.join(ROOT, "examples", "python", script)
    done = subprocess.run([sys.executable, path, str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(tmp_path / SCRIPTS[script]) > 0
