"""The build folder contract: rtlgen replaces only what it wrote itself, atomically.

``rtlgen build --out DIR`` (and :meth:`rtlgen.flow.Design.build`) writes into a temporary folder beside ``DIR`` and
renames it into place when every step succeeded. ``DIR`` may be

* missing (it is created), or an empty folder;
* an earlier rtlgen build: it holds :data:`MARKER`, written by the build, listing every file the build wrote. The
  folder is replaced only if everything in it is either listed there or lies in one of the folders that rtlgen's own
  commands add to a build (:data:`DERIVED`: ``sim_build/`` from ``rtlgen sim``, ``synth/`` and ``timing/`` from
  ``rtlgen report``, ``report.png``; the content-keyed yosys caches ``synth/`` and ``timing/`` move into the new build,
  :data:`CARRIED`). Anything else (a user's note, a Vivado project run inside ``vivado/``) is named
  in the error and nothing is touched.

Refused outright, whatever they hold: ``/``, ``$HOME``, the current folder and any folder above it, and a path that
is an existing file. Every refusal is an :class:`~rtlgen.errors.OptionError` naming ``--out`` (CLI: one line, exit 2).

Replacement is two renames in the same parent (old build aside, new build in) followed by removing the old one, so
``DIR`` is at every moment either the complete old build or the complete new one (bar the instant between the two
renames); a failure between them puts the old build back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import OptionError

MARKER = ".rtlgen-build.json"
DERIVED = ("sim_build", "synth", "timing", "report.png")
#: the derived folders a replaced build hands to the new one: yosys results keyed by each module's Verilog and script
#: (``rtlgen report --synth-per-module`` / ``--timing``), valid whatever else changed
CARRIED = ("synth", "timing")
_KIND = "rtlgen build folder"


def _listing(folder: Path) -> list[str]:
    """Every file and folder below ``folder`` (POSIX relative paths, folders with a trailing '/'), sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [f"{(rel / d).as_posix()}/" for d in dirs]
        out += [(rel / f).as_posix() for f in files]
    return sorted(p[2:] if p.startswith("./") else p for p in out)


def write_marker(folder: Path, **info) -> None:
    """Record, as the last step of a build, every entry written into ``folder`` (the marker itself included)."""
    entries = _listing(folder) + [MARKER]
    (Path(folder) / MARKER).write_text(json.dumps({"kind": _KIND, **info, "entries": sorted(entries)}, indent=1))


def read_marker(folder: Path) -> dict | None:
    """The marker of an rtlgen build folder, or None if ``folder`` is not one."""
    try:
        d = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("kind") != _KIND or not isinstance(d.get("entries"), list):
        return None
    return d


def foreign_entries(folder: Path) -> list[str]:
    """What ``folder`` holds that no rtlgen command wrote (empty for an untouched rtlgen build)."""
    mark = read_marker(folder)
    if mark is None:
        return _listing(folder)
    known = set(mark["entries"])
    return [p for p in _listing(folder)
            if p not in known and p.split("/", 1)[0] not in DERIVED and p.rstrip("/") not in DERIVED]


def check_out_dir(out_dir) -> Path:
    """Validate ``--out`` before any work; returns the absolute path. Raises :class:`OptionError` (one line)."""
    given = str(out_dir)
    out = Path(os.path.abspath(os.path.expanduser(given)))
    real = Path(os.path.realpath(out))
    cwd = Path(os.path.realpath(os.getcwd()))
    home = Path(os.path.realpath(os.path.expanduser("~")))
    if real == Path(real.anchor):
        raise OptionError(f"--out: refusing {given!r}: it is the root folder")
    if real == home:
        raise OptionError(f"--out: refusing {given!r}: it is your home folder")
    if real == cwd or real in cwd.parents:
        raise OptionError(f"--out: refusing {given!r}: it is the current folder or a folder above it; name a new "
                          "sub-folder, e.g. --out build")
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out: {given!r} is an existing file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if read_marker(out) is None:
            raise OptionError(f"--out: refusing to replace {given!r}: it is not empty and is not an rtlgen build "
                              f"(no {MARKER}); choose a new or empty folder")
        foreign = foreign_entries(out)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise OptionError(f"--out: refusing to replace the rtlgen build {given!r}: it holds {foreign[0]!r}{more}, "
                              "which rtlgen did not write; move it away or choose another folder")
    parent = out.parent
    for anc in [parent, *parent.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise OptionError(f"--out: {str(anc)!r} is a file, not a folder")
            break
    return out


def prepare_parent(out: Path) -> Path:
    """Create ``out``'s parent if needed and return a fresh temporary folder beside ``out``."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"--out: cannot create {str(parent)!r} ({e.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise OptionError(f"--out: {str(parent)!r} is not writable")
    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise OptionError(f"--out: cannot write in {str(parent)!r} ({e.strerror})") from None


def install(tmp: Path, out: Path) -> None:
    """Move the finished build ``tmp`` to ``out``, replacing an earlier rtlgen build or an empty folder there.

    The contract is checked again here (the folder may have changed while the build ran)."""
    check_out_dir(out)
    if not out.exists():
        os.replace(tmp, out)
        return
    if not any(out.iterdir()):
        os.rmdir(out)  # empty: nothing of anyone's is lost
        os.replace(tmp, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(aside)
    os.replace(out, aside)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(aside, out)
        raise
    for cache in CARRIED:  # content-keyed caches: a module whose Verilog did not change is not synthesized again
        if (aside / cache).is_dir() and not (out / cache).exists():
            try:
                os.replace(aside / cache, out / cache)
            except OSError:
                pass
    shutil.rmtree(aside, ignore_errors=True)
