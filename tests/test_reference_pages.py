"""The generated reference pages (docs/api.md, docs/config.md) are those the code gives now, and the docs site builds.

After a change of a public name, a docstring's first paragraph or a config key, run
``python docs/make_reference.py`` and commit the pages.
"""

import importlib.util
import subprocess
import sys

import pytest

from docs_blocks import ROOT


def generator():
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "docs" / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["api.md", "config.md"])
def test_a_committed_reference_page_equals_a_fresh_generation(name):
    pages = {path.name: text for path, text in generator().pages().items()}
    committed = (ROOT / "docs" / name).read_text()
    assert committed == pages[name], f"docs/{name} is out of date: run python docs/make_reference.py"


def test_the_config_page_names_every_key():
    from pixelrnn.config import ModelConfig
    from pixelrnn.training.run_config import DataConfig, TrainConfig

    text = (ROOT / "docs" / "config.md").read_text()
    for section, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
        for field in cls.__dataclass_fields__:
            assert f"`{section}.{field}`" in text


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    """Broken links between pages, and pages left out of the navigation, fail the build (mkdocs, extra [docs])."""
    pytest.importorskip("mkdocs", reason="the docs site needs the extra [docs] (mkdocs)")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_citation_names_the_paper_and_this_release():
    import pixelrnn

    citation = (ROOT / "CITATION.cff").read_text()
    assert "title: \"Pixel Recurrent Neural Networks\"" in citation and "year: 2016" in citation
    assert f"version: {pixelrnn.__version__}\n" in citation, "CITATION.cff names another release than pixelrnn.__version__"
    assert f"## {pixelrnn.__version__}" in (ROOT / "CHANGELOG.md").read_text()
    assert f'\nversion = "{pixelrnn.__version__}"\n' in (ROOT / "pyproject.toml").read_text()


def test_the_bundled_model_cards_name_their_release_and_no_folder_of_a_machine():
    import re

    import pixelrnn

    for card in sorted((ROOT / "pixelrnn" / "pretrained").glob("*/*/README.md")):
        text = card.read_text()
        assert f"pixelrnn {pixelrnn.__version__}" in text, card
        assert not re.search(r"(?<![\w.])/(work|home|tmp|root|Users|mnt|data)/", text), f"{card} names a folder of a machine"
