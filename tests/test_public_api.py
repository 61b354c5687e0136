"""The curated public API: everything in ``airlock.__all__`` exists and nothing public is missing."""

from __future__ import annotations

import inspect
import subprocess
import sys

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
