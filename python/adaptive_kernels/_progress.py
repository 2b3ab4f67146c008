"""Progress bars for long computations (tqdm), driven by the core's progress counter."""
from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def progress_bar(enabled: bool | None, desc: str, expected_work: float, threshold: float = 5e7, *, unit: str):
    """Yield a ``callback(done, total)`` for the core, or None when no bar is shown.

    ``unit`` names what the core counts for this entry point (kernel ``"entries"``, sampler or
    gradient-descent ``"steps"``, action ``"evaluations"``, ...); a total of 0 means the amount
    of work is not known ahead (the bar shows the count and the rate, no ETA).
    ``enabled=None`` shows a bar only for large jobs on an interactive terminal
    (``expected_work`` is a rough flop count compared with ``threshold``).
    """
    if enabled is None:
        enabled = expected_work >= threshold and sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc=desc, unit=" " + unit, leave=False)   # "12 evaluations", not "12evaluations"

    def callback(done: int, total: int) -> None:
        total = total or None
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield callback
    finally:
        bar.close()
