"""The repository's structural rules (issue 21), run by ``.ci/run`` and ``tests/test_house.py``.

* the import-linter contracts of ``pyproject.toml`` (``[tool.importlinter]``: the pipeline's layers, no Amaranth in the
  IR/plan), run by ``lint-imports`` on a staged copy of the package: ``cores/`` and ``boards/`` install as
  ``rtlgen.cores`` / ``rtlgen.boards`` (``package-dir``), so they are copied to ``rtlgen/cores`` and ``rtlgen/boards``
  for import-linter, which reads the package folder;
* no import cycle between modules of the package (:func:`import_cycles`);
* no Python module over :data:`MAX_LINES` lines (:func:`long_modules`);
* every import of an ``rtlgen`` module names one that exists (:func:`unresolved_imports`: a relative import left
  pointing at a moved module fails only when the code runs).

Usage: ``python tools/house.py`` (exit 1 and one line per broken rule).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 800
#: folders whose modules the line limit covers
CODE = ("rtlgen", "cores", "boards", "tools", "tests", "sim_tests")


def stage(dest: Path) -> Path:
    """A copy of the installed package layout under ``dest``: ``rtlgen/`` with ``cores/``, ``boards/`` inside."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    pkg = dest / "rtlgen"
    shutil.copytree(ROOT / "rtlgen", pkg, ignore=ignore, symlinks=True)
    for sub in ("cores", "boards"):
        if (pkg / sub).is_symlink():  # a developer's link to the top-level folder
            (pkg / sub).unlink()
        shutil.copytree(ROOT / sub, pkg / sub, ignore=ignore)
    return dest


def lint_imports() -> tuple[int, str]:
    """``lint-imports`` with the contracts of pyproject.toml on the staged package: (exit code, output)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        return 1, "lint-imports not found (pip install import-linter: the dev extra)"
    with tempfile.TemporaryDirectory(prefix="rtlgen_house_") as tmp:
        stage(Path(tmp))
        r = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp,
                           env={"PYTHONPATH": tmp, "PATH": "/usr/bin:/bin", "HOME": tmp}, capture_output=True,
                           text=True)
        return r.returncode, r.stdout + r.stderr


def import_cycles() -> list[list[str]]:
    """The strongly connected groups (more than one module) of the package's import graph."""
    import grimp

    with tempfile.TemporaryDirectory(prefix="rtlgen_house_") as tmp:
        stage(Path(tmp))
        sys.path.insert(0, tmp)
        saved = {k: v for k, v in sys.modules.items() if k == "rtlgen" or k.startswith("rtlgen.")}
        for k in saved:
            del sys.modules[k]
        try:
            g = grimp.build_graph("rtlgen", cache_dir=None)
        finally:
            sys.path.remove(tmp)
            for k in [k for k in sys.modules if k == "rtlgen" or k.startswith("rtlgen.")]:
                del sys.modules[k]
            sys.modules.update(saved)
    edges = {m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    out: list = []

    def visit(v):  # Tarjan, iterative over the successors of each module
        work = [(v, iter(edges[v]))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(edges[w])))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return out


def long_modules(limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """``(path, lines)`` of every tracked Python module over ``limit`` lines."""
    out = []
    for folder in CODE:
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT).parts
            if "__pycache__" in rel or (rel[0] == "rtlgen" and rel[1] in ("cores", "boards")):  # a developer's links
                continue
            n = len(p.read_text().splitlines())
            if n > limit:
                out.append((str(p.relative_to(ROOT)), n))
    return out


def _top_names(path: Path) -> set[str] | None:
    """Names a module binds at its top level (defs, classes, assignments, imports); None when it defines a module
    ``__getattr__`` (any name may resolve)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.If, ast.Try)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names |= {(a.asname or a.name).split(".")[0] for a in sub.names}
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, ast.Assign):
                    for t in sub.targets:
                        names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return None if "__getattr__" in names else names


def unresolved_imports() -> list[str]:
    """``path:line module`` of every ``rtlgen`` import (absolute or relative, at any depth; in the package, its tests
    and tools) whose module is not in the package, or ``from rtlgen.x import name`` where ``name`` is neither a
    submodule of ``rtlgen.x`` nor bound at the top level of ``rtlgen/x``."""
    import ast

    out = []
    with tempfile.TemporaryDirectory(prefix="rtlgen_house_") as tmp:
        root = stage(Path(tmp))

        def file_of(mod: str) -> Path | None:
            p = root.joinpath(*mod.split("."))
            for c in (p.with_suffix(".py"), p / "__init__.py"):
                if c.is_file():
                    return c
            return None

        files = [(f, f.relative_to(root), True) for f in sorted((root / "rtlgen").rglob("*.py"))]
        files += [(f, f.relative_to(ROOT), False) for d in ("tests", "sim_tests", "tools")
                  for f in sorted((ROOT / d).rglob("*.py"))]
        for f, rel, in_pkg in files:
            parts = list(rel.with_suffix("").parts)
            pkg = parts[:-1]
            for node in ast.walk(ast.parse(f.read_text())):
                mods = []
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        if not in_pkg:
                            continue
                        base = pkg[: len(pkg) - node.level + 1]
                        mod = ".".join(base + ([node.module] if node.module else []))
                    else:
                        mod = node.module or ""
                    if mod.split(".")[0] != "rtlgen":
                        continue
                    target = file_of(mod)
                    if target is None:
                        mods.append(mod)
                    else:
                        bound = _top_names(target)
                        for a in node.names:
                            if (a.name != "*" and file_of(f"{mod}.{a.name}") is None
                                    and bound is not None and a.name not in bound):
                                mods.append(f"{mod}.{a.name}")
                elif isinstance(node, ast.Import):
                    mods = [a.name for a in node.names if a.name.split(".")[0] == "rtlgen" and file_of(a.name) is None]
                out += [f"{rel}:{node.lineno} {m}" for m in mods]
    return out


def clashing_test_names() -> list[str]:
    """Test module basenames present in more than one of ``tests/`` and ``sim_tests/`` (pytest's rootdir-less
    import mode cannot collect both: "import file mismatch")."""
    seen: dict[str, str] = {}
    out = []
    for d in ("tests", "sim_tests"):
        for f in sorted((ROOT / d).glob("*.py")):
            if f.name in seen:
                out.append(f"{seen[f.name]}/{f.name} and {d}/{f.name}")
            seen.setdefault(f.name, d)
    return out


def main() -> int:
    bad = []
    for clash in clashing_test_names():
        bad.append(f"two test modules with one name: {clash}")
    rc, text = lint_imports()
    if rc != 0:
        bad.append("import-linter contracts broken:\n" + text)
    for comp in import_cycles():
        bad.append("import cycle: " + " <-> ".join(comp))
    for where in unresolved_imports():
        bad.append(f"import of a missing module: {where}")
    for path, n in long_modules():
        bad.append(f"{path}: {n} lines (more than {MAX_LINES})")
    for b in bad:
        print(b)
    print("house rules: " + ("OK" if not bad else f"{len(bad)} broken"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
