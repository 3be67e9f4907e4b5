"""Training progress outside a terminal (Jupyter, where the engine's bar
hides itself): tqdm's notebook-aware bar (``tqdm.auto``) when tqdm is
installed, else a line of text rewritten in place."""

from __future__ import annotations

import sys
from typing import Any, Optional


class _TextBar:
    def __init__(self) -> None:
        self.shown = False

    def update(self, step: int, total: Optional[int]) -> None:
        of = f"/{total}" if total else ""
        print(f"\rtraining: step {step}{of}", end="", file=sys.stdout, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stdout, flush=True)


class _TqdmBar:
    def __init__(self, tqdm: Any) -> None:
        self.tqdm = tqdm
        self.bar: Any = None

    def update(self, step: int, total: Optional[int]) -> None:
        if self.bar is None:
            self.bar = self.tqdm(total=total, desc="training", unit="step")
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar() -> Any:
    """An object with ``update(step, total)`` and ``close()``."""
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415: optional
    except ImportError:
        return _TextBar()
    return _TqdmBar(tqdm)
