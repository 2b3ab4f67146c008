"""The results table of a study: a small column store that needs neither pandas nor pyarrow.

Studies return a :class:`Table` whatever is installed (the type of a result never depends on
the environment); ``to_pandas()`` / ``to_arrow()`` convert it when those libraries are there.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator


class Table:
    """Rows of scalars with named columns (a dict of equal-length lists).

    ``len(t)`` rows; ``t["test_loss"]`` a column (list); ``t.rows()`` / ``iter(t)`` the rows as
    dicts; ``t.columns`` the column names in order; ``t.where(model="nngp")`` the rows whose
    columns equal the given values; ``to_pandas()``, ``to_arrow()``; ``print(t)`` a text table.
    """

    def __init__(self, rows: Iterable[dict] = (), columns: list[str] | None = None):
        rows = list(rows)
        cols = list(columns) if columns is not None else []
        for r in rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        self._columns = cols
        self._data = {c: [r.get(c) for r in rows] for c in cols}
        self._n = len(rows)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, column: str) -> list:
        if column not in self._data:
            raise KeyError(f"{column!r}: no such column; columns: {self._columns}")
        return list(self._data[column])

    def __contains__(self, column: str) -> bool:
        return column in self._data

    def rows(self) -> list[dict]:
        return [{c: self._data[c][i] for c in self._columns} for i in range(self._n)]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows())

    def where(self, **equal) -> "Table":
        """The rows whose columns equal the given values."""
        return Table([r for r in self.rows() if all(r.get(k) == v for k, v in equal.items())], self._columns)

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame({c: self._data[c] for c in self._columns}, columns=self._columns)

    def to_arrow(self):
        import pyarrow as pa
        return pa.Table.from_pylist(self.rows())

    def to_string(self, columns: list[str] | None = None, float_format: str = "{:.4g}") -> str:
        cols = columns or self._columns

        def fmt(v: Any) -> str:
            if v is None:
                return "-"
            if isinstance(v, bool):
                return str(v)
            if isinstance(v, float):
                return "nan" if math.isnan(v) else float_format.format(v)
            s = str(v)
            return s if len(s) <= 40 else s[:37] + "..."
        cells = [[fmt(self._data[c][i]) for c in cols] for i in range(self._n)]
        widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(cols)]
        lines = [" ".join(c.rjust(w) for c, w in zip(cols, widths)), "-" * (sum(widths) + len(widths) - 1)]
        lines += [" ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Table({self._n} rows x {len(self._columns)} columns)\n" + self.to_string()

    def __eq__(self, other) -> bool:
        return isinstance(other, Table) and self.columns == other.columns and self.rows() == other.rows()


__all__ = ["Table"]
