"""Byte-identity check of the generator's outputs across a refactoring (issue 21).

Builds a fixed set of designs with the ``rtlgen build`` command line and writes a manifest: the sha256 of every file of
each build folder, with

* Verilog (``*.v``): the leading ``//`` header comment lines skipped (they name the build, not the logic);
* ``report.json``: the volatile key ``timings_s`` (wall-clock seconds of each step) dropped;
* ``.rtlgen-build.json`` (the folder marker) and ``model.onnx`` (a copy of the input, hashed under ``models``) left out.

Builds (``BUILDS``): the four bench builds (bundled ResNet8 / ResNet20 on ultra96v2 / kv260) and, with ``--deep``, the
nine networks of ``sim_tests/test_deep_nets.py`` (``tests/zoo_deep.py``: NETS) under their ``generic`` budgets (plan + RTL
only, no simulation). The deep networks' ONNX files are generated once by ``tests/zoo_deep.py`` into ``--models DIR`` (kept between runs; their sha256
is in the manifest too, so a changed generator shows up with ``--regen-models``).

Usage::

    python tools/identical.py make  --manifest /tmp/base.json [--deep]   # before
    python tools/identical.py check --manifest /tmp/base.json [--deep]   # after: exit 1 and the differing files
    python tools/identical.py compare --manifest /tmp/base.json --against /tmp/new.json  # two stored manifests
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (name, model, rtlgen build options)
BENCH = [
    ("resnet8_ultra96v2", "resnet8", ["--board", "ultra96v2"]),
    ("resnet8_kv260", "resnet8", ["--board", "kv260"]),
    ("resnet20_ultra96v2", "resnet20", ["--board", "ultra96v2"]),
    ("resnet20_kv260", "resnet20", ["--board", "kv260"]),
]

VOLATILE_REPORT_KEYS = ("timings_s",)
SKIP_FILES = {".rtlgen-build.json", "model.onnx"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path, rel: str) -> str:
    data = path.read_bytes()
    if rel.endswith(".v"):
        lines = data.split(b"\n")
        k = 0
        while k < len(lines) and lines[k].startswith(b"//"):
            k += 1
        data = b"\n".join(lines[k:])
    elif rel == "report.json":
        rep = json.loads(data)
        for key in VOLATILE_REPORT_KEYS:
            rep.pop(key, None)
        data = json.dumps(rep, indent=1, sort_keys=True).encode()
    return _sha(data)


def folder_digests(out: Path) -> dict[str, str]:
    res = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in SKIP_FILES:
            res[rel] = file_digest(p, rel)
    return res


def _zoo_deep():
    """tests/zoo_deep.py: the deep networks of sim_tests/test_deep_nets.py (NETS, their budgets and models)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import zoo_deep

    return zoo_deep


def deep_model(kind: str, models: Path, regen: bool) -> Path:
    """kind -> ONNX path (generated once into ``models/kind``, reused unless ``regen``; bundled ones as they are)."""
    if kind.endswith("_bundled"):
        return Path(_zoo_deep().deep_model(kind, models)[0])
    d = models / kind
    done = d / "path.txt"
    if done.exists() and not regen:
        return Path(done.read_text())
    d.mkdir(parents=True, exist_ok=True)
    path = Path(_zoo_deep().deep_model(kind, d)[0])
    done.write_text(str(path))
    return path


def build(name: str, model: str, opts: list[str], work: Path) -> tuple[str, dict, float]:
    out = work / name
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'rtlgen'; from rtlgen.cli import main; main()",
           "build", model, *opts, "--out", str(out)]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    if r.returncode != 0:
        raise SystemExit(f"{name}: rtlgen build failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return name, folder_digests(out), time.perf_counter() - t


def manifest(deep: bool, models: Path, regen: bool, jobs: int, only: set[str] | None) -> dict:
    jobs_list = [(n, m, o) for n, m, o in BENCH]
    man: dict = {"builds": {}, "models": {}}
    if deep:
        models.mkdir(parents=True, exist_ok=True)
        for kind, budget in _zoo_deep().NETS:
            if only and kind not in only:
                continue
            path = deep_model(kind, models, regen)
            man["models"][kind] = _sha(path.read_bytes())
            jobs_list.append((f"deep_{kind}", str(path), ["--board", "generic", "--budget", budget]))
    if only:
        jobs_list = [j for j in jobs_list if j[0] in only or j[0].removeprefix("deep_") in only]
    with tempfile.TemporaryDirectory(prefix="rtlgen_identical_") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            for name, dig, sec in ex.map(lambda j: build(*j, Path(tmp)), jobs_list):
                print(f"  {name}: {len(dig)} files ({sec:.0f} s)", flush=True)
                man["builds"][name] = dig
    return man


def compare(base: dict, new: dict) -> list[str]:
    diffs = []
    for section in ("models", "builds"):
        for name, val in new[section].items():
            if name not in base.get(section, {}):
                diffs.append(f"{section}/{name}: not in the baseline")
                continue
            old = base[section][name]
            if section == "models":
                if old != val:
                    diffs.append(f"models/{name}: generated ONNX differs")
                continue
            for rel in sorted(set(old) | set(val)):
                if old.get(rel) != val.get(rel):
                    what = "missing" if rel not in val else "new" if rel not in old else "differs"
                    diffs.append(f"{name}/{rel}: {what}")
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["make", "check", "compare"])
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--against", type=Path, help="compare: the manifest to compare with --manifest")
    ap.add_argument("--deep", action="store_true", help="also the nine sim_tests/test_deep_nets.py networks")
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "rtlgen_identical_models")
    ap.add_argument("--regen-models", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated build names (e.g. resnet8_kv260,qdq_plain)")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    if a.action == "compare":
        return report(json.loads(a.manifest.read_text()), json.loads(a.against.read_text()))
    man = manifest(a.deep, a.models, a.regen_models, a.jobs, only)
    if a.action == "make":
        a.manifest.write_text(json.dumps(man, indent=1, sort_keys=True))
        print(f"wrote {a.manifest}: {len(man['builds'])} builds")
        return 0
    return report(json.loads(a.manifest.read_text()), man)


def report(base: dict, man: dict) -> int:
    diffs = compare(base, man)
    for d in diffs:
        print("DIFF", d)
    print(f"{len(man['builds'])} builds: " + ("identical" if not diffs else f"{len(diffs)} differences"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
