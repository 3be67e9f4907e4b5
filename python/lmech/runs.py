"""Runs and sweeps: ``train`` and ``sweep`` call the engine (configs as TOML
files or dicts, overrides as dotted keys), ``Run`` and ``Sweep`` read what
they leave on disk into dicts and DataFrames."""

from __future__ import annotations

import json
import math
import os
import sys
import tomllib
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _lmech
from .model import Model
from .progress import progress_bar

Config = Union[str, "os.PathLike[str]", Mapping[str, Any]]


def _toml_value(v: Any) -> str:
    """A Python value as the TOML text of a ``--set key=value``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"override value {v!r}: expected a bool, number, string or list")


def _override_args(overrides: Union[None, Mapping[str, Any], Iterable[str]],
                   kwargs: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    if isinstance(overrides, Mapping):
        args += [f"{k}={_toml_value(v)}" for k, v in overrides.items()]
    elif overrides is not None:
        args += [str(o) for o in overrides]
    # Keyword overrides spell the dots of config keys as "__": optim__lr=0.1.
    args += [f"{k.replace('__', '.')}={_toml_value(v)}" for k, v in kwargs.items()]
    return args


def _source(config: Config) -> tuple[str, bool]:
    if isinstance(config, Mapping):
        return json.dumps(config), False
    return os.fspath(config), True


def train(config: Config, out: "str | os.PathLike[str]", device: str = "cpu",
          overrides: Union[None, Mapping[str, Any], Iterable[str]] = None,
          progress: Union[bool, Callable[[int, int], Any]] = True, **kwargs: Any) -> "Run":
    """Train one run and return it as a :class:`Run`.

    ``config`` is a TOML file or a dict of the same tables; ``overrides``
    are dotted keys, as ``lmech train --set`` takes them (a dict
    ``{"optim.lr": 0.1}`` or strings ``"optim.lr=0.1"``), and keyword
    arguments with ``__`` for the dots (``optim__lr=0.1``). ``device`` is
    ``cpu``, ``wgpu``, ``cuda[:N]`` or ``auto``. ``progress``: the
    engine's bar in a terminal; elsewhere (Jupyter) tqdm's ``tqdm.auto``
    when installed, else a text line; False for none, or a callable
    ``f(step, total)``. The GIL is released while it trains; Ctrl-C raises KeyboardInterrupt before the next step, leaving
    the run directory as a killed run leaves it.
    """
    source, is_path = _source(config)
    args = _override_args(overrides, kwargs)
    if callable(progress):
        run_dir, _ = _lmech.train(source, is_path, args, os.fspath(out), device, False, progress)
        return Run(run_dir)
    if not progress or sys.stderr.isatty():
        # The engine's own bar, in a terminal.
        run_dir, _ = _lmech.train(source, is_path, args, os.fspath(out), device, bool(progress))
        return Run(run_dir)
    bar = progress_bar()
    try:
        run_dir, _ = _lmech.train(source, is_path, args, os.fspath(out), device, False, bar.update)
        run = Run(run_dir)
        bar.update(run.summary.get("steps_done", 0), run.config["train"]["steps"])
    finally:
        bar.close()
    return run


def sweep(spec: Config, out: "str | os.PathLike[str]", device: str = "cpu", jobs: int = 1,
          resume: bool = False, max_ensemble: Optional[int] = None,
          progress: bool = True) -> "Sweep":
    """Run a sweep (a sweep TOML file, or a dict of its tables) into the
    results store ``out`` and return it as a :class:`Sweep`; the report is
    written when the grid is done, as ``lmech sweep`` does. Failed runs
    raise :class:`lmech.LmechError` after the others are committed. Ctrl-C
    raises KeyboardInterrupt before the next step, leaving the store as a
    killed worker does (with the claims let go): sweeping it again resumes."""
    source, is_path = _source(spec)
    outcome = _lmech.sweep(source, is_path, os.fspath(out), device, jobs, progress, resume,
                           max_ensemble)
    if outcome["failed"]:
        lines = "; ".join(f"{i}: {e}" for i, e in outcome["failed"])
        raise _lmech.LmechError(f"{len(outcome['failed'])} runs failed: {lines}")
    return Sweep(out)


def _number(v: Any) -> Any:
    """metrics.jsonl writes non-finite numbers as strings."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v) if v != "nan" else math.nan
    return v


def _frame(records: list[dict], backend: str) -> Any:
    if backend == "polars":
        import polars  # noqa: PLC0415: only when asked

        return polars.DataFrame(records)
    if backend != "pandas":
        raise ValueError(f"backend {backend!r}: expected 'pandas' or 'polars'")
    import pandas  # noqa: PLC0415

    return pandas.DataFrame.from_records(records)


class Run:
    """A run directory (as ``lmech train`` leaves it): ``config`` and
    ``summary`` as dicts, ``metrics()`` as a DataFrame, ``model()``."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(os.path.join(self.path, "config.toml")):
            raise _lmech.LmechError(f"{self.path}: not a run directory (no config.toml)")

    def __repr__(self) -> str:
        return f"lmech.Run({self.path!r}, {self.status})"

    @property
    def config(self) -> dict:
        """The resolved config (``config.toml``)."""
        with open(os.path.join(self.path, "config.toml"), "rb") as f:
            return tomllib.load(f)

    @property
    def summary(self) -> dict:
        """``summary.json``; empty while the run trains or after it was
        killed."""
        path = os.path.join(self.path, "summary.json")
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)

    @property
    def status(self) -> str:
        """``finished``, ``diverged``, or ``incomplete`` (no summary yet)."""
        return self.summary.get("status", "incomplete")

    def metrics(self, backend: str = "pandas") -> Any:
        """The metrics records (``metrics.jsonl``, which a killed run keeps
        too) as a pandas DataFrame, or a polars one with
        ``backend="polars"``: ``step`` as integers, the rest as floats."""
        with open(os.path.join(self.path, "metrics.jsonl")) as f:
            records = [{k: _number(v) for k, v in json.loads(line).items()}
                       for line in f if line.strip()]
        for r in records:
            for k, v in r.items():
                if k != "step" and isinstance(v, int):
                    r[k] = float(v)
        return _frame(records, backend)

    def measure(self, observe: Iterable[str] = ("sharpness",), step: Optional[int] = None,
                **kwargs: Any) -> dict:
        """:func:`lmech.measure` on this run's model, or its checkpoint at
        ``step``."""
        target = (self.path if step is None else
                  os.path.join(self.path, "checkpoints", f"step_{step}.safetensors"))
        return measure(target, observe, **kwargs)

    def checkpoints(self) -> list[int]:
        """Steps with a checkpoint under ``checkpoints/``."""
        folder = os.path.join(self.path, "checkpoints")
        if not os.path.isdir(folder):
            return []
        names = (n for n in os.listdir(folder) if n.startswith("step_"))
        return sorted(int(n[len("step_"):-len(".safetensors")]) for n in names)

    def model(self, step: Optional[int] = None, device: str = "cpu",
              dtype: Optional[str] = None) -> Model:
        """The trained model (``model.safetensors``), or the one at ``step``
        of ``train.checkpoint_at``."""
        name = ("model.safetensors" if step is None
                else os.path.join("checkpoints", f"step_{step}.safetensors"))
        return Model.load(os.path.join(self.path, name), device=device, dtype=dtype)


def measure(target: "str | os.PathLike[str]", observe: Iterable[str] = ("sharpness",),
            data: str = "train", n: Optional[int] = None, k: int = 5, tol: float = 1e-6,
            max_iter: int = 100, probes: int = 10, steps: int = 80, seed: int = 0,
            device: str = "cpu") -> dict:
    """``lmech measure``: the observables ``observe`` (``sharpness``,
    ``eigs``, ``gn_eigs``, ``trace``, ``density``, ``per_sample``) of a run
    directory's model or a checkpoint, on the run's own ``data`` split
    (``train`` or ``test``, its first ``n`` examples), written as
    ``NAME.measure.json`` beside the checkpoint and returned as a dict."""
    _path, text = _lmech.measure(os.fspath(target), list(observe), data, n, k, tol, max_iter,
                                 probes, steps, seed, device)
    return json.loads(text)


class Sweep:
    """A sweep's results store (``lmech sweep --out DIR``)."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"lmech.Sweep({self.path!r})"

    def report(self, refresh: bool = False, backend: str = "pandas") -> Any:
        """``report.csv`` (one row per committed run) as a DataFrame; with
        ``refresh`` (or when it is missing) it is written first, as
        ``lmech sweep report DIR`` does."""
        table = os.path.join(self.path, "report.csv")
        if refresh or not os.path.exists(table):
            table = os.fspath(_lmech.write_report(self.path))
        if backend == "polars":
            import polars  # noqa: PLC0415

            return polars.read_csv(table)
        import pandas  # noqa: PLC0415

        return pandas.read_csv(table)

    def runs(self) -> list[Run]:
        """The committed runs, by id."""
        folder = os.path.join(self.path, "runs")
        if not os.path.isdir(folder):
            return []
        return [Run(os.path.join(folder, n)) for n in sorted(os.listdir(folder))]
