"""The command line at first contact: version, help, start-up, pipes, shipped configs, the user's own images."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixelrnn import PRESETS, __version__
from pixelrnn.cli import build_parser, main
from pixelrnn.training import build_run_config
from pixelrnn.training.run_config import shipped_configs


def subcommands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"pixelrnn {__version__}"


def test_every_flag_and_argument_has_help():
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}"
               for name, parser in subcommands(build_parser()).items() for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


def test_help_names_what_it_accepts():
    commands = subcommands(build_parser())
    complete, train = commands["complete"].format_help(), commands["train"].format_help()
    assert "binarized_mnist" in complete and "digits" in complete and "train --help" not in complete
    assert "multiscale" in " ".join(train.split()) and "pixelrnn configs" in " ".join(train.split())


def test_import_does_not_load_the_compiler():
    code = "import sys, pixelrnn; print('torch._dynamo' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_closed_pipe_ends_the_listing_quietly():
    """`pixelrnn presets | head -1`: the reader is gone before the first line is written."""
    process = subprocess.Popen([sys.executable, "-m", "pixelrnn", "presets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and err == ""


def test_presets_lists_every_network_with_its_size(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(f"{preset.parameters:,}" in out for preset in PRESETS.values())


def test_shipped_configs_are_listed_and_found_by_name(capsys, tmp_path, monkeypatch):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert {line.split()[0] for line in out.splitlines()} == set(shipped_configs()) >= {"mnist_diagonal_bilstm", "digits_demo"}
    assert "Table 4" in out
    monkeypatch.chdir(tmp_path)  # far from a checkout: by name, and by the checkout's path
    by_name = build_run_config("mnist_diagonal_bilstm")
    assert by_name == build_run_config("configs/mnist_diagonal_bilstm.toml") == build_run_config(shipped_configs()["mnist_diagonal_bilstm"])
    assert by_name.model["preset"] == "mnist_diagonal_bilstm"
    assert main(["train", "--config", "no_such_config", "--out", str(tmp_path / "x")]) == 2
    assert "shipped configs are" in capsys.readouterr().err


def test_a_folder_of_binary_images_trains_a_binary_model(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "pictures").mkdir()
    for index in range(30):
        Image.fromarray(rng.integers(0, 2, (5, 4)).astype(bool)).save(tmp_path / "pictures" / f"{index:02d}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{tmp_path / 'pictures'}", "--arch", "pixelcnn", "--set", "data.levels=2",
                 "--set", "model.hidden=2", "--set", "model.layers=1", "--set", "model.output_hidden=2",
                 "--set", "train.batch_size=8", "--steps", "2", "--out", str(run), "-q"]) == 0  # no --set data.valid_split needed
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["levels"] == 2 and config["data"]["levels"] == 2
    valid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"valid"' in line]
    assert [record["images"] for record in valid] == [3]  # index % 10 == 1: 3 of 30 images
