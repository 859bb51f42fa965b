"""The README's examples work: every python block runs, every `pixelrnn` command line parses."""

import shlex
from pathlib import Path

import pytest

from pixelrnn.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[tuple[int, str]]:
    """(first line number, text) of every fenced block of ``language`` in the README."""
    found, current, start = [], None, 0
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if current is None and line.strip() == f"```{language}":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            found.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return found


def test_the_extractor_finds_the_blocks():
    assert len(blocks("python")) >= 3 and len(blocks("bash")) >= 4


@pytest.mark.parametrize("start,code", blocks("python"), ids=lambda value: f"line{value}" if isinstance(value, int) else "")
def test_python_blocks_run(start, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    exec(compile(code, f"README.md:{start}", "exec"), {"__name__": "readme"})


def command_lines():
    for start, code in blocks("bash"):
        for offset, line in enumerate(code.splitlines()):
            words = shlex.split(line, comments=True)
            if words[:1] == ["pixelrnn"]:
                yield start + offset, words[1:]


@pytest.mark.parametrize("number,argv", list(command_lines()), ids=lambda value: f"line{value}" if isinstance(value, int) else "")
def test_command_lines_parse(number, argv):
    build_parser().parse_args(argv)  # an unknown flag or a missing argument exits: README.md:{number} is out of date
