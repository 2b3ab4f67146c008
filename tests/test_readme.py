"""The README's Python examples run as written (in order, as one session), in well under a
minute."""
from __future__ import annotations

import pathlib
import re
import warnings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    import adaptive_kernels as ak
    with warnings.catch_warnings():
        # a diverging, interrupted, unmixed or unconverged run fails the test
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", ak.ConvergenceWarning)
        for code in blocks:
            exec(compile(code, str(README), "exec"), namespace)
