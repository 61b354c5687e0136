"""The curated public API: everything in ``airlock.__all__`` exists and nothing public is missing."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import airlock
from airlock import errors


def test_all_names_import() -> None:
    for name in airlock.__all__:
        assert getattr(airlock, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from airlock import *", namespace)
    assert set(airlock.__all__) <= set(namespace)


def test_every_error_class_and_the_client_are_public() -> None:
    tree = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.AirlockError)
    }
    assert tree <= set(airlock.__all__)
    assert "Client" in airlock.__all__
    assert airlock.Client.__module__ == "airlock.client"
    assert sorted(airlock.__all__) == airlock.__all__ or airlock.__all__[-1] == "__version__"


def test_importing_airlock_stays_light() -> None:
    code = "import sys, airlock; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the curated surface: documented, lazy, and nothing internal -----------------------------

SRC = Path(airlock.__file__).parent
WHOLLY = "Internal: use the library"
EXCEPT_EXPORTED = "Internal: except the modules ``airlock`` exports from"


def _exported_objects() -> dict[str, object]:
    return {name: getattr(airlock, name) for name in airlock.__all__ if name != "__version__"}


def _modules() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _doc_of(module: str) -> str:
    rel = Path(*module.split("."))
    path = SRC.parent / rel / "__init__.py"
    if not path.exists():
        path = (SRC.parent / rel).with_suffix(".py")
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def _public_modules() -> set[str]:
    found = {"airlock", "airlock.errors"}
    for obj in _exported_objects().values():
        found.add(obj.__module__)
    return found


def _marker(module: str) -> str | None:
    """The "Internal:" line that covers ``module``: its own, or its nearest package's."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        for line in _doc_of(".".join(parts[:n])).splitlines():
            if line.startswith("Internal:"):
                return line
    return None


def test_every_exported_name_is_documented_in_the_package_docstring() -> None:
    doc = airlock.__doc__ or ""
    missing = [name for name in airlock.__all__ if f"``{name}``" not in doc]
    assert missing == [] or missing == ["__version__"], missing


def test_exported_names_come_from_public_modules_only() -> None:
    for name, obj in _exported_objects().items():
        module = obj.__module__
        assert not any(p.startswith("_") for p in module.split(".")), (name, module)
        marker = _marker(module)
        assert marker is None or marker.startswith(EXCEPT_EXPORTED), (name, module, marker)
    assert not [n for n in airlock.__all__ if n.startswith("_") and n != "__version__"]


def test_every_module_is_reachable_from_all_or_says_it_is_internal() -> None:
    public = _public_modules()
    unmarked = [m for m in _modules() if m not in public and _marker(m) is None]
    assert unmarked == []
    assert _marker(
        "airlock.catalog.schema",
    ).startswith(WHOLLY)  # type: ignore[union-attr]


def test_the_library_classes_are_there() -> None:
    for name in ("Workspace", "Registry", "Rollouts", "Serving", "Manifest", "ReleaseRef",
                 "TrafficPlan", "AuditLog", "Client", "Settings", "Actor"):  # fmt: skip
        assert name in airlock.__all__, name
    assert inspect.isclass(airlock.Registry) and airlock.Registry.__name__ == "Registry"


def test_lazy_names_are_imported_on_first_use_only() -> None:
    code = (
        "import sys, airlock\n"
        "print('airlock.services.registry' in sys.modules, 'sqlalchemy' in sys.modules)\n"
        "airlock.Registry\n"
        "print('airlock.services.registry' in sys.modules, 'Registry' in dir(airlock))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        airlock.Nope  # noqa: B018
