"""The ``adaptive-kernels demo`` and ``adaptive-kernels sweep`` command lines."""
import math
import os
import subprocess
import sys

import pytest

from adaptive_kernels import cli

ZERO_MSE = 0.09   # predicting 0 for centered one-hot targets with 10 classes: 9/10 * 1/10


def _rows(out):
    """Parse the result table: {(activation, depth, kernel): (mse, acc, align, cka)}."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[2] in ("nngp", "ntk", "renorm", "meanfield"):
            act, depth, kernel = parts[0], int(parts[1]), parts[2]
            rows[(act, depth, kernel)] = tuple(float(v) for v in parts[3:7])
    return rows


def test_demo_table(capsys):
    rc = cli.main(["demo", "--n-train", "150", "--n-test", "100", "--depths", "1",
                   "--activations", "relu", "erf"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "train (150, 64)" in out and "test (100, 64)" in out
    assert "test MSE" in out and "test acc" in out
    rows = _rows(out)
    assert set(rows) == {(a, 1, k) for a in ("relu", "erf") for k in ("nngp", "ntk", "renorm")}
    for key, (mse, acc, align, cka) in rows.items():
        assert math.isfinite(mse) and 0 < mse < ZERO_MSE, key
        assert acc > 0.8, key
        assert 0 < align <= 1, key
        assert 0 < cka <= 1 + 5e-5, key
        if key[2] == "nngp":
            assert cka == pytest.approx(1.0, abs=5e-5)   # CKA(K_nngp, K_nngp)


def test_demo_defaults_show_an_adaptive_theory_below_the_lazy_ones(capsys):
    rc = cli.main(["demo"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = _rows(out)
    assert set(rows) == ({(a, d, k) for a in ("linear", "relu", "tanh") for d in (1, 3)
                          for k in ("nngp", "ntk", "renorm")}
                         | {("linear", d, "meanfield") for d in (1, 3)})
    # the measured headline (see the README): kernel renormalization of the linear nets
    for d in (1, 3):
        lazy = min(rows[("linear", d, "nngp")][0], rows[("linear", d, "ntk")][0])
        assert rows[("linear", d, "renorm")][0] < 0.99 * lazy
    assert "adaptive theories below both lazy test losses: renorm (linear, L=1)" in out


def test_demo_defaults_parse_and_bad_args(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])                         # a command is required
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--n-train", "many"])
    assert info.value.code == 2
    assert "n-train" in capsys.readouterr().err


def test_module_entry_point():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_kernels.cli", "demo", "--n-train", "40", "--n-test", "20",
         "--depths", "0", "2", "--activations", "tanh"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    # no renormalization row without a hidden layer
    assert set(rows) == {("tanh", d, k) for d in (0, 2) for k in ("nngp", "ntk")} | {("tanh", 2, "renorm")}
    assert all(math.isfinite(v) for r in rows.values() for v in r)


STUDY = """
estimator = "KernelRenormalization"
store = "results.parquet"
chain = "width"

[net]
depth = 1
activation = "relu"
sigma_w = 1.4142135623730951

[data]
loader = "load_digits"
classes = [3, 8]
n_train = 40
n_test = 20

[params]
temperature = 0.01

[grid]
width = [400, 200, 100]
"""


def test_sweep_study_file_runs_and_resumes(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    import adaptive_kernels as ak
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    assert cli.main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 cells, 0 failed" in out and "test_loss" in out
    first = ak.studies.load_store(tmp_path / "results.parquet")
    assert sorted(first["width"]) == [100, 200, 400]
    assert cli.main(["sweep", str(path)]) == 0          # everything stored: nothing runs again
    again = ak.studies.load_store(tmp_path / "results.parquet")
    assert sorted(again.rows(), key=lambda r: r["key"]) == sorted(first.rows(), key=lambda r: r["key"])


def test_sweep_study_file_bad_input(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace("KernelRenormalization", "KernelRenormalisation"))
    with pytest.raises(ValueError, match="estimator"):
        cli.main(["sweep", str(path)])
    path.write_text(STUDY.replace('loader = "load_digits"', 'loader = "load_cifar"'))
    with pytest.raises(ValueError, match="data.loader"):
        cli.main(["sweep", str(path)])
    path.write_text(STUDY.replace("[grid]\n", "[grid]\ntemperatur = [0.1]\n"))
    with pytest.raises(ValueError, match="grid: unknown parameter 'temperatur'"):
        cli.main(["sweep", str(path)])
    path.write_text(STUDY.replace("width = [400", "widht = [400"))
    with pytest.raises(ValueError, match="params: .*width"):
        cli.main(["sweep", str(path)])
