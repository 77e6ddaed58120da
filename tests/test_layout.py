"""The package's shape (issue 14): no module imports the package's `__init__` (it only re-exports the public names),
and no two modules import each other, directly or round a longer circle. Imports inside functions count too: a
lazy import that closes a circle still ties the two modules together."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "python" / "wikigpt"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The wikigpt modules that `name` imports (resolved: `from .x import y` is module x, or x.y if that is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("wikigpt"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known or sub == "wikigpt._core" else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("wikigpt"))
    out.discard(name)
    return out


def test_no_module_imports_the_package_init():
    known = modules()
    offenders = {name: "wikigpt" for name, path in known.items()
                 if name != "wikigpt" and "wikigpt" in imports_of(name, path, known)}
    assert not offenders, f"these import names from wikigpt/__init__.py: {sorted(offenders)}"


def test_no_import_circles():
    known = modules()
    graph = {name: {t for t in imports_of(name, path, known) if t in known and t != "wikigpt"}
             for name, path in known.items()}
    # a subpackage's __init__ importing its own modules is how packages re-export: not a circle
    for name in graph:
        graph[name] = {t for t in graph[name] if not (known[name].name == "__init__.py" and t.startswith(name + "."))}
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_optional_extras_load_only_when_asked_for():
    """transformers, safetensors, wandb, tensorboard and pyarrow are optional extras (issue 13): importing the package,
    its CLI and every stage's module loads none of them, so the core install works without them."""
    import subprocess
    import sys

    extras = ("transformers", "safetensors", "wandb", "tensorboard", "pyarrow")
    names = sorted(name for name, path in modules().items() if path.name != "__main__.py")  # __main__ runs the CLI
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in names) + (
        f"print(','.join(m for m in {extras!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported at start-up: {r.stdout.strip()}"


def test_data_commands_run_numpy_on_one_blas_thread():
    """numpy's OpenBLAS starts a spinning thread per core on import; the data commands (all their work in Rust) set
    OPENBLAS_NUM_THREADS=1 before building the parser imports the stages (and numpy). That only works while importing
    the package and its CLI loads no numpy; the user's own setting and the other commands are left alone."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "import wikigpt, wikigpt.cli\n"
        "assert 'numpy' not in sys.modules, 'numpy imported with the package or its CLI'\n"
        "try:\n"
        "    wikigpt.cli.main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )

    def blas_threads(*argv: str, user: str | None = None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if user is not None:
            env["OPENBLAS_NUM_THREADS"] = user
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    assert blas_threads("status", "/nonexistent/dataset") == "1"
    assert blas_threads("cat", "/nonexistent.xml.bz2") == "1"
    assert blas_threads("status", "/nonexistent/dataset", user="4") == "4"
    assert blas_threads("train", "--no-such-flag") == "None"
