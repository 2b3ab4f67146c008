"""Load the pure-NumPy reference modules and datasets.py by file path.

This lets these tests run without the compiled Rust extension that
``adaptive_kernels/__init__.py`` imports.
"""
import importlib.util
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "python" / "adaptive_kernels"
REFERENCE = PACKAGE / "reference"

# lazy_kernels.py falls back to `from quadrature import ...` when loaded outside the package
if str(REFERENCE) not in sys.path:
    sys.path.insert(0, str(REFERENCE))


def load(name):
    """Import ``reference/<name>.py`` (or ``datasets`` from the package) by path."""
    path = PACKAGE / "datasets.py" if name == "datasets" else REFERENCE / f"{name}.py"
    module_name = "_ak_datasets" if name == "datasets" else name
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
