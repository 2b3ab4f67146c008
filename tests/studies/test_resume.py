"""Resumable sweeps: a sweep killed midway (the whole process group, by SIGKILL) or whose
worker process dies is re-run with the same store; no finished cell is lost, recomputed or
duplicated, and every cell ends up in the store once."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("pyarrow")
import adaptive_kernels as ak  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from slow_estimator import SlowRidge  # noqa: E402

ALPHAS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    return X, X @ np.ones(4) + 0.1 * rng.standard_normal(30), X[:10], np.ones(10)


def _parts(store):
    return sorted(pathlib.Path(store).glob("cell-*.parquet"))


def test_sigkill_midway_then_resume(tmp_path):
    store, log = tmp_path / "results.parquet", tmp_path / "fits.log"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        import numpy as np, adaptive_kernels as ak
        from slow_estimator import SlowRidge
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 4)); y = X @ np.ones(4) + 0.1 * rng.standard_normal(30)
        ak.sweep(SlowRidge(delay=0.4, log={str(log)!r}), {{"alpha": {ALPHAS!r}}}, X, y, X[:10], np.ones(10),
                 executor=ak.SerialExecutor(), store={str(store)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 60
        while len(_parts(store)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the sweep's own process group
        proc.wait()
    done = {p.name: p.read_bytes() for p in _parts(store)}
    assert 2 <= len(done) < len(ALPHAS), "the sweep was not killed midway"
    n_fitted = len(log.read_text().split())
    log.write_text("")
    table = ak.sweep(SlowRidge(delay=0.4, log=str(log)), {"alpha": ALPHAS}, *_data(),
                     executor=ak.SerialExecutor(), store=store)
    assert table["alpha"] == ALPHAS and all(e is None for e in table["error"])
    refitted = [float(a) for a in log.read_text().split()]
    assert len(refitted) == len(ALPHAS) - len(done)          # finished cells were not run again
    assert n_fitted >= len(done)
    assert {p.name: p.read_bytes() for p in _parts(store) if p.name in done} == done   # nor rewritten
    assert len(_parts(store)) == len(ALPHAS) == len(set(table["key"]))
    assert sorted(ak.studies.load_store(store)["alpha"]) == ALPHAS


def test_worker_process_dies_then_resume(tmp_path):
    store, marker, log = tmp_path / "results.parquet", tmp_path / "crashed", tmp_path / "fits.log"
    est = SlowRidge(crash_marker=str(marker), log=str(log))
    with pytest.warns(UserWarning, match="cells failed"):
        first = ak.sweep(est, {"alpha": ALPHAS}, *_data(), store=store, max_workers=2)
    assert marker.exists()
    failed = [e is not None for e in first["error"]]
    assert failed[ALPHAS.index(3.0)] and "BrokenProcessPool" in first["error"][ALPHAS.index(3.0)]
    ok_first = {r["key"]: r for r in first if r["error"] is None}
    fits_first = len(log.read_text().split())
    second = ak.sweep(est, {"alpha": ALPHAS}, *_data(), store=store, max_workers=2)
    assert second["alpha"] == ALPHAS and all(e is None for e in second["error"])
    assert len(log.read_text().split()) - fits_first == sum(failed)     # only the failed cells ran again
    for r in second:
        if r["key"] in ok_first:
            assert r == ok_first[r["key"]]                             # including its fit_time
    assert len(_parts(store)) == len(ALPHAS)
