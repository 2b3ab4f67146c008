"""The layout rules of ``shared/ARCHITECTURE.md`` that a machine can check: dependencies point
down (nothing below imports a theory; no theory imports another), in the Rust core and in the
Python package; source files stay under ~600 lines; the reference mirrors the package.

Runs without the compiled extension (it only reads files)."""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "adaptive_kernels"
CORE = ROOT / "rust" / "core" / "src"
MAX_LINES = 650   # "~600": a little slack for a file that carries one idea


def _python_theories() -> list[str]:
    return sorted(p.stem for p in (PACKAGE / "theories").glob("*.py") if p.stem != "__init__")


def _imported_modules(path: pathlib.Path) -> set[str]:
    """Absolute dotted names of the package modules that ``path`` imports."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    pkg = parts if path.name == "__init__.py" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_python_no_theory_imports_another():
    theories = _python_theories()
    assert theories, "no theory modules found"
    for t in theories:
        imported = _imported_modules(PACKAGE / "theories" / f"{t}.py")
        others = {f"adaptive_kernels.theories.{o}" for o in theories if o != t} | {"adaptive_kernels.theories"}
        bad = imported & others
        assert not bad, f"theories/{t}.py imports {sorted(bad)}: a piece two theories need moves down"


def _core_submodules_used(path: pathlib.Path) -> set[str]:
    """The ``_core`` submodules (``_core.NAME``) that a Python file refers to."""
    return set(re.findall(r"\b_core\.(\w+)", path.read_text()))


def test_python_no_theory_calls_another_theorys_core_module():
    """A theory that runs another theory's solver (``_core.<other theory>``) depends on it as
    much as by an import: the shared piece moves below the theories first (as ``_core.tilted``)."""
    theories = _python_theories()
    for t in theories:
        bad = _core_submodules_used(PACKAGE / "theories" / f"{t}.py") & (set(theories) - {t})
        assert not bad, (f"theories/{t}.py calls _core.{sorted(bad)} (another theory's core module): "
                         "a piece two theories need moves down")


def test_python_no_theory_core_module_used_below():
    theories = set(_python_theories())
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("theories", "reference", "studies") or rel.name in ("__init__.py", "cli.py", "_core.pyi"):
            continue
        bad = _core_submodules_used(path) & theories
        assert not bad, f"{rel} calls theory core modules {sorted(bad)}: dependencies point down"


def test_binding_of_a_theory_uses_only_its_own_theory():
    """The binding file of theory t (``rust/python/src/t.rs``, ``t_*.rs``) reaches into
    ``ak_core::theories::t`` only; the binding files of modules below the theories into none."""
    src = ROOT / "rust" / "python" / "src"
    theories = sorted(p.name if p.is_dir() else p.stem for p in (CORE / "theories").iterdir() if p.name != "mod.rs")
    for path in src.glob("*.rs"):
        used = set(re.findall(r"ak_core::theories::(\w+)", path.read_text()))
        own = {t for t in theories if path.stem == t or path.stem.startswith(t + "_")}
        if path.stem == "testing":   # test-only entry points may reach any theory
            continue
        bad = used - own
        assert not bad, f"rust/python/src/{path.name} uses core theories {sorted(bad)}; known: {theories}"


def test_python_nothing_below_imports_a_theory():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("theories", "reference", "studies") or rel.name in ("__init__.py", "cli.py"):
            continue
        bad = {m for m in _imported_modules(path) if m.startswith("adaptive_kernels.theories")}
        assert not bad, f"{rel} imports {sorted(bad)}: dependencies point down"


@pytest.mark.skipif(not (CORE / "theories").is_dir(), reason="core without a theories/ folder")
def test_rust_dependencies_point_down():
    theories_dir = CORE / "theories"
    theories = sorted(p.name if p.is_dir() else p.stem for p in theories_dir.iterdir() if p.name != "mod.rs")
    for path in CORE.rglob("*.rs"):
        used = set(re.findall(r"crate::theories::(\w+)", path.read_text()))
        if theories_dir not in path.parents:
            assert not used, f"{path.relative_to(CORE)} uses theories {sorted(used)}: dependencies point down"
            continue
        own = path.relative_to(theories_dir).parts[0].removesuffix(".rs")
        bad = used - {own}
        assert not bad, f"{path.relative_to(CORE)} (theory {own}) uses theories {sorted(bad)}; known: {theories}"


def test_source_files_stay_small():
    too_long = []
    for base, pattern in ((CORE, "*.rs"), (ROOT / "rust" / "python" / "src", "*.rs"), (PACKAGE, "*.py")):
        for path in base.rglob(pattern):
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                too_long.append(f"{path.relative_to(ROOT)} ({n} lines)")
    assert not too_long, "files over ~600 lines: " + ", ".join(too_long)


def test_reference_mirrors_the_package():
    ref = PACKAGE / "reference"
    for t in _python_theories():
        assert (ref / "theories" / f"{t}.py").exists(), f"theory {t} has no reference/theories/{t}.py"
    for sub in ("kernels", "finite"):
        assert (ref / sub / "__init__.py").exists(), f"reference/{sub}/ missing"
    assert (ref / "predictors.py").exists() and (ref / "mcmc.py").exists()
    for mod in PACKAGE.glob("*.py"):   # every public module beside the theories (tilted, mcmc, ...)
        if mod.stem in ("mcmc", "predictors", "tilted"):
            assert (ref / mod.name).exists(), f"{mod.name} has no reference/{mod.name}"
