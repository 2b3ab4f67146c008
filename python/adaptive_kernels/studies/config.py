"""Studies described by a TOML file (``adaptive-kernels sweep study.toml``).

::

    estimator = "KernelRenormalization"  # KernelRenormalization, BayesianMeanField, GradientFlowFixedPoint,
                                         # GaussianProcess, KernelRidge, NTKGradientFlow
    store = "results.parquet"            # optional, relative to this file; resumable
    chain = "width"                      # optional continuation axis
    seeds = [0, 1]                       # optional seed axis
    max_workers = 2                      # optional (default: the number of cores)

    [net]                                # ak.MLP(**net)
    depth = 1
    activation = "relu"
    sigma_w = 1.4142135623730951

    [data]                               # ak.datasets.<loader>(**the other keys)
    loader = "load_digits"
    classes = [3, 8]
    n_train = 200
    n_test = 100

    [params]                             # fixed arguments of the estimator
    temperature = 0.01

    [grid]                               # parameter -> values (Cartesian product)
    width = [400, 200, 100]
"""
from __future__ import annotations

import inspect
import pathlib
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .. import datasets
from ..networks import MLP
from ..predictors import GaussianProcess, KernelRidge, NTKGradientFlow
from ..theories import BayesianMeanField, GradientFlowFixedPoint, KernelRenormalization
from .sweep import sweep

ESTIMATORS = {c.__name__: c for c in (KernelRenormalization, BayesianMeanField, GradientFlowFixedPoint,
                                      GaussianProcess, KernelRidge, NTKGradientFlow)}
LOADERS = ("load_digits", "load_mnist5k", "teacher_student")
KEYS = {"estimator", "store", "chain", "seeds", "max_workers", "net", "data", "params", "grid"}


def load_study(path) -> dict:
    """Read and check a study file; returns the arguments of :func:`run_study`."""
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        try:
            cfg = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    unknown = set(cfg) - KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected some of {sorted(KEYS)}")
    name = cfg.get("estimator")
    if name not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {sorted(ESTIMATORS)}, got {name!r}")
    for section in ("net", "data", "grid"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"{section}: the [{section}] table is required")
    data = dict(cfg["data"])
    loader = data.pop("loader", None)
    if loader not in LOADERS:
        raise ValueError(f"data.loader: expected one of {LOADERS}, got {loader!r}")
    if "classes" in data:
        data["classes"] = tuple(data["classes"])
    store = cfg.get("store")
    if store is not None:
        store = pathlib.Path(store)
        store = store if store.is_absolute() else path.parent / store
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in cfg["grid"].items()}
    params = dict(cfg.get("params", {}))
    return dict(estimator=ESTIMATORS[name], net=MLP(**cfg["net"]), loader=loader, data=data, params=params,
                grid=grid, store=store, chain=cfg.get("chain"), seeds=cfg.get("seeds"),
                max_workers=cfg.get("max_workers"))


def run_study(study: dict, executor=None):
    """Build the estimator and the data of a loaded study and run its sweep."""
    ds = getattr(datasets, study["loader"])(**study["data"])
    # required constructor arguments that the grid varies get its first value as a placeholder
    # (only those it has: sweep reports unknown grid parameters)
    names = inspect.signature(study["estimator"]).parameters
    params = {**{k: v[0] for k, v in study["grid"].items() if k in names}, **study["params"]}
    try:
        est = study["estimator"](study["net"], **params)
    except TypeError as e:
        raise ValueError(f"params: {e}") from None
    return ds, sweep(est, study["grid"], ds.X_train, ds.y_train, ds.X_test, ds.y_test, executor=executor,
                     store=study["store"], chain=study["chain"], seeds=study["seeds"],
                     max_workers=study["max_workers"])


__all__ = ["load_study", "run_study", "ESTIMATORS"]
