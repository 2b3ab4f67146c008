"""Test configuration: pin BLAS threads (NumPy and SciPy each bundle OpenBLAS and fight
otherwise) and a deterministic hypothesis profile for CI. With ``AK_EXPECT_INSTALLED_IN`` set
(CI's run against the built wheel) the package and its extension must come from that directory,
not from the source tree."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

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
