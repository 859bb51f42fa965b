"""The fenced code blocks of the README and docs/*.md, for the tests that run and parse them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A block that opens with one of these comments is a sketch for the reader, not a program.
OUTLINE = "# outline"
# A block that reads real data opens with this comment and runs only where PIXELRNN_DATA_DIR is set.
NEEDS_DATA = "# needs PIXELRNN_DATA_DIR"

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the block's first line of code, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")

    @property
    def is_outline(self) -> bool:
        return self.first_line.startswith(OUTLINE)

    @property
    def needs_data(self) -> bool:
        return self.first_line.startswith(NEEDS_DATA)


def blocks(path: Path, language: str | None = None) -> list[Block]:
    """Every fenced block of ``path`` (of ``language`` if given), in order; an indented fence's indent is removed."""
    found, current, start, indent, kind = [], None, 0, "", ""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fence = _FENCE.match(line)
        if current is None and fence:
            current, start, indent, kind = [], number + 1, fence.group(1), fence.group(2)
        elif current is not None and fence and not fence.group(2):
            found.append(Block(path, start, kind, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
    return [block for block in found if language is None or block.language == language]


def command_lines(block: Block):
    """(line number, text) of each command of a shell block, continuation lines joined."""
    pending, first = "", 0
    for offset, line in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
