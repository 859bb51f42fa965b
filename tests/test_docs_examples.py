"""The README's and docs/*.md's examples work.

Every fenced ``python`` block runs as written: the blocks of one file in order, in one namespace,
in a scratch folder, each within a few seconds. A block that opens with ``# outline`` is a sketch
and is skipped; one that opens with ``# needs PIXELRNN_DATA_DIR`` runs only where that variable
is set (skipped, saying so, elsewhere). Every ``pixelrnn`` command line of a ``bash`` block
parses with the command line's own parser.
"""

import contextlib
import os
import re
import shlex
import signal
from pathlib import Path

import pytest

from docs_blocks import DOCUMENTS, ROOT, blocks, command_lines
from pixelrnn.cli import build_parser, main

# Far above what the examples take (well under a second each, once imports are warm), far below
# the minutes an example that samples or trains at full size would take.
SECONDS_PER_BLOCK = 30


@contextlib.contextmanager
def time_limit(seconds: int, message: str):
    """Stop the block at ``seconds`` (an example that samples at full size would otherwise run for minutes)."""
    def stop(signum, frame):
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def with_python():
    return [path for path in DOCUMENTS if blocks(path, "python")]


def test_the_extractor_finds_the_blocks():
    readme = ROOT / "README.md"
    assert len(blocks(readme, "python")) >= 3 and len(blocks(readme, "bash")) >= 4
    assert len(with_python()) >= 5


@pytest.fixture(scope="module")
def kernels_built():
    """The native kernels are built on first use (seconds to a minute): not an example's time."""
    import pixelrnn.native

    pixelrnn.native.library()


@pytest.mark.parametrize("path", with_python(), ids=lambda path: path.name)
def test_python_blocks_run_in_order(path, tmp_path, monkeypatch, kernels_built):
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    data_dir = os.environ.get("PIXELRNN_DATA_DIR", "").strip()
    namespace, skipped = {"__name__": "docs_example"}, []
    for block in blocks(path, "python"):
        if block.is_outline:
            continue
        if block.needs_data and not data_dir:
            skipped.append(block.where)
            continue
        with time_limit(SECONDS_PER_BLOCK, f"{block.where} runs past {SECONDS_PER_BLOCK} s: make the example smaller"):
            exec(compile(block.text, block.where, "exec"), namespace)
    if skipped:
        pytest.skip(f"set PIXELRNN_DATA_DIR to a folder with the datasets to run {', '.join(skipped)}")


def pixelrnn_argv(line: str) -> list[str] | None:
    """The arguments of a ``pixelrnn`` command line (also ``python -m pixelrnn``, ``torchrun ... -m pixelrnn``), else None."""
    words = shlex.split(line, comments=True)
    while words[:1] and "=" in words[0]:  # VAR=value before the command
        words = words[1:]
    if words[:1] == ["pixelrnn"]:
        return words[1:]
    for at in range(len(words) - 1):
        if words[at:at + 2] == ["-m", "pixelrnn"] and words[0] in ("python", "python3", "torchrun"):
            return words[at + 2:]
    return None


def pixelrnn_commands():
    for path in DOCUMENTS:
        for block in blocks(path, "bash"):
            for number, line in command_lines(block):
                argv = pixelrnn_argv(line)
                if argv is not None:
                    yield pytest.param(argv, id=f"{path.name}:{number}")


@pytest.mark.parametrize("argv", list(pixelrnn_commands()))
def test_command_lines_parse(argv):
    build_parser().parse_args(argv)  # an unknown flag or a missing argument exits: the line named in the id is out of date


# Commands that run in a second or two on the bundled models: the examples that need no run
# folder of the reader's. The others (training, a whole test split) are parsed only.
LISTINGS = {"presets", "configs", "pretrained"}
ON_BUNDLED = {"sample", "complete", "check", "compress", "decompress"}


def cheap(argv: list[str], data_dir: str) -> bool:
    if argv[:1] and argv[0] in LISTINGS:
        return True
    if not (argv[:1] and argv[0] in ON_BUNDLED and len(argv) > 1 and argv[1].startswith("pretrained:binarized_mnist/")):
        return False
    if "--dataset" in argv:  # a few images of the reader's data, where it is present
        return bool(data_dir) and "--limit" in argv and int(argv[argv.index("--limit") + 1]) <= 100
    return "-n" not in argv or int(argv[argv.index("-n") + 1]) <= 64


def inputs(argv: list[str]) -> list[str]:
    """Files a command reads that an earlier example writes (skipped where that example did not run)."""
    found = [argv[at + 1] for at, word in enumerate(argv[:-1]) if word == "--npz"]
    return found + ([argv[2]] if argv[0] == "decompress" and len(argv) > 2 else [])


def cheap_commands():
    for path in DOCUMENTS:
        lines = [(number, argv) for block in blocks(path, "bash") for number, line in command_lines(block)
                 if (argv := pixelrnn_argv(line)) is not None]
        if any(cheap(argv, "data") for _, argv in lines):
            yield pytest.param(path, lines, id=path.name)


@pytest.mark.parametrize("path,lines", list(cheap_commands()))
def test_cheap_commands_run_in_order(path, lines, tmp_path, monkeypatch, kernels_built):
    """A file's cheap commands run in a scratch folder, in order (``complete --npz samples.npz`` reads what ``sample`` wrote)."""
    monkeypatch.chdir(tmp_path)
    data_dir = os.environ.get("PIXELRNN_DATA_DIR", "").strip()
    for number, argv in lines:
        if cheap(argv, data_dir) and all(Path(name).exists() for name in inputs(argv)):
            with time_limit(SECONDS_PER_BLOCK, f"{path.name}:{number} runs past {SECONDS_PER_BLOCK} s"):
                assert main(argv + ["-q"] * (argv[0] in ON_BUNDLED and argv[0] != "check")) == 0, f"{path.name}:{number} failed"


TOP_FOLDERS = ("pixelrnn/", "tests/", "benchmarks/", "docs/", "configs/")
FILE_SUFFIXES = (".py", ".cpp", ".h", ".md", ".toml", ".cff")


def named_files(path: Path):
    """Files of this repository a document names in backticks: a path, or a bare file name."""
    for name in re.findall(r"`([\w./-]+)`", path.read_text()):
        if any(part.isupper() for part in re.split(r"[/._-]", name)):  # a placeholder (RUN_DIR/..., configs/NAME.toml)
            continue
        if name.startswith(TOP_FOLDERS) or name.endswith(FILE_SUFFIXES):
            yield name


def test_the_files_the_documents_name_exist():
    tracked = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if ".git" not in p.parts}
    basenames = {Path(p).name for p in tracked}
    missing = []
    for path in DOCUMENTS:
        for name in set(named_files(path)):
            known = any(f"{base}{name.rstrip('/')}" in tracked for base in ("", "pixelrnn/", "docs/"))
            if not known and not ("/" not in name and name in basenames):
                missing.append(f"{path.name}: {name}")
    assert not missing, f"named but not in the repository: {missing}"
