"""A tiny ridge regressor that can be made slow, or kill its worker process on the first fit, for
the resume tests (imported by name from the test and from the killed subprocess, so that both
see the same class and the same cell keys)."""
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SlowRidge(RegressorMixin, BaseEstimator):
    def __init__(self, alpha=1.0, delay=0.0, crash_marker=None, log=None):
        self.alpha = alpha
        self.delay = delay
        self.crash_marker = crash_marker
        self.log = log

    def fit(self, X, y):
        if self.crash_marker is not None and self.alpha == 3.0 and not os.path.exists(self.crash_marker):
            open(self.crash_marker, "w").close()
            os._exit(1)                      # the worker process dies, as if killed
        time.sleep(self.delay)
        if self.log is not None:
            with open(self.log, "a") as f:   # one short O_APPEND write per fit
                f.write(f"{self.alpha}\n")
        X, y = np.asarray(X), np.asarray(y)
        self.coef_ = np.linalg.solve(X.T @ X + self.alpha * np.eye(X.shape[1]), X.T @ y)
        return self

    def predict(self, X):
        return np.asarray(X) @ self.coef_
