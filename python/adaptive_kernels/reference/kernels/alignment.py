"""Kernel-target alignment and centered kernel alignment (CKA)."""
import numpy as np

__all__ = ["kernel_alignment", "cka"]


def _cosine(A, B):
    """Frobenius cosine <A, B>_F / (||A||_F ||B||_F)."""
    return float(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))


def kernel_alignment(K, y):
    """Kernel-target alignment A = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F), y of shape (P,) or (P, C)."""
    Y = np.asarray(y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    return _cosine(np.asarray(K, dtype=float), Y @ Y.T)


def cka(K1, K2):
    """Centered kernel alignment <H K1 H, H K2 H>_F / (||H K1 H||_F ||H K2 H||_F), H = I - 11^T/P."""
    def center(K):  # H K H: subtract row and column means, add back the grand mean
        K = np.asarray(K, dtype=float)
        return K - K.mean(axis=0) - K.mean(axis=1)[:, None] + K.mean()
    return _cosine(center(K1), center(K2))
