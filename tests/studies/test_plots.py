"""Figures of studies: what is drawn equals the table (lines for theories, mean +- standard
error points for seeded networks), kernels, spectra, convergence, alignment, the CLI."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.container import ErrorbarContainer  # noqa: E402

import adaptive_kernels as ak  # noqa: E402
from adaptive_kernels import cli  # noqa: E402
from adaptive_kernels.studies import plots  # noqa: E402


def _table():
    """Two theories (one row per alpha) and a network sampled with three seeds per alpha."""
    rows = []
    for a in (0.5, 1.0, 2.0):
        rows.append(dict(model="nngp", kind="lazy", alpha=a, test_loss=0.1 / a, error=None))
        rows.append(dict(model="kernel_renormalization", kind="theory", alpha=a, test_loss=0.08 / a, error=None))
        for s, d in enumerate((-0.01, 0.0, 0.02)):
            rows.append(dict(model="sample_posterior", kind="network", alpha=a, seed=s, test_loss=0.09 / a + d,
                             error=None))
    rows.append(dict(model="nngp", kind="lazy", alpha=4.0, test_loss=None, error="ValueError: x"))
    return ak.Table(rows)


def test_learning_curve_draws_the_table():
    t = _table()
    fig = ak.studies.plot_learning_curve(t, "alpha")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "alpha" and ax.get_ylabel() == "test_loss"
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and bars[0].get_label() == "sample_posterior"
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert set(lines) == {"nngp", "kernel_renormalization"}   # the failed row (alpha 4) is left out
    np.testing.assert_array_equal(lines["nngp"].get_xdata(), [0.5, 1.0, 2.0])
    np.testing.assert_allclose(lines["nngp"].get_ydata(), [0.2, 0.1, 0.05])
    # points: mean over seeds; bar half-length: standard error
    data_line, _, (segments,) = bars[0].lines
    xs = np.array([0.5, 1.0, 2.0])
    vals = np.array([[0.09 / a - 0.01, 0.09 / a, 0.09 / a + 0.02] for a in xs])
    np.testing.assert_allclose(data_line.get_ydata(), vals.mean(1))
    sem = vals.std(1, ddof=1) / math.sqrt(3)
    half = np.array([abs(seg[1, 1] - seg[0, 1]) / 2 for seg in segments.get_segments()])
    np.testing.assert_allclose(half, sem, rtol=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["nngp", "kernel_renormalization",
                                                                  "sample_posterior"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=5), min_size=1, max_size=6))
def test_learning_curve_data_is_mean_and_standard_error(groups):
    rows = [dict(model="m", x=float(i), y=v) for i, vals in enumerate(groups) for v in vals]
    d = plots.learning_curve_data(rows, "x", "y")["m"]
    for i, vals in enumerate(groups):
        v = np.asarray(vals)
        assert d["x"][i] == i and d["n"][i] == len(v)
        np.testing.assert_allclose(d["mean"][i], v.mean(), atol=1e-9)
        np.testing.assert_allclose(d["sem"][i], v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0,
                                   atol=1e-9)
    assert d["points"] == (max(len(g) for g in groups) > 1)


def test_learning_curve_bad_input():
    with pytest.raises(ValueError, match="x: no column 'P'"):
        ak.studies.plot_learning_curve(_table(), "P")
    with pytest.raises(ValueError, match="by: no column"):
        ak.studies.plot_learning_curve(_table(), "alpha", by="theory")
    with pytest.raises(ValueError, match="table: expected"):
        ak.studies.plot_learning_curve(42, "alpha")


def test_learning_curve_of_a_sweep_store_and_the_cli(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    ds = ak.datasets.load_digits(classes=[3, 8], n_train=30, n_test=20)
    est = ak.KernelRenormalization(ak.MLP(depth=1, activation="relu", sigma_w=2 ** 0.5), width=50, temperature=0.01)
    store = tmp_path / "results.parquet"
    t = ak.sweep(est, {"width": [100, 50, 25]}, *ds, executor=ak.SerialExecutor(), store=store)
    fig = ak.studies.plot_learning_curve(store, "width")
    (line,) = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
    order = np.argsort(t["width"])
    np.testing.assert_allclose(line.get_ydata(), np.asarray(t["test_loss"])[order])
    out = tmp_path / "fig.png"
    assert cli.main(["plot", str(store), "--out", str(out), "--logx"]) == 0   # --x inferred: width
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="x: no column 'alpha'"):
        cli.main(["plot", str(store), "--x", "alpha"])
    with pytest.raises(FileNotFoundError, match="table"):
        cli.main(["plot", str(tmp_path / "missing.parquet"), "--x", "width"])


def test_compare_theories_figure():
    ds = ak.datasets.load_digits(classes=[3, 8], n_train=30, n_test=20)
    net = ak.MLP(depth=1, activation="linear")
    table, fig = ak.compare_theories(net, *ds, theories=["nngp", "ntk", "kernel_renormalization"], width=20,
                                     plot=True)
    assert isinstance(table, ak.Table)
    assert isinstance(ak.compare_theories(net, *ds, theories=["nngp"]), ak.Table)   # default: the table only
    ax_loss, ax_align = fig.axes
    assert ax_loss.get_xlabel() == "test_loss" and ax_align.get_xlabel() == "alignment"
    assert [t.get_text() for t in ax_loss.get_yticklabels()] == table["model"]
    np.testing.assert_allclose([p.get_width() for p in ax_loss.patches], table["test_loss"])
    np.testing.assert_allclose([p.get_width() for p in ax_align.patches], table["alignment"])


def test_kernel_convergence_and_alignment_figures():
    ds = tuple(ak.datasets.load_digits(classes=[3, 8], n_train=30, n_test=20))
    est = ak.KernelRenormalization(ak.MLP(depth=2, activation="relu", sigma_w=2 ** 0.5), width=20,
                                   temperature=0.01).fit(ds[0], ds[1])
    fig = ak.studies.plot_kernel(est)
    heat, spec, _ = fig.axes       # heatmap, spectrum, colorbar
    np.testing.assert_allclose(heat.images[0].get_array(), est.kernel_)
    lam = np.sort(np.linalg.eigvalsh(est.kernel_))[::-1]
    np.testing.assert_allclose(spec.get_lines()[0].get_ydata(), lam[lam > 0])
    assert spec.get_yscale() == "log"

    fig = ak.studies.plot_convergence({"renorm": est})
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), est.report_.residual_history)
    assert len(line.get_ydata()) > 0 and fig.axes[0].get_yscale() == "log"
    fig = ak.studies.plot_convergence([est, est.report_])
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["KernelRenormalization #0",
                                                                  f"{est.report_.solver} #1"]

    fig = ak.studies.plot_alignment({"renorm": est, "nngp": [ak.nngp_kernel(ak.MLP(depth=d, activation="relu",
                                                                                     sigma_w=2 ** 0.5), ds[0])
                                                             for d in (1, 2)]}, ds[1])
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["renorm", "nngp"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2])
    np.testing.assert_allclose(lines[0].get_ydata(), [ak.kernel_alignment(K, ds[1]) for K in est.kernels_])
    with pytest.raises(ValueError, match="K: expected a square"):
        ak.studies.plot_kernel(np.ones((3, 2)))
    with pytest.raises(ValueError, match="reports"):
        ak.studies.plot_convergence([1.0])


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'adaptive-kernels\[plot\]'"):
        plots.plot_kernel(np.eye(3))
