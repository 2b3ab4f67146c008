"""Progress bars for long computations (tqdm), driven by the core's progress counter."""
from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def progress_bar(enabled: bool | None, desc: str, expected_work: float, threshold: float = 5e7):
    """Yield a ``callback(done, total)`` for the core, or None when no bar is shown.

    ``enabled=None`` shows a bar only for large jobs on an interactive terminal.
    """
    if enabled is None:
        enabled = expected_work >= threshold and sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=0, desc=desc, unit="entries", leave=False)

    def callback(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield callback
    finally:
        bar.close()
