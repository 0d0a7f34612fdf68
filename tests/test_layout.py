"""The layout's promises: imports point one way (no circle anywhere in modelkit), reading a file
does not import torch, only page modules import gradio, and no module grows past a sitting."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "modelkit"
# the stages in data-flow order: a module may import its own stage and the stages before it
# (__main__ is the command line: an entry point after every stage)
STAGES = ["errors", "config", "hosting", "images", "models", "runtime", "teach", "explanations",
          "batches", "scenes", "app", "__main__"]  # fmt: skip
GRADIO_FREE = {"form", "figures", "exports", "snippet", "runs", "gpu", "compare", "batch_figures",
               "teach_figures", "teach_state", "words", "label_state", "__init__"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every modelkit module this file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("modelkit")}
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelkit")
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(
                    sub
                    if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                    or (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                    else node.module
                )
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # the top-level __init__ only re-exports lazily (by name in a dict), so it has no edges
    return {
        name: {i for i in imports_of(p) if i in modules and i != name}
        for name, p in modules.items()
    }


def test_no_import_circle_in_modelkit():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [])


def stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_imports_point_from_the_page_toward_the_readers():
    for name, deps in graph().items():
        if name == "modelkit":
            continue
        for dep in deps:
            if dep == "modelkit":  # the package's __version__
                continue
            here, there = STAGES.index(stage(name)), STAGES.index(stage(dep))
            assert there <= here, f"{name} imports {dep}: a later stage than its own"


def test_only_page_modules_import_gradio():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if any(n.split(".")[0] == "gradio" for n in names if n):
            assert path.parent.name == "app" and path.stem not in GRADIO_FREE, path


def test_reading_an_image_does_not_import_torch():
    code = (
        "import sys, numpy as np, io\n"
        "import modelkit\n"
        "buf = io.BytesIO(); np.save(buf, np.zeros((3, 4, 5), np.uint16))\n"
        "img = modelkit.read_image(buf.getvalue(), 'a.npy')\n"
        "from modelkit.images import tiff, npy, read, limits\n"
        "assert img.num_channels == 3\n"
        "heavy = ('torch', 'torchvision', 'gradio')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout


def test_public_api_reaches_every_behaviour_in_one_hop():
    import modelkit

    for name in modelkit.__all__:
        assert getattr(modelkit, name) is not None, name
    for name in ("read_image", "predict", "features", "create_model", "list_models", "model_info"):
        assert callable(getattr(modelkit, name))


def test_no_module_is_longer_than_a_sitting():
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in [*PACKAGE.rglob("*.py"), ROOT / "app.py"]
        if (n := len(p.read_text().splitlines())) > 420
    }
    assert not too_long, too_long
