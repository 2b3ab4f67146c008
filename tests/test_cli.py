"""The ``adaptive-kernels demo`` command line."""
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
        if len(parts) >= 8 and parts[2] in ("nngp", "ntk", "renorm"):
            act, depth, kernel = parts[0], int(parts[1]), parts[2]
            rows[(act, depth, kernel)] = tuple(float(v) for v in parts[3:7])
            if kernel == "renorm":
                assert "Q = [" in line
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
