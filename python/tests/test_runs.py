"""lmech.train, Run, lmech.sweep and Sweep end to end on the bundled digits."""

import contextlib
import glob
import json
import os
import signal
import threading

import numpy as np
import pandas as pd
import pytest

import lmech
from conftest import EXAMPLES, SMALL


def test_train_from_a_toml_file_with_overrides(tmp_path):
    run = lmech.train(os.path.join(EXAMPLES, "digits_gd.toml"), out=tmp_path / "r",
                      overrides={"train.steps": 20, "model.width": 16}, train__log_every=5,
                      progress=False)
    assert run.status == "finished"
    assert run.config["train"]["steps"] == 20
    assert run.config["train"]["log_every"] == 5
    assert run.config["model"]["width"] == 16
    assert run.summary["steps_done"] == 20
    assert list(run.metrics()["step"]) == [0, 5, 10, 15, 20]


def test_overrides_as_strings(tmp_path):
    run = lmech.train(SMALL, out=tmp_path / "r", overrides=["optim.lr=0.25", "train.steps=3"],
                      progress=False)
    assert run.config["optim"]["lr"] == 0.25
    assert run.summary["steps_done"] == 3


def test_metrics_columns_and_dtypes(small_run):
    df = small_run.metrics()
    assert isinstance(df, pd.DataFrame)
    for col in ["step", "loss", "lr", "grad_norm", "train_acc", "test_loss", "test_acc",
                "time_s"]:
        assert col in df.columns, col
    assert df["step"].dtype == np.int64
    for col in ["loss", "train_acc", "test_loss", "test_acc", "time_s"]:
        assert df[col].dtype == np.float64, col
    assert list(df["step"]) == [0, 10, 20, 30, 40]
    # The loss in the table is the summary's final loss.
    assert df["loss"].iloc[-1] == small_run.summary["final"]["loss"]


def test_metrics_as_polars(small_run):
    pl = pytest.importorskip("polars")
    df = small_run.metrics(backend="polars")
    assert isinstance(df, pl.DataFrame)
    assert df["step"].to_list() == [0, 10, 20, 30, 40]


def test_run_opens_an_existing_directory(small_run):
    again = lmech.Run(small_run.path)
    assert again.config == small_run.config
    assert again.summary["status"] == "finished"


def test_not_a_run_directory(tmp_path):
    with pytest.raises(lmech.LmechError, match="not a run directory"):
        lmech.Run(tmp_path)


def test_bad_config_key_raises_with_lmechs_message(tmp_path):
    with pytest.raises(lmech.LmechError, match=r"config key `optim.lrr`: unknown field `lrr`"):
        lmech.train(SMALL, out=tmp_path / "r", overrides={"optim.lrr": 0.1}, progress=False)
    bad = dict(SMALL, model=dict(SMALL["model"], activation="sinusoid"))
    with pytest.raises(lmech.LmechError, match="sinusoid"):
        lmech.train(bad, out=tmp_path / "r2", progress=False)
    with pytest.raises(lmech.LmechError, match="device"):
        lmech.train(SMALL, out=tmp_path / "r3", device="tpu", progress=False)


def test_sweep_and_its_report(tmp_path):
    spec = {
        "name": "py-sweep",
        "base": dict(SMALL, train=dict(SMALL["train"], steps=10)),
        "axes": {"optim.lr": [0.1, 0.5], "seed": [0, 1]},
    }
    sw = lmech.sweep(spec, out=tmp_path / "sweep", progress=False)
    report = sw.report()
    assert isinstance(report, pd.DataFrame)
    assert len(report) == 4
    assert sorted(report["optim.lr"].unique()) == [0.1, 0.5]
    runs = sw.runs()
    assert len(runs) == 4
    assert all(r.status == "finished" for r in runs)
    assert sorted(r.config["optim"]["lr"] for r in runs) == [0.1, 0.1, 0.5, 0.5]
    assert len(lmech.Sweep(tmp_path / "sweep").report(refresh=True)) == 4


def test_ctrl_c_during_train_raises_keyboard_interrupt(tmp_path):
    long_run = dict(SMALL, train=dict(SMALL["train"], steps=10_000_000, log_every=100))
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lmech.train(long_run, out=tmp_path / "killed", progress=False)
    finally:
        timer.cancel()
    run = lmech.Run(tmp_path / "killed")
    # As a killed run leaves it: metrics so far, no summary, no model.
    assert run.status == "incomplete"
    assert not os.path.exists(os.path.join(run.path, "model.safetensors"))
    with open(os.path.join(run.path, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps[0] == 0 and steps[-1] < 10_000_000


def _logged_steps(store):
    """The steps of every metrics record under a sweep store."""
    steps = []
    for path in glob.glob(os.path.join(store, "**", "metrics.jsonl"), recursive=True):
        with open(path) as f:
            steps += [json.loads(line)["step"] for line in f if line.strip()]
    return steps


@contextlib.contextmanager
def _interrupt_when(ready):
    """Within the block, sends this process SIGINT once ``ready()`` holds
    (polled every 20 ms, for at most two minutes); the watcher is stopped
    and joined when the block ends."""
    stop = threading.Event()

    def watch():
        for _ in range(6000):
            if stop.wait(0.02):
                return
            if ready():
                os.kill(os.getpid(), signal.SIGINT)
                return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def test_ctrl_c_during_sweep_raises_keyboard_interrupt_and_a_later_sweep_resumes(tmp_path):
    base = dict(SMALL, train=dict(SMALL["train"], steps=10_000_000, log_every=100,
                                  checkpoint_every=200))
    spec = {"name": "py-killed-sweep", "base": base, "axes": {"seed": [0, 1]}}
    store = str(tmp_path / "sweep")
    restart_points = lambda: glob.glob(os.path.join(store, "**", "resume.safetensors"),  # noqa: E731
                                       recursive=True)
    with _interrupt_when(lambda: bool(restart_points())):
        with pytest.raises(KeyboardInterrupt):
            lmech.sweep(spec, out=store, progress=False)
    # As a killed worker leaves the store: nothing committed, no report, the
    # runs' restart points in their work directories.
    assert not glob.glob(os.path.join(store, "runs", "*"))
    assert not os.path.exists(os.path.join(store, "report.csv"))
    assert restart_points()
    reached = max(_logged_steps(store))
    assert reached < 10_000_000

    # A later sweep on the store takes the runs up again at once (their
    # claims were let go) and trains them past where the first one stopped.
    with _interrupt_when(lambda: max(_logged_steps(store)) > reached + 200):
        with pytest.raises(KeyboardInterrupt):
            lmech.sweep(spec, out=store, progress=False)
    assert max(_logged_steps(store)) > reached + 200


def test_progress_callback_sees_every_step_once_in_order(tmp_path):
    seen = []
    lmech.train(SMALL, out=tmp_path / "r", progress=lambda step, total: seen.append((step, total)))
    assert seen[0] == (0, 40)
    assert all(t == 40 for _, t in seen)
    assert [s for s, _ in seen] == sorted(set(s for s, _ in seen))
    assert seen[-1] == (40, 40)


def test_progress_outside_a_terminal_is_a_text_line(tmp_path, capsys, monkeypatch):
    import lmech.progress

    monkeypatch.setattr(lmech.progress, "progress_bar", lambda: lmech.progress._TextBar())
    monkeypatch.setattr("lmech.runs.progress_bar", lmech.progress.progress_bar)
    lmech.train(SMALL, out=tmp_path / "r")
    out = capsys.readouterr().out
    assert out.startswith("\rtraining: step 0/40")
    assert out.endswith("\rtraining: step 40/40\n")


def test_an_error_in_the_progress_callback_stops_the_run(tmp_path):
    def fail(step, total):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        lmech.train(SMALL, out=tmp_path / "r", progress=fail)


def test_measure_writes_json_beside_the_checkpoint(small_run, small_model, digits):
    doc = small_run.measure(["sharpness", "trace"], n=200, tol=1e-10, max_iter=300, probes=5)
    path = os.path.join(small_run.path, "model.measure.json")
    with open(path) as f:
        assert json.load(f) == doc
    assert doc["examples"] == 200 and doc["data"] == "train"
    assert doc["observables"]["trace"]["hvps"] == 5
    with pytest.raises(lmech.LmechError, match="unknown observable"):
        lmech.measure(small_run.path, ["curvature"])
