"""The public API is small, documented in the README, and kept in step with it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import sagasim

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_public_name_resolves() -> None:
    for name in sagasim.__all__:
        assert getattr(sagasim, name) is not None


def test_no_submodule_shadows_a_public_function() -> None:
    # importing sagasim.X sets the attribute sagasim.X to the module: a public function must
    # not share its name with a submodule (``check`` lives in ``sagasim.verify``), here or in
    # a stage's package (``sweep`` in ``sagasim.experiments.grid``)
    packages = [sagasim]
    for module in pkgutil.walk_packages(sagasim.__path__, "sagasim."):
        if not module.name.endswith("__main__"):  # __main__ runs the command line
            imported = importlib.import_module(module.name)
            packages += [imported] if module.ispkg else []
    for package in packages:
        for name in package.__all__:
            if name[0].islower() and name != "__version__":
                assert callable(getattr(package, name)), f"{package.__name__}.{name}"


def test_the_api_is_about_ten_names() -> None:
    assert 8 <= len(sagasim.__all__) <= 12


def test_readme_uses_only_public_names() -> None:
    used = set(re.findall(r"sagasim\.([a-z_]+)\(", README))
    assert used, "the README shows the Python API"
    assert used <= set(sagasim.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        sagasim.nothing_here  # noqa: B018
    except AttributeError as err:
        assert "nothing_here" in str(err)
    else:
        raise AssertionError("expected AttributeError")
