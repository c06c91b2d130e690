"""The package's layering, read from its imports: cli -> workflows -> mathematics and data -> foundations.

A module may import its own layer or those below, never one above, and the imports have no circle. Imports
inside functions count too (they are still a dependency); those under `if TYPE_CHECKING:` do not.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cleardiffusion"

LAYERS = {
    0: ["errors", "limits", "files", "recipe"],
    1: [
        "denoiser",
        "schedule",
        "objective",
        "flow",
        "meanflow",
        "consistency",
        "samplers",
        "guidance",
        "fastpath",
        "models",
        "data",
        "distributed",
        "evaluate",
        "viz",
        "options",
    ],  # fmt: skip
    2: [
        "checkpoint",
        "features",
        "inception",
        "generate",
        "toy",
        "train_config",
        "evaluation_runner",
        "monitor",
        "train",
        "train_run",
        "api",
        "export",
        "experiments",
    ],  # fmt: skip
    3: ["cli", "__main__"],
}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def runtime_imports(tree: ast.AST):
    """Import nodes outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    graph = {}
    for name, path in names.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        if name == "":
            package = []
        targets = set()
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [a.name.removeprefix("cleardiffusion.") for a in node.names]
            elif node.level == 0:
                if not (node.module or "").startswith("cleardiffusion"):
                    continue
                base = node.module.removeprefix("cleardiffusion").lstrip(".")
                candidates = [base] + [f"{base}.{a.name}".lstrip(".") for a in node.names]
            else:
                base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
                candidates = [base] + [f"{base}.{a.name}".lstrip(".") for a in node.names]
            targets |= {c for c in candidates if c in names and c not in ("", name)}
        graph[name] = targets
    return graph


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for layer, tops in LAYERS.items():
        if top in tops:
            return layer
    raise AssertionError(f"module {module} has no layer: add it to LAYERS in {Path(__file__).name}")


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, ts in graph.items() if m for t in ts if layer_of(t) > layer_of(m)]  # fmt: skip
    assert not upward, upward


def test_the_imports_have_no_circle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(target) :] + [module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The two checks can fail: a made-up package with both faults is caught by each."""
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text("")
    (tmp_path / "schedule.py").write_text("from .cli import run\n")  # layer 1 -> layer 3
    (tmp_path / "samplers.py").write_text("from . import guidance\n")
    (tmp_path / "guidance.py").write_text("def f():\n    from .samplers import x\n")  # a circle, inside a function
    for i in range(31):  # enough modules for the sanity check
        (tmp_path / f"viz{i}.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    monkeypatch.setitem(LAYERS, 1, [*LAYERS[1], *(f"viz{i}" for i in range(31))])
    with pytest.raises(AssertionError, match="schedule .layer 1. imports cli .layer 3."):
        test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones()
    with pytest.raises(pytest.fail.Exception, match="import circle: .*guidance.*samplers"):
        test_the_imports_have_no_circle()
