"""Where a pretrained name points (pixelrnn.hub): folders, bundled names, and Hub repositories through huggingface_hub's cache.

No test reaches the network: Hub repositories are served from a cache laid out as huggingface_hub
lays it out (checked with its own ``scan_cache_dir``), with ``local_files_only`` or ``HF_HUB_OFFLINE=1``.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn import CheckpointError, build_model, from_pretrained, hub

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(seed=0):
    torch.manual_seed(seed)
    return build_model("row_lstm", channels=1, levels=2, hidden=4, layers=1, output_hidden=8).eval()


def probe():
    return torch.randint(0, 2, (2, 1, 5, 4), generator=torch.Generator().manual_seed(0))


def lay_out_cache(cache: Path, repo_id: str, folder: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> None:
    """``folder``'s files as the snapshot ``commit`` of ``repo_id`` (branch main): blobs by SHA-256, linked from the snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for file in folder.iterdir():
        data = file.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob)


@pytest.fixture
def bundled_root(tmp_path, monkeypatch):
    """A bundled-models folder holding binarized_mnist/row_lstm (a tiny model), in place of the package's."""
    root = tmp_path / "bundled"
    tiny(seed=5).save_pretrained(root / "binarized_mnist" / "row_lstm")
    monkeypatch.setattr(hub, "BUNDLED_ROOT", root)
    return root


def test_names_resolve_to_a_folder_then_a_bundled_model(tmp_path, bundled_root, monkeypatch):
    assert hub.pretrained_folder("binarized_mnist/row_lstm") == bundled_root / "binarized_mnist" / "row_lstm"
    assert hub.installed_bundled() == ["binarized_mnist/row_lstm"]
    # A folder of that name in the working directory comes first, as with huggingface_hub.
    monkeypatch.chdir(tmp_path)
    tiny(seed=6).save_pretrained(tmp_path / "binarized_mnist" / "row_lstm")
    assert hub.pretrained_folder("binarized_mnist/row_lstm") == Path("binarized_mnist/row_lstm")
    assert torch.equal(from_pretrained("binarized_mnist/row_lstm")(probe()), tiny(seed=6)(probe()))


def test_a_bundled_model_missing_from_the_installation_is_named(bundled_root):
    with pytest.raises(CheckpointError, match=r"the bundled model 'binarized_mnist/pixelcnn' is not in this installation"):
        from_pretrained("binarized_mnist/pixelcnn")


@pytest.mark.parametrize("name", ["no such thing", "a/b/c", ""])
def test_a_name_that_is_nothing_is_one_clear_error(name):
    with pytest.raises(CheckpointError, match="is not a folder, a bundled model .* or a Hub repository id"):
        hub.pretrained_folder(name)


def test_without_huggingface_hub_a_repository_id_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match=r"install huggingface_hub: pip install 'pixelrnn\[hub\]'"):
        from_pretrained("someone/tiny")


def test_a_hub_repository_loads_from_the_cache_without_network(tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub", reason="the [hub] extra (huggingface_hub) is not installed")
    model = tiny()
    model.save_pretrained(tmp_path / "upload")
    (tmp_path / "upload" / "notes.bin").write_bytes(b"not one of the three files")
    lay_out_cache(tmp_path / "cache", "someone/tiny", tmp_path / "upload")
    assert [repo.repo_id for repo in huggingface_hub.scan_cache_dir(tmp_path / "cache").repos] == ["someone/tiny"]
    restored = from_pretrained("someone/tiny", cache_dir=tmp_path / "cache", local_files_only=True)
    assert torch.equal(restored(probe()), model(probe()))
    with pytest.raises(CheckpointError, match="cannot fetch 'someone/absent' from the Hugging Face Hub: .*cached snapshot"):
        from_pretrained("someone/absent", cache_dir=tmp_path / "cache", local_files_only=True)


def test_hf_hub_offline_is_honoured(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 and HF_HUB_CACHE: the cached repository loads, a missing one fails at once."""
    pytest.importorskip("huggingface_hub", reason="the [hub] extra (huggingface_hub) is not installed")
    model = tiny()
    model.save_pretrained(tmp_path / "upload")
    lay_out_cache(tmp_path / "cache", "someone/tiny", tmp_path / "upload")
    script = (
        "import numpy, sys, torch, pixelrnn\n"
        "weights = pixelrnn.from_pretrained('someone/tiny').state_dict().values()\n"
        "numpy.save(sys.argv[1], torch.cat([w.flatten() for w in weights]).numpy())\n"
        "try:\n    pixelrnn.from_pretrained('someone/absent')\n"
        "except pixelrnn.CheckpointError as error:\n    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "weights.npy")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / "weights.npy"), torch.cat([w.flatten() for w in model.state_dict().values()]).numpy())
    message = done.stdout.strip()
    assert message.startswith("cannot fetch 'someone/absent' from the Hugging Face Hub") and "HF_HUB_OFFLINE" in message
