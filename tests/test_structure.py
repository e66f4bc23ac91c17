"""The shape of the code: no import cycles in gentk (deferred imports included), and no
built-in model that decides by type or name whose model it is looking at."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_graph() -> dict[str, set[str]]:
    package = ROOT / "gentk"
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):  # imports inside functions count too
            if isinstance(node, ast.ImportFrom):
                parts = here.split(".")
                base = parts[:len(parts) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                deps |= {t for t in [target] + [f"{target}.{a.name}" for a in node.names] if t in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
        # Importing a package's own parent is no cycle: the parent is already being imported.
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def test_no_import_cycles():
    graph = _module_graph()
    cycles = set()

    def visit(node, stack):
        for dep in graph[node]:
            if dep in stack:
                cycles.add(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif len(stack) < 30:
                visit(dep, stack + [dep])

    for module in graph:
        visit(module, [module])
    assert not cycles, sorted(cycles)


def test_builtin_plugins_have_no_ownership_checks():
    pattern = re.compile(r"type\(model\) is|isinstance\(model|if name ==")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "plugins").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
