"""The layout holds: imports between sftlab's packages point one way, and modules and functions stay small.

Data flows files → records → tokens → batches → module → logs, checkpoints, exports, and the arrows between
packages follow it: `data` imports nothing of sftlab's but the foundation (`errors`, `hub`, `artifacts`), `model`
nothing above `data`, and no two packages import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_cli import REPO

SOURCE = REPO / "src/sftlab"
FOUNDATION = {"errors", "hub", "artifacts"}
FORBIDDEN = {
    "data": {"model", "training", "inference", "evaluation", "selfinstruct", "ui", "cli", "inspect"},
    "model": {"training", "inference", "evaluation", "selfinstruct", "ui", "cli", "inspect"},
    "artifacts": {"data", "model", "training", "inference", "evaluation", "selfinstruct", "ui", "cli", "inspect"},
    "hub": {"artifacts", "data", "model", "training", "inference", "evaluation", "selfinstruct", "ui", "cli", "inspect"},
    "inference": {"training", "evaluation", "selfinstruct", "ui", "cli"},
}


def unit(path: Path) -> str:
    """The package (`data`, `model`, ...) or top-level module (`cli`, `artifacts`, ...) a file belongs to."""
    relative = path.relative_to(SOURCE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_units(path: Path) -> set[str]:
    """The sftlab units `path` imports anywhere in the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "sftlab" else [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sftlab" and len(parts) > 1 and parts[1] != "__version__":
                found.add(parts[1])
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        graph.setdefault(unit(path), set()).update(imported_units(path) - {unit(path)})
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            found.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*trail, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_packages_import_in_one_direction_only():
    graph = package_graph()
    assert {"data", "model", "training", "inference", "artifacts"} <= set(graph)
    wrong = {f"{source} imports {target}" for source, targets in graph.items() for target in targets & FORBIDDEN.get(source, set())}
    assert not wrong, sorted(wrong)
    assert graph["data"] <= FOUNDATION, graph["data"]
    assert not cycles(graph), cycles(graph)
    assert not any("cli" in targets for source, targets in graph.items() if source != "cli"), "nothing imports the CLI"


# The data package in the order data flows through it; a stage imports only the stages before it.
DATA_STAGES = ("formats", "rendering", "labels", "sources")


def data_stage(path: Path) -> str:
    """The stage folder of `data/` a file is in (`datamodule` for the files that wire them together)."""
    parts = path.relative_to(SOURCE / "data").parts
    return parts[0] if len(parts) > 1 else "datamodule"


def test_data_stages_import_only_earlier_stages():
    wrong = []
    for path in (SOURCE / "data").rglob("*.py"):
        stage = data_stage(path)
        allowed = DATA_STAGES[: DATA_STAGES.index(stage) + 1] if stage in DATA_STAGES else DATA_STAGES
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sftlab.data."):
                target = node.module.split(".")[2]
                if target not in allowed:
                    wrong.append(f"{path.relative_to(SOURCE)} imports {node.module}")
    assert {data_stage(path) for path in (SOURCE / "data").rglob("*.py")} == {*DATA_STAGES, "datamodule"}
    assert not wrong, wrong


def test_the_checks_catch_a_cycle_and_a_wrong_arrow():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    probe = SOURCE / "data" / "formats" / "records.py"
    assert "errors" in imported_units(probe)


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body without its docstring (the signature not counted)."""
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_modules_and_functions_stay_small():
    too_long = []
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 400:
            too_long.append(f"{path.relative_to(SOURCE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(node) > 50:
                too_long.append(f"{path.relative_to(SOURCE)}::{node.name}: {body_lines(node)} lines")
    assert not too_long, too_long


def test_the_fit_path_reads_in_400_lines():
    """The module and the datamodule: the default `fit` path from top to bottom."""
    lines = sum((SOURCE / name).read_text().count("\n") for name in ("model/module.py", "data/datamodule.py"))
    assert lines <= 400, lines
