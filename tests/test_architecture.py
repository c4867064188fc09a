"""docs/architecture.md and the README's layout table name every module there is, and
only those; the doc's "where to make changes" names only functions and tables that exist."""

from __future__ import annotations

import importlib
import os
import re

import pytest

from tests.conftest import ROOT

DOC = os.path.join(ROOT, "docs", "architecture.md")


def _modules(package: str) -> set[str]:
    folder = os.path.join(ROOT, package)
    return {
        f"{package}/{name}"
        for name in os.listdir(folder)
        if name.endswith(".py") and name != "__init__.py"
    }


def _named(text: str) -> set[str]:
    """Every `trainer/x.py` path named in `text`, `trainer/a.py`, `trainer/b.py` included."""
    return set(re.findall(r"`(trainer/\w+\.py)`", text))


@pytest.mark.parametrize("path", [DOC, os.path.join(ROOT, "README.md")])
def test_every_trainer_module_is_described_and_none_that_is_gone(path):
    with open(path) as f:
        named = _named(f.read())
    assert named == _modules("trainer")


def test_the_names_the_doc_sends_a_newcomer_to_exist():
    with open(DOC) as f:
        text = f.read()
    # `module.NAME` and `module.function` references, as the doc writes them.
    for module, name in set(re.findall(r"`(\w+)\.(\w+)`", text)):
        if name in ("py", "sh", "json", "md", "yaml", "txt", "png", "mp4") or module == "tf":
            continue  # a file name, or TensorFlow's
        try:
            loaded = importlib.import_module(f"trainer.{module}")
        except ModuleNotFoundError:
            loaded = importlib.import_module(f"deploy.{module}")
        assert hasattr(loaded, name), f"docs/architecture.md names {module}.{name}"
