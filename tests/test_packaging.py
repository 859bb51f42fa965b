"""What an installed package carries: its license, its requirements, its configs, and a README that installs the demo."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_and_spdx_expression():
    project = PROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_torch_has_a_floor_and_no_ceiling():
    torch_requirement = next(d for d in PROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert torch_requirement.startswith("torch>=") and "<" not in torch_requirement


def test_the_configs_ship_as_package_data():
    assert "configs/*.toml" in PROJECT["tool"]["setuptools"]["package-data"]["pixelrnn"]
    assert sorted(p.name for p in (ROOT / "pixelrnn" / "configs").glob("*.toml")) == sorted(p.name for p in (ROOT / "configs").glob("*.toml"))


def test_the_readme_install_line_gives_what_the_demo_needs():
    """The demo trains on `digits`, which needs the [digits] extra; the README's install line must name it."""
    demo = tomllib.loads((ROOT / "pixelrnn" / "configs" / "digits_demo.toml").read_text())
    assert demo["data"]["dataset"] == "digits" and "digits" in PROJECT["project"]["optional-dependencies"]
    installs = re.findall(r'^pip install -e "\.\[([a-z,]+)\]"', (ROOT / "README.md").read_text(), re.MULTILINE)  # the install commands
    assert installs and all("digits" in extras.split(",") for extras in installs)
    make_install = re.search(r'pip install --quiet -e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text())
    assert "digits" in make_install.group(1).split(",")
