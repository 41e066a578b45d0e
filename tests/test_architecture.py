"""The shape of the house (docs/architecture.md): layers import only the layers below them, no
import cycles, no module imports another module's private names, and the lower layers load
without torch (the codec without gymnasium and numba too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each top-level part, low to high; a module may import its own layer or lower ones.
LAYERS = {"core": 0, "sim": 1, "tasks": 2, "env": 3, "pipeline": 3, "policy": 4, "train": 5, "top": 6}


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("factorion", "pipeline"):
        for p in (ROOT / top).glob("**/*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


MODULES = _modules()


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "pipeline":
        return LAYERS["pipeline"]
    if len(parts) == 1:
        return LAYERS["core"]  # the package itself (a docstring and the version)
    return LAYERS.get(parts[1], LAYERS["top"])


def _imports(module: str, path: Path, *, top_level_only: bool):
    """(line, imported module, imported names) of every ``from X import`` in a module."""
    tree = ast.parse(path.read_text())
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level, TYPE_CHECKING and try blocks included
        nodes = [s for n in tree.body for s in ([n] + (list(ast.walk(n)) if isinstance(n, ast.If | ast.Try)
                                                         else []))]
    for n in nodes:
        if isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                base = ".".join(up + ([base] if base else []))
            yield n.lineno, base, [a.name for a in n.names]
        elif isinstance(n, ast.Import):
            for a in n.names:
                yield n.lineno, a.name, []


def _targets(base: str, names: list[str]) -> list[str]:
    subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
    return subs or ([base] if base in MODULES else [])


def test_layers_import_only_downward():
    bad = []
    for mod, path in MODULES.items():
        for line, base, names in _imports(mod, path, top_level_only=False):
            for target in _targets(base, names):
                if layer_of(target) > layer_of(mod):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles_at_module_level():
    graph = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for _, base, names in _imports(mod, path, top_level_only=True):
            graph[mod].update(t for t in _targets(base, names) if t != mod and not mod.startswith(t + "."))
    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph.get(b, ())})
    assert not cycles, f"modules importing each other: {cycles}"


def test_no_private_names_across_modules():
    bad = []
    for mod, path in MODULES.items():
        for line, base, names in _imports(mod, path, top_level_only=False):
            if base.split(".")[0] not in ("factorion", "pipeline"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(ROOT)}:{line} from {base} import {private}")
    assert not bad, "\n".join(bad)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_codec_loads_no_heavy_dependency():
    loaded = _loaded_after("import factorion.core.blueprint")
    assert not loaded & {"torch", "gymnasium", "numba"}, loaded & {"torch", "gymnasium", "numba"}


@pytest.mark.parametrize("module", ["factorion.core.render", "factorion.sim", "factorion.tasks",
                                    "factorion.env.vector", "factorion.env.planner", "pipeline.run"])
def test_lower_layers_load_without_torch(module):
    assert "torch" not in _loaded_after(f"import {module}")
