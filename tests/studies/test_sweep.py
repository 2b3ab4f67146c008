"""ak.sweep: the table does not depend on the executor (serial, local process pool, Dask),
chains along a continuation parameter, seeds, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import adaptive_kernels as ak

IGNORE = {"fit_time"}   # the only column that depends on how the cells ran


@pytest.fixture(scope="module")
def data():
    return tuple(ak.datasets.load_digits(classes=(3, 8), n_train=40, n_test=30, seed=0))


def _kr():
    return ak.KernelRenormalization(ak.MLP(depth=1, activation="relu", sigma_w=np.sqrt(2.0)), width=100,
                                    temperature=0.01)


GRID = {"width": [50, 200], "temperature": [0.01, 0.1]}


def _rows(table, ignore=IGNORE):
    return [{k: v for k, v in r.items() if k not in ignore} for r in table]


def _close(a, b, rel=1e-9):
    """Rows equal, floats to ``rel`` (the chained and cold solves of one cell stop at different
    iterates below the tolerance)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float) and k not in ("residual", "n_iter"):
                assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-12), k
            elif k not in ("residual", "n_iter"):
                assert ra[k] == rb[k], k


def test_serial_and_process_pool_give_the_same_table(data):
    serial = ak.sweep(_kr(), GRID, *data, executor=ak.SerialExecutor())
    pooled = ak.sweep(_kr(), GRID, *data, max_workers=2)
    assert len(serial) == 4 and serial.columns == pooled.columns
    assert _rows(serial) == _rows(pooled)
    assert [r["width"] for r in serial] == [50, 50, 200, 200]           # grid order, last key fastest
    assert [r["temperature"] for r in serial] == [0.01, 0.1, 0.01, 0.1]
    assert len(set(serial["key"])) == 4
    for r in serial:
        assert r["error"] is None and r["converged"] is True
        assert r["version"] == ak.__version__ and r["estimator"] == "KernelRenormalization"
        assert 0 < r["alignment"] <= 1 and r["test_loss"] > 0 and r["train_loss"] >= 0
        assert np.isfinite(r["action"]) and r["fit_time"] >= 0
    # the same cell fitted directly
    X, y, Xt, yt = data
    m = _kr().set_params(width=200, temperature=0.1).fit(X, y)
    row = serial.where(width=200, temperature=0.1).rows()[0]
    assert row["test_loss"] == pytest.approx(float(np.mean((m.predict(Xt) - yt) ** 2)), rel=1e-12)


def test_dask_local_cluster_gives_the_same_table(data):
    distributed = pytest.importorskip("distributed")
    serial = ak.sweep(_kr(), GRID, *data, executor=ak.SerialExecutor())
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"AK_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as client:
        table = ak.sweep(_kr(), GRID, *data, executor=client.get_executor())
    assert _rows(table) == _rows(serial)


def test_chain_warm_starts_along_the_path(data):
    grid = {"gamma": [0.25, 0.5, 1.0], "temperature": [0.1]}
    est = ak.BayesianMeanField(ak.MLP(depth=2, activation="linear"), temperature=0.1, solver="lbfgs")
    chained = ak.sweep(est, grid, *data, chain="gamma", executor=ak.SerialExecutor())
    cold = ak.sweep(est, grid, *data, executor=ak.SerialExecutor())
    assert [r["gamma"] for r in chained] == [0.25, 0.5, 1.0]
    assert chained["key"] == cold["key"]
    _close(_rows(chained), _rows(cold), rel=1e-5)
    X, y, *_ = data
    path = est.path(X, y, gammas=[0.25, 0.5, 1.0])
    assert chained["action"] == pytest.approx(list(path.action), rel=1e-12)


def test_seeds_axis_and_list_of_grids(data):
    est = ak.GradientFlowFixedPoint(ak.MLP(depth=1, activation="tanh"), gamma=1.0, weight_decay=0.5,
                                    n_particles=64, max_steps=3000)
    t = ak.sweep(est, [{"gamma": [0.5]}, {"gamma": 1.0, "weight_decay": 0.2}], *data[:2], seeds=[0, 1],
                 executor=ak.SerialExecutor())
    assert [(r["gamma"], r["weight_decay"], r["seed"]) for r in t] == [(0.5, 0.5, 0), (0.5, 0.5, 1), (1.0, 0.2, 0),
                                                                         (1.0, 0.2, 1)]
    assert t["test_loss"] == [None] * 4 and all(r["error"] is None for r in t)


def test_bad_input_names_the_argument(data):
    with pytest.raises(ValueError, match="grid: unknown parameter 'widht'"):
        ak.sweep(_kr(), {"widht": [1, 2]}, *data, executor=ak.SerialExecutor())
    with pytest.raises(ValueError, match="grid"):
        ak.sweep(_kr(), [], *data)
    with pytest.raises(ValueError, match="chain"):
        ak.sweep(_kr(), GRID, *data, chain="gamma")
    with pytest.raises(ValueError, match="seeds"):
        ak.sweep(_kr(), GRID, *data, seeds=[0, 1])
    with pytest.raises(ValueError, match="grid: the cell"):
        ak.sweep(_kr(), [{"width": 50}, {"width": 50}], *data)
    with pytest.raises(ValueError, match="max_workers"):
        ak.sweep(_kr(), GRID, *data, max_workers=0)


def test_failed_cells_are_rows_with_the_error(data):
    with pytest.warns(UserWarning, match="1 of 2 cells failed"):
        t = ak.sweep(_kr(), {"width": [100, -5]}, *data, executor=ak.SerialExecutor())
    assert t["error"][0] is None
    assert "width" in t["error"][1] and t["test_loss"][1] is None


def test_ctrl_c_in_a_chain_stops_the_study(data, monkeypatch):
    """A path that a Ctrl-C cut short (it returns the points solved, ``interrupted``) stops the
    sweep with KeyboardInterrupt instead of giving a chain fewer rows than cells."""
    from adaptive_kernels.studies._cells import run_cells
    real_path = ak.KernelRenormalization.path

    def interrupted_path(self, X, y, **kw):
        out = real_path(self, X, y, **kw)
        out.models, out.interrupted = out.models[:1], True
        return out

    monkeypatch.setattr(ak.KernelRenormalization, "path", interrupted_path)
    X, y, Xt, yt = data
    with pytest.raises(KeyboardInterrupt, match="1 of the 2 cells"):
        run_cells(_kr(), [{"width": 200}, {"width": 50}], "width", "widths", X, y, Xt, yt, None)
