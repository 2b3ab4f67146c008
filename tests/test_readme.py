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


def test_readme_test_command_is_what_ci_runs():
    """The README's command that runs the suite is the one .ci/run runs (quoted there), and the
    ``test`` extra it installs provides every pytest plugin its options need (``-n``: xdist)."""
    try:
        import tomllib
    except ModuleNotFoundError:   # Python 3.10
        import tomli as tomllib
    root = README.parent
    commands = re.findall(r"```bash\n(pip install \"\.\[test\]\"[^\n]*)\n```", README.read_text())
    assert len(commands) == 1, commands
    command = commands[0]
    assert "python -m pytest" in command and command.rstrip().endswith(" tests")
    assert f"# README: {command}" in (root / ".ci" / "run").read_text()
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in extra}
    assert "pytest" in names
    if re.search(r"\s-n\s", command):
        assert "pytest-xdist" in names
