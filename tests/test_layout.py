"""The package's shape: imports run one way, the command line is imported by nothing, files stay small.

Read from the source text (ast), so the test sees every import, including those inside functions.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pixelrnn"
MAX_LINES = 400  # the size limit of a source file, stated once

# Floors, from the ground up: a module may import its own group and the floors below it, never a
# floor above or another group of its own floor.
FLOORS = [
    ["errors"],
    ["utils", "config", "hub", "limits", "native"],
    ["archives"],
    ["presets", "images", "layers"],
    ["models"],
    ["evaluation", "checkpoint", "causality"],
    ["figures", "sampling", "data"],
    ["training", "codec"],
    ["cli"],
]
FLOOR = {group: level for level, groups in enumerate(FLOORS) for group in groups}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every pixelrnn module (or package) the file imports, absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in files.items():
        targets = {target for target in imports(path) if target in files and target != name}
        # A package's face re-exports its own modules; that is not a dependency of meaning.
        edges[name] = {t for t in targets if not (path.name == "__init__.py" and t.startswith(name + "."))}
    return edges


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_the_library_never_imports_the_command_line():
    offenders = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
                 if group(b) == "cli" and group(a) not in ("cli", "__main__")]
    assert offenders == []


def test_imports_run_down_the_floors():
    edges = graph()
    placed = {group(name) for name in edges} - {"__init__", "__main__"}
    assert placed == set(FLOOR), "every module group has a floor"
    upward = [f"{a} -> {b}" for a, targets in edges.items() for b in targets
              if group(a) in FLOOR and group(b) in FLOOR and group(a) != group(b) and FLOOR[group(b)] >= FLOOR[group(a)]]
    assert upward == []


def test_no_source_file_exceeds_the_size_limit():
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_checks_have_teeth(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "pixelrnn" / "models" / "base.py"
    source.parent.mkdir(parents=True)
    source.write_text("from ..cli import main\nfrom . import registry\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pixelrnn"
    try:
        assert imports(source) == {"pixelrnn.cli", "pixelrnn.cli.main", "pixelrnn.models", "pixelrnn.models.registry"}
    finally:
        PACKAGE = saved
