"""Resource estimate of a built design with Debian's yosys (``synth_xilinx -family xcup``, UltraScale+).

:func:`synthesize` runs ``read_verilog DIR/rtl/rtlgen_top.v; synth_xilinx -family xcup -top rtlgen_top -flatten
-noiopad [-uram]; stat -json`` and maps the cell counts to the figures Vivado reports: LUT (LUT1..LUT6 plus the LUTs
of distributed RAM and shift registers), FF, DSP48E2, BRAM (RAMB18E2, RAMB36E2, and 36 Kb equivalents = RAMB36 +
RAMB18 / 2) and URAM288, checked against the board's capacity from ``report.json``'s ``budget``.

Multipliers follow the plan: layers planned with LUT multipliers (``mult == "lut"``) are generated with
:func:`rtlgen.cores.arith.lut_mul` (shift-and-add, no ``*`` operator), so neither yosys nor Vivado infers DSP48E2s
there; for Verilog of older rtlgen versions any ``$mul`` left in those modules is also kept out of DSPs
(``honor_plan=False`` synthesizes the Verilog as is).

Three steps make yosys' figures closer to what Vivado builds from the same Verilog (all measured, see the constants):
``maccmap -unmap`` (adder trees as carry chains instead of yosys' LUT-only compressor mapping), ``proc -norom``
(rtlgen's LUT-stored tables stay LUTs as the plan says instead of becoming block RAM) and, after ``synth_xilinx``,
``opt_merge -share_all`` (identical cells on the same nets merged: ABC can duplicate a clock-enable LUT per FF).

Results are cached in ``DIR/synth/`` keyed by the Verilog and the script, so a second ``rtlgen report --synth`` is
instant. ``stop`` (``-run :LABEL``) ends synthesis early: ``map_ffram`` is the last label before LUT mapping, so DSP
and block-RAM counts are final there while LUT and FF counts are not (reported as ``None``).

yosys is not ABC-parallel and whole networks take minutes (see ``timeout``); ``per_module=True``
(``rtlgen report --synth --synth-per-module``) synthesizes each layer out of context instead, for designs where the
flat run takes hours. Nothing here claims timing closure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..errors import OptionError, RtlgenError, YosysMissing

YOSYS_HINT = "install it: apt-get install yosys"

#: LUTs used by each distributed-RAM / shift-register primitive (UltraScale+ SLICEM)
LUTRAM_LUTS = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE")


def find_yosys() -> str | None:
    """Debian's yosys: ``$RTLGEN_YOSYS``, else ``yosys`` on PATH, else ``/usr/bin/yosys``."""
    env = os.environ.get("RTLGEN_YOSYS")
    if env:
        return env if Path(env).exists() else None
    p = shutil.which("yosys")
    if p:
        return p
    return "/usr/bin/yosys" if Path("/usr/bin/yosys").exists() else None


#: ROMs marked ``ram_style = "distributed"`` (rtlgen's ``storage=lut`` weight/requant ROMs): yosys 0.23 has no
#: distributed-ROM mapping (its LUTRAM cells need a write port) and stops with "no valid mapping found for memory";
#: Vivado builds such ROMs from LUTs, which is what yosys' "logic" style does.
DISTRIBUTED_ROMS = "r:WR_PORTS=0 a:ram_style=distributed %i"

#: yosys 0.23's ``alumacc`` merges every adder tree (``a + b + c + ...``, the MAC arrays' partial sums) into one
#: ``$macc`` cell, and ``maccmap`` then builds it from LUT-only compressor logic (LUT6 + MUXF7/8/9), about 4x the LUTs
#: of the carry-chain adders Vivado builds for the same Verilog (measured: a 16-input 17-bit sum, 1,215 LUTs vs 283
#: LUTs + 90 CARRY4). ``maccmap -unmap`` after the coarse step turns the ``$macc`` cells back into ``$add``/``$mul``
#: cells, which the fine step maps to CARRY chains like Vivado does; DSP inference has already happened by then.
UNMAP_MACC = "maccmap -unmap"

#: rtlgen's ``storage=lut`` weight and requant tables are case statements (``cores.arith.logic_rom``, a register
#: marked ``rom_style = "distributed"`` for Vivado); yosys' ``proc_rom`` would turn a large one into a memory and map
#: it to block RAM against the plan, so the processes are converted with ``proc -norom`` before ``synth_xilinx``.
NO_ROM_INFERENCE = "proc -norom"

#: Run after ``synth_xilinx``: cells of the same type and parameters driven by the same nets are merged. yosys' ABC
#: step can emit one private copy of a shared clock-enable function per flip-flop (measured on an och_par=2 engine
#: with 16 output-channel groups: 2,848 identical LUT3s, each driving one FDRE's CE, 6,202 LUT instead of 3,340),
#: and ``synth_xilinx`` runs no ``opt_merge`` after it. Vivado's synthesis shares such logic and, by default, merges
#: equivalent registers too (``-keep_equivalent_registers`` is off), so the estimate does the same.
MERGE_DUPLICATES = "opt_merge -share_all; opt_clean"


def lut_mult_modules(verilog_text: str, rep: dict, merged: dict | None = None, top: str = "rtlgen_top") -> list[str]:
    """Modules whose multipliers the plan puts in LUTs (``mult == "lut"`` layers), requant modules excluded (their
    ``acc x m`` products are DSPs in the planner's model). A loop-merged projection's ``proj_*`` modules live under
    the host layer's name (``manifest.json`` ``merged.loop_merged_projections``: host -> projection)."""
    lut = {L["name"] for L in rep.get("layers", []) if L.get("mult") == "lut" and L.get("op") in ("conv", "dense")}
    merged = merged or {}
    mods = []
    for m in re.findall(r"^module\s+([A-Za-z_][A-Za-z0-9_$]*)", verilog_text, re.M):
        if not m.startswith(top + "__"):
            continue
        parts = m[len(top) + 2 :].split("__")
        if any("requant" in p for p in parts):
            continue
        layer = parts[0]
        if any(p.startswith("proj") for p in parts[1:]) and layer in merged:
            layer = merged[layer]
        if layer in lut:
            mods.append(m)
    return mods


def script(verilog: Path, stat_json: Path, top: str = "rtlgen_top", uram: bool = False, stop: str | None = None,
           soft_mul_modules=(), blackboxes=()) -> str:
    """The yosys script. ``soft_mul_modules``: their ``$mul`` cells are kept out of DSP48E2s (yosys' own
    ``$__soft_mul`` mechanism, applied between its ``prepare`` and ``map_dsp`` steps; the cells are tagged before
    flattening so the module boundaries still tell which layer they belong to). ``blackboxes``: modules turned into
    black boxes (not synthesized, their instances left as cells), for the top's own logic in a per-module run."""
    opts = f"-family xcup -top {top} -flatten -noiopad" + (" -uram" if uram else "")
    s = f"read_verilog {verilog}; "
    if blackboxes:
        s += f"blackbox {' '.join(blackboxes)}; "
    s += f"{NO_ROM_INFERENCE}; "
    if soft_mul_modules:
        sel = " ".join(f"{m}/t:$mul" for m in soft_mul_modules)
        s += (f"setattr -set rtlgen_lut_mult 1 {sel}; synth_xilinx {opts} -run :map_dsp; "
              f"chtype -set $__soft_mul t:$mul a:rtlgen_lut_mult %i; synth_xilinx {opts} -run map_dsp:map_memory; ")
    else:
        s += f"synth_xilinx {opts} -run :map_memory; "
    return (s + f"{UNMAP_MACC}; setattr -set ram_style \"logic\" {DISTRIBUTED_ROMS}; "
            f"synth_xilinx {opts} -run map_memory:{stop or ''}; " + ("" if stop else f"{MERGE_DUPLICATES}; ") +
            f"tee -q -o {stat_json} stat -json")


def cell_counts(stat: dict, top: str = "rtlgen_top") -> dict[str, int]:
    """Cell type -> count from ``stat -json`` (the top module after flattening, else the design total)."""
    mods = stat.get("modules", {})
    m = mods.get(f"\\{top}") or mods.get(top) or stat.get("design") or {}
    cells = m.get("num_cells_by_type", {})
    if not cells and mods:  # not flattened: sum every module (each instantiated once in rtlgen's output)
        cells = {}
        for mm in mods.values():
            for k, v in mm.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    return {k.lstrip("\\"): int(v) for k, v in cells.items()}


def summarize(cells: dict[str, int], budget: dict, complete: bool = True) -> dict:
    lut_logic = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    lutram = sum(v * LUTRAM_LUTS[k] for k, v in cells.items() if k in LUTRAM_LUTS)
    ff = sum(cells.get(k, 0) for k in FF_CELLS)
    dsp = cells.get("DSP48E2", 0)
    b18, b36 = cells.get("RAMB18E2", 0), cells.get("RAMB36E2", 0)
    uram = cells.get("URAM288", 0)
    res = {
        "lut": lut_logic + lutram if complete else None,
        "lut_logic": lut_logic if complete else None,
        "lutram_luts": lutram if complete else None,
        "ff": ff if complete else None,
        "dsp48e2": dsp,
        "ramb18": b18,
        "ramb36": b36,
        "bram36_equiv": b36 + b18 / 2,
        "uram": uram,
    }
    cap = {"lut": budget.get("lut"), "ff": budget.get("ff"), "dsp48e2": budget.get("dsp"),
           "bram36_equiv": budget.get("bram36"), "uram": budget.get("uram")}
    over = [k for k, c in cap.items() if c is not None and res[k] is not None and res[k] > c]
    return {"resources": res, "capacity": cap, "over": over, "fits": not over if complete else (False if over else None),
            "complete": complete}


def synthesize(build_dir, timeout: float | None = 1800, stop: str | None = None, uram: bool | None = None,
               yosys: str | None = None, honor_plan: bool = True, per_module: bool = False, progress=None,
               jobs: int = 1) -> dict:
    """Synthesize ``build_dir/rtl/rtlgen_top.v``; returns ``{"resources", "capacity", "over", "fits", "complete",
    "seconds", "cached", "yosys", "script", "mode"}``. Raises :class:`YosysMissing` without yosys,
    :class:`RtlgenError` on a yosys failure or timeout.

    ``per_module``: out-of-context synthesis, like Vivado's OOC flow -- every child of ``rtlgen_top`` (a layer, a FIFO,
    a lane converter) on its own (:func:`synthesize_layers`, cached per module, ``timeout`` per module), plus the
    top's own logic with the children as black boxes; the resources are the sum (``"modules"`` lists each one).
    yosys' run time grows faster than the design (a whole KV260 ResNet8 runs over an hour flat), and a run cut short
    keeps the modules already done. No optimisation crosses a module boundary, which costs little here: the
    children only meet through streams. ``jobs``: yosys runs at once in a per-module run."""
    if jobs > 1 and not per_module:
        raise OptionError("--synth-jobs needs --synth-per-module (a flat run is one yosys process)")
    if per_module:
        if stop:
            raise OptionError("--synth-stop and --synth-per-module cannot be combined")
        return _synthesize_per_module(build_dir, timeout, yosys, honor_plan, progress, jobs)
    d, src, yosys, rep, soft, _ = _context(build_dir, yosys, honor_plan)
    if uram is None:
        uram = uses_uram(rep)
    out = d / "synth"
    out.mkdir(exist_ok=True)
    stat_json = out / ("stat.json" if not stop else f"stat_{stop}.json")
    scr = script(src, stat_json, uram=uram, stop=stop, soft_mul_modules=soft)
    cache = out / ("result.json" if not stop else f"result_{stop}.json")
    log = out / ("yosys.log" if not stop else f"yosys_{stop}.log")
    r = _run_cached(yosys, src, scr, stat_json, cache, log, timeout, "rtlgen_top", version=True)
    return summarize(r["cells"], rep.get("budget", {}), complete=not stop) | r | {"script": scr, "lut_mult_modules": soft,
                                                                                 "mode": "flat"}


def _synthesize_per_module(build_dir, timeout, yosys, honor_plan, progress, jobs=1) -> dict:
    ctx = _context(build_dir, yosys, honor_plan)
    d, src, yosys, rep, soft, _ = ctx
    layers = _synthesize_children(ctx, timeout, None, progress, jobs)
    out = d / "synth" / "layers"
    stat_json = out / "rtlgen_top.glue.stat.json"
    scr = script(src, stat_json, uram=uses_uram(rep), blackboxes=list(layers))
    glue = _run_cached(yosys, src, scr, stat_json, out / "rtlgen_top.glue.json", out / "rtlgen_top.glue.log", timeout,
                       "rtlgen_top", version=True)
    cells: dict[str, int] = {}
    for c in [glue["cells"]] + [r["cells"] for r in layers.values()]:
        for k, v in c.items():
            if k not in layers:  # the black-box instances themselves
                cells[k] = cells.get(k, 0) + v
    mods = {m: r["resources"] for m, r in layers.items()}
    mods["rtlgen_top (glue)"] = summarize(glue["cells"], {})["resources"]
    return summarize(cells, rep.get("budget", {})) | {
        "cells": cells, "seconds": round(glue["seconds"] + sum(r["seconds"] for r in layers.values()), 1),
        "cached": glue["cached"] and all(r["cached"] for r in layers.values()), "yosys": glue["yosys"],
        "script": scr + "  (top glue; each child: the same script with the child as top)", "lut_mult_modules": soft,
        "mode": "per-module", "modules": mods}


def _context(build_dir, yosys: str | None, honor_plan: bool):
    """(build folder, its rtlgen_top.v, the yosys binary, report.json, modules of LUT-mult layers, the Verilog text)
    or a clear error."""
    d = Path(build_dir).resolve()
    src = d / "rtl" / "rtlgen_top.v"
    if not (d / "report.json").exists():
        raise OptionError(f"{str(d)!r} is not an rtlgen build folder (no report.json)")
    if not src.exists():
        raise OptionError(f"build folder {str(d)!r} has no rtl/rtlgen_top.v (built with --no-rtl?): --synth needs the RTL")
    yosys = yosys or find_yosys()
    if not yosys:
        raise YosysMissing(f"yosys not found (needed by --synth): {YOSYS_HINT}")
    rep = json.loads((d / "report.json").read_text())
    text = src.read_text(errors="replace")
    soft = []
    if honor_plan:
        man_f = d / "rtl" / "manifest.json"
        merged = json.loads(man_f.read_text()).get("merged", {}).get("loop_merged_projections", {}) if man_f.exists() else {}
        soft = lut_mult_modules(text, rep, merged)
    return d, src, yosys, rep, soft, text


def uses_uram(rep: dict) -> bool:
    return any(L.get("storage") == "uram" for L in rep.get("layers", []))


def _run_cached(yosys: str, src: Path, scr: str, stat_json: Path, cache: Path, log: Path, timeout, top: str,
                version: bool = False, run=None) -> dict:
    """Run ``scr`` unless ``cache`` holds the result for this Verilog and script: ``{"cells", "seconds", "cached",
    "yosys"}`` (the yosys version string when ``version``). ``run = (script, path, text)``: ``text`` is a part of
    ``src`` (one module and its descendants); it is keyed by its own text (the whole file's key is accepted too) and,
    on a cache miss, written to ``path`` and synthesized with that script instead."""
    h = hashlib.sha256(src.read_bytes())
    h.update(scr.encode())
    keys = [h.hexdigest()]
    if run is not None:  # a part of src: keyed by the part's own text, so that a change elsewhere keeps it cached
        hp = hashlib.sha256(run[2].encode())
        hp.update(run[0].encode())
        keys.insert(0, hp.hexdigest())
    key = keys[0]
    if cache.exists():
        try:
            c = json.loads(cache.read_text())
            if c.get("key") in keys:
                if c["key"] != key:  # found under the whole file's key: keep it under the part's own key too
                    cache.write_text(json.dumps(c | {"key": key}, indent=1))
                return {"cells": c["cells"], "seconds": c["seconds"], "cached": True, "yosys": c.get("yosys")}
        except (json.JSONDecodeError, KeyError):
            pass
    what = "" if top == "rtlgen_top" else f" on {top}"
    if run is not None:
        scr, part, body = run
        part.write_text(body)
    t = time.perf_counter()
    try:
        r = subprocess.run([yosys, "-q", "-l", str(log), "-p", scr], capture_output=True, text=True, timeout=timeout,
                           cwd=log.parent)
    except subprocess.TimeoutExpired:
        raise RtlgenError(f"yosys did not finish{what} within {timeout:g} s (raise --synth-timeout; log: {log})") from None
    except OSError as e:
        raise YosysMissing(f"cannot run yosys at {yosys} ({e.strerror}): {YOSYS_HINT}") from None
    secs = round(time.perf_counter() - t, 1)
    if run is not None:
        part.unlink(missing_ok=True)
    if r.returncode != 0 or not stat_json.exists():
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise RtlgenError(f"yosys failed{what} (exit {r.returncode}, log {log}): {msg[-1] if msg else 'no output'}")
    cells = cell_counts(json.loads(stat_json.read_text()), top=top)
    ver = None
    if version:
        try:
            ver = subprocess.run([yosys, "-V"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    cache.write_text(json.dumps({"key": key, "cells": cells, "seconds": secs, "yosys": ver}, indent=1))
    return {"cells": cells, "seconds": secs, "cached": False, "yosys": ver}


def layer_modules(verilog_text: str, top: str = "rtlgen_top") -> list[str]:
    """The direct children of ``top`` (``top__<name>``: one per layer plus its FIFOs and lane adapters)."""
    return [m for m in re.findall(r"^module\s+([A-Za-z_][A-Za-z0-9_$]*)", verilog_text, re.M)
            if m.startswith(top + "__") and "__" not in m[len(top) + 2 :]]


def synthesize_layers(build_dir, timeout: float | None = 3600, yosys: str | None = None, honor_plan: bool = True,
                      modules: list[str] | None = None, progress=None, jobs: int = 1) -> dict:
    """Synthesize every child module of ``rtlgen_top`` on its own (same script as :func:`synthesize`, with the
    child as top): ``{module: {"cells", "resources", "seconds", "cached"}}``, cached per module in
    ``DIR/synth/layers/``. The per-layer figures calibrate the planner's cost model (``tools/calibrate.py``); their
    sum differs from the whole design only by the top's glue and cross-module optimisation."""
    return _synthesize_children(_context(build_dir, yosys, honor_plan), timeout, modules, progress, jobs)


def _synthesize_children(ctx, timeout, modules, progress, jobs=1) -> dict:
    """Every child (or ``modules``) on its own, ``jobs`` yosys processes at once; results in the children's order."""
    d, src, yosys, rep, soft, text = ctx
    uram = uses_uram(rep)
    out = d / "synth" / "layers"
    out.mkdir(parents=True, exist_ok=True)
    blocks = module_blocks(text)
    names = list(modules or layer_modules(text))

    def one(m):
        stat_json = out / f"{m}.stat.json"
        mine = [s for s in soft if s == m or s.startswith(m + "__")]
        scr = script(src, stat_json, top=m, uram=uram, soft_mul_modules=mine)
        # yosys reads (and runs proc on) every module of the file before the hierarchy is pruned to the top: give it
        # only the child and what it instantiates (``scr`` on the whole file gives the same cells: its key, that of
        # caches written before, is still accepted)
        body = "".join(blocks[k] for k in sub_hierarchy(blocks, m))
        # the timing estimate's netlist of the same Verilog and script: its cells, no second run
        cells = cached_cells(d / "timing", body, m, m, mine, uram)
        if cells is not None:
            res = {"cells": cells, "resources": summarize(cells, {})["resources"], "seconds": 0.0, "cached": True}
            if progress:
                progress(m, res)
            return res
        part = out / f"{m}.v"
        run_scr = script(part, stat_json, top=m, uram=uram, soft_mul_modules=mine)
        r = _run_cached(yosys, src, scr, stat_json, out / f"{m}.json", out / f"{m}.log", timeout, m,
                        run=(run_scr, part, body))
        res = {"cells": r["cells"], "resources": summarize(r["cells"], {})["resources"], "seconds": r["seconds"],
               "cached": r["cached"]}
        if progress:
            progress(m, res)
        return res

    if jobs <= 1:
        return {m: one(m) for m in names}
    from concurrent.futures import ThreadPoolExecutor  # each job waits on its own yosys process

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(one, names))
    return dict(zip(names, done))


_MODULE = re.compile(r"^module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.M)


def module_blocks(verilog_text: str) -> dict[str, str]:
    """Module name -> its text (the attribute lines in front of ``module`` through ``endmodule``), for rtlgen's
    Verilog (one module per block, as Amaranth writes it)."""
    out = {}
    starts = [mt.start() for mt in _MODULE.finditer(verilog_text)]
    for k, st in enumerate(starts):
        # attributes ``(* ... *)`` on the lines just before ``module`` belong to it
        b = st
        while True:
            prev = verilog_text.rfind("\n", 0, b - 1) + 1
            if b > 0 and verilog_text[prev:b].lstrip().startswith("(*"):
                b = prev
            else:
                break
        end = verilog_text.find("endmodule", st)
        end = len(verilog_text) if end < 0 else end + len("endmodule")
        name = _MODULE.match(verilog_text, st).group(1)
        out[name] = verilog_text[b:end] + "\n"
    return out


def sub_hierarchy(blocks: dict[str, str], top: str) -> list[str]:
    """``top`` and every module it instantiates, directly or not (file order)."""
    seen, todo = {top}, [top]
    while todo:
        body = blocks[todo.pop()]
        body = body[body.find("module"):]
        for name in re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_$]*)\s+[A-Za-z_\\][^\s(]*\s*\(", body, re.M):
            if name in blocks and name not in seen:
                seen.add(name)
                todo.append(name)
    return [m for m in blocks if m in seen]


# ---- the timing estimate's netlists (rtlgen.verify.timing writes them; a per-module run reuses their cells) ----

def netlist_script(verilog: str, top: str, netlist: str, stat: str, soft_mul_modules=(), uram: bool = False) -> str:
    """The timing estimate's yosys script (:mod:`rtlgen.verify.timing`): :func:`script` (same flags and fix-ups) with
    ``write_json`` of the mapped netlist appended."""
    return (script(Path(verilog), Path(stat), top=top, uram=uram, soft_mul_modules=soft_mul_modules)
            + f"; write_json {netlist}")


def netlist_key(text: str, top: str, stem: str, soft=(), uram: bool = False) -> str:
    """The cache key of a module's netlist (its Verilog and the script): ``DIR/timing/<stem>.netlist.key``."""
    return stable_key("netlist", text, netlist_script(f"{stem}.v", top, f"{stem}.netlist.json", f"{stem}.stat.json", soft, uram))


def cached_cells(work: Path, text: str, top: str, stem: str, soft=(), uram: bool = False) -> dict | None:
    """The yosys cell counts of a module whose netlist the timing estimate already made with the same Verilog and
    script (``rtlgen report --synth-per-module`` takes them instead of running yosys again), else None."""
    keyf, stat = work / f"{stem}.netlist.key", work / f"{stem}.stat.json"
    try:
        if keyf.read_text().strip() != netlist_key(text, top, stem, soft, uram):
            return None
        return cell_counts(json.loads(stat.read_text()), top=top)
    except (OSError, json.JSONDecodeError, KeyError):
        return None


def stable_key(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()
