"""The layer rules of DESIGN.md, checked on the source: what each package may import.

- The edges (``api/``, ``cli/``, ``web/``, ``gateway/``) call services only: none
  imports ``airlock.catalog`` or ``airlock.audit`` (nor ``from airlock import
  catalog``/``audit``), for reads too.
- ``core/`` is pure: from the other airlock packages it imports only ``airlock.errors``.

Every import counts, also one inside a function or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "airlock"
EDGES = ("api", "cli", "web", "gateway")
BELOW_THE_SERVICES = ("airlock.catalog", "airlock.audit")

# Offenders another engineer of issue 11 removes in the same change: strict, so the lead
# notices (XPASS fails) and deletes the entry once the branches are merged.
PENDING = {}


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module ``source`` (a module of ``package``) imports, with its line; ``from a
    import b`` counts as ``a`` and ``a.b`` (``b`` may be a module)."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offences(source: str, package: str, forbidden: tuple[str, ...]) -> list[tuple[int, str]]:
    return sorted(
        {
            (line, module)
            for line, module in imported_modules(source, package)
            if any(_is_under(module, f) for f in forbidden)
        }
    )


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _edge_modules() -> list[object]:
    params: list[object] = []
    for edge in EDGES:
        for path in sorted((SRC / edge).rglob("*.py")):
            name = path.relative_to(SRC).as_posix()
            marks = (
                [pytest.mark.xfail(strict=True, reason=PENDING[name])] if name in PENDING else []
            )
            params.append(pytest.param(path, id=name, marks=marks))
    return params


@pytest.mark.parametrize("path", _edge_modules())
def test_edges_do_not_import_the_catalog_or_the_audit_package(path: Path) -> None:
    found = offences(_read(path), package_of(path), BELOW_THE_SERVICES)
    assert [f"line {line}: {module}" for line, module in found] == []


def test_every_edge_package_is_checked() -> None:
    for edge in EDGES:
        assert len(list((SRC / edge).glob("*.py"))) > 1, edge
    assert set(PENDING) <= {
        p.relative_to(SRC).as_posix() for e in EDGES for p in (SRC / e).rglob("*.py")
    }


def test_core_imports_nothing_from_other_airlock_packages_but_errors() -> None:
    bad = []
    for path in sorted((SRC / "core").rglob("*.py")):
        for line, module in imported_modules(_read(path), package_of(path)):
            if _is_under(module, "airlock") and not (
                _is_under(module, "airlock.core") or _is_under(module, "airlock.errors")
            ):
                if module == "airlock":  # `from airlock import x`: judged by x
                    continue
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert bad == []


def test_the_checker_sees_every_form_of_import() -> None:
    sample = (
        "import airlock.catalog.engine\n"
        "from airlock import audit\n"
        "from airlock.catalog.releases import ReleaseRow\n"
        "from ..audit import chain\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from airlock.audit.log import Event\n"
        "def f() -> None:\n"
        "    from airlock import catalog\n"
        "from airlock.services.registry import Registry\n"
        "from airlock.catalogue_like import x\n"
        "from . import deps\n"
    )
    lines = {line for line, _ in offences(sample, "airlock.api", BELOW_THE_SERVICES)}
    assert lines == {1, 2, 3, 4, 7, 9}
    assert (12, "airlock.api.deps") in imported_modules(sample, "airlock.api")
