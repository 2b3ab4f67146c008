"""Test configuration: pin BLAS threads (NumPy and SciPy each bundle OpenBLAS and fight
otherwise) and a deterministic hypothesis profile for CI. With ``AK_EXPECT_INSTALLED_IN`` set
(CI's run against the built wheel) the package and its extension must come from that directory,
not from the source tree.

Under pytest-xdist (``-n N``) each worker's Rust core gets its share of the cores
(``AK_NUM_THREADS`` = cores // N, at least 1) instead of all of them, so N workers do not
oversubscribe the machine; results do not depend on the thread count (tests/test_threads.py).
Subprocesses started by tests inherit it. An ``AK_NUM_THREADS`` already set is kept."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    os.environ.setdefault("AK_NUM_THREADS", str(max(1, _cores() // max(1, _workers))))

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config):
    expected = os.environ.get("AK_EXPECT_INSTALLED_IN")
    if not expected:
        return
    import pytest

    import adaptive_kernels
    import adaptive_kernels._core
    site = os.path.realpath(expected)
    for mod in (adaptive_kernels, adaptive_kernels._core):
        path = os.path.realpath(mod.__file__)
        if not path.startswith(site + os.sep):
            raise pytest.UsageError(f"{mod.__name__} was imported from {path}, not from {site} (AK_EXPECT_INSTALLED_IN)")
