"""The package as users install it: lib ships its py.typed marker, and lib's runtime imports are declared."""
from __future__ import annotations

import re
from pathlib import Path

from setuptools.config.setupcfg import read_configuration

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {name.lower(): version for name, version in (line.split("==") for line in lines if "==" in line)}


def test_lib_ships_its_type_marker():
    config = read_configuration(str(ROOT / "setup.cfg"))
    assert "py.typed" in config["options"]["package_data"]["lib"]
    assert (ROOT / "lib" / "py.typed").is_file()


def test_what_lib_imports_lazily_is_declared_and_pinned():
    config = read_configuration(str(ROOT / "setup.cfg"))
    ranges = {re.split(r"[<>=\[]", requirement)[0].lower() for requirement in config["options"]["install_requires"]}
    for package in ("pandas", "ccxt", "requests-cache", "platformdirs", "requests"):
        assert package in ranges and package in pins(), package
