"""Resumable result stores: a Parquet dataset directory with one part file per cell.

``store="results.parquet"`` is a *directory* holding ``cell-<key>.parquet``, one row each
(pyarrow reads the directory as one data set: ``pyarrow.parquet.read_table("results.parquet")``,
and so does ``pandas.read_parquet``). Each part is written to a temporary file in the same
directory and moved into place with ``os.replace``, which is atomic: a killed sweep leaves every
finished cell complete and no half-written file under a cell's name. A re-run reads the parts;
a cell's part is replaced (never duplicated) when the cell runs again.
"""
from __future__ import annotations

import os
import pathlib
import tempfile


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("store: writing Parquet needs pyarrow (pip install 'adaptive-kernels[studies]')") from None
    return pa, pq


class ParquetStore:
    """One Parquet file per cell in the directory ``path`` (created if missing)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"store: {str(self.path)!r} exists and is not a directory "
                             "(a store is a directory of part files, one per cell)")
        _pyarrow()
        self.path.mkdir(parents=True, exist_ok=True)

    def _part(self, key: str) -> pathlib.Path:
        return self.path / f"cell-{key}.parquet"

    def load(self) -> dict[str, dict]:
        """Stored rows by cell key (unreadable parts, e.g. from another program, are skipped)."""
        _, pq = _pyarrow()
        out = {}
        for p in sorted(self.path.glob("cell-*.parquet")):
            try:
                rows = pq.read_table(p).to_pylist()
            except Exception:  # noqa: BLE001 - a foreign or damaged file is not a finished cell
                continue
            for r in rows:
                if r.get("key"):
                    out[r["key"]] = r
        return out

    def write(self, row: dict) -> None:
        """Atomically store one cell's row (replacing an earlier row of the same cell)."""
        pa, pq = _pyarrow()
        table = pa.Table.from_pylist([row])
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=self.path)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self._part(row["key"]))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


__all__ = ["ParquetStore"]
