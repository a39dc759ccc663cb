"""Checks of the generated Vivado Tcl without Vivado: ``tclsh`` runs each script with every Vivado command stubbed.

A child interpreter executes the script for real (so its Tcl is parsed and every executed branch runs) with:

* ``unknown`` logging and returning ``""`` for every Vivado command it does not know (``create_bd_cell``...);
* a few stubs that answer like Vivado would where the script uses the answer: ``get_property PROGRESS`` -> 100%,
  ``get_bd_pins``/``get_bd_intf_pins``/``create_bd_cell``... -> the object's path,
  ``make_wrapper`` -> a wrapper path, ``ipx::get_ports`` -> the ports of ``module rtlgen_axi_top`` parsed from the
  Verilog (so the script's own "packaged ports == expected ports" check runs against the real Verilog), optional
  board parts (``get_board_parts``) to run the board-preset branch too;
* ``file copy/delete/mkdir/rename`` only logged, ``exec``/``open``/``cd`` refused: nothing is written.

:func:`check_design_dir` returns a list of problems for a build folder (empty when everything is fine).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SEP = "\x1f"

_HARNESS = r"""
set script [lindex $argv 0]
set ports_file [lindex $argv 1]
set board_parts [lindex $argv 2]
set script_args [lrange $argv 3 end]
set fh [open $ports_file r]
set verilog_ports [split [string trim [read $fh]] "\n"]
close $fh
interp create child
child eval [list set ::__verilog_ports $verilog_ports]
child eval [list set ::__board_parts $board_parts]
child eval [list set argv $script_args]
child eval [list set argc [llength $script_args]]
child eval {
    set ::__log {}
    proc __rec {args} { lappend ::__log $args }
    proc unknown {args} { __rec {*}$args; return "" }
    proc get_property {args} {
        __rec get_property {*}$args
        switch -- [lindex $args 0] { PROGRESS { return "100%" } SLACK { return 0.5 } default { return "" } }
    }
    proc get_board_parts {args} {
        __rec get_board_parts {*}$args
        set pat [lindex $args end]
        if {$::__board_parts && [string match $pat "xilinx.com:kv260_som:part0:1.3"]} { return "xilinx.com:kv260_som:part0:1.3" }
        if {$::__board_parts && [string match $pat "xilinx.com:kv260_carrier:part0:1.3"]} { return "xilinx.com:kv260_carrier:part0:1.3" }
        if {$::__board_parts && [string match $pat "avnet.com:ultra96v2:part0:1.2"]} { return "avnet.com:ultra96v2:part0:1.2" }
        return ""
    }
    proc __named {cmd args} { __rec $cmd {*}$args; return [lindex $args end] }
    foreach c {get_bd_intf_pins get_bd_pins get_bd_cells get_runs create_bd_cell} { interp alias {} $c {} __named $c }
    proc make_wrapper {args} { __rec make_wrapper {*}$args; return "/stub/rtlgen_bd_wrapper.v" }
    proc get_files {args} { __rec get_files {*}$args; return "/stub/[lindex $args end]" }
    namespace eval ipx {}
    proc ipx::current_core {args} { __rec ipx::current_core {*}$args; return "stub_core" }
    proc ipx::get_ports {args} {
        __rec ipx::get_ports {*}$args
        set names {}
        foreach p $::__verilog_ports { lappend names [lindex $p 0] }
        if {[lindex $args 0] eq "-of_objects"} { return $names }
        set n [lindex $args 0]
        if {[lsearch -exact $names $n] >= 0} { return [list $n] }
        return ""
    }
    proc ipx::get_bus_interfaces {args} {
        __rec ipx::get_bus_interfaces {*}$args
        if {[lindex $args 0] eq "-of_objects"} { return {s_axis m_axis s_axi_ctrl aclk aresetn} }
        return [list [lindex $args 0]]
    }
    rename file __real_file
    proc file {sub args} {
        if {$sub in {copy delete mkdir rename link attributes}} { __rec file $sub {*}$args; return "" }
        return [__real_file $sub {*}$args]
    }
    rename source __real_source
    proc source {f} { __rec source $f; uplevel 1 [list __real_source $f] }
    foreach c {exec open cd socket} { rename $c {} ; proc $c {args} "error \"tclcheck: $c is not allowed\"" }
}
set rc [catch {child eval [list source $script]} err]
foreach entry [child eval {set ::__log}] {
    set out {}
    foreach a $entry { lappend out [string map [list "\n" "\\n" "\x1f" " "] $a] }
    puts "CMD [join $out \x1f]"
}
foreach v {rtlgen_ports rtlgen_ip_files rtlgen_xdc_files rtlgen_interfaces rtlgen_part} {
    if {[child eval [list info exists ::$v]]} {
        set out {}
        foreach a [child eval [list set ::$v]] { lappend out [string map [list "\n" " "] $a] }
        puts "VAR $v [join $out \x1f]"
    }
}
if {$rc} { puts "ERROR [string map [list "\n" " | "] $err]" }
"""


def tclsh() -> str | None:
    return shutil.which("tclsh") or shutil.which("tclsh8.6")


def verilog_ports(path, module: str = "rtlgen_axi_top") -> list[tuple[str, str, int]]:
    """``(name, in|out, width)`` of ``module``'s ports in a plain (non-ANSI) Verilog file, header order."""
    text = Path(path).read_text()
    m = re.search(rf"^module {re.escape(module)}\s*\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    if not m:
        raise ValueError(f"module {module} not found in {path}")
    names = [p.strip() for p in m.group(1).split(",") if p.strip()]
    body = m.group(2)
    out = []
    for n in names:
        d = re.search(rf"^\s*(input|output)\s*(?:\[(\d+):0\])?\s*{re.escape(n)}\s*;", body, re.M)
        if not d:
            raise ValueError(f"no direction for port {n}")
        out.append((n, "in" if d.group(1) == "input" else "out", int(d.group(2)) + 1 if d.group(2) else 1))
    return out


def is_complete(script) -> bool:
    """tclsh ``info complete`` on the whole file (braces, brackets and quotes balanced)."""
    r = subprocess.run([tclsh(), "-"], input=f"puts [info complete [read [open {{{script}}}]]]\n",
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() == "1"


def run_stubbed(script, ports, board_parts: bool = False, args=()) -> dict:
    """Run ``script`` under the stubs; returns ``{"log": [[cmd, args...]], "vars": {name: [elements]}, "error": str|None}``."""
    with tempfile.TemporaryDirectory() as tmp:
        pf = Path(tmp) / "ports.txt"
        pf.write_text("\n".join(f"{n} {d} {w}" for n, d, w in ports) + "\n")
        hf = Path(tmp) / "harness.tcl"
        hf.write_text(_HARNESS)
        r = subprocess.run([tclsh(), str(hf), str(Path(script).resolve()), str(pf), "1" if board_parts else "0", *args],
                           capture_output=True, text=True, timeout=120)
    res = {"log": [], "vars": {}, "error": None}
    if r.returncode != 0:
        res["error"] = f"tclsh exited {r.returncode}: {r.stderr.strip()[:500]}"
    for line in r.stdout.splitlines():
        if line.startswith("CMD "):
            res["log"].append(line[4:].split(SEP))
        elif line.startswith("VAR "):
            name, _, rest = line[4:].partition(" ")
            res["vars"][name] = rest.split(SEP) if rest else []
        elif line.startswith("ERROR "):
            res["error"] = line[6:]
    return res


def _read_paths(log) -> list[str]:
    """Files a script reads: ``source`` and the (non-option) arguments of ``add_files``/``read_*``/``import_files``."""
    paths = []
    for entry in log:
        cmd, args = entry[0], entry[1:]
        if cmd == "source":
            paths += args
        elif cmd in ("add_files", "read_verilog", "read_xdc", "import_files"):
            skip = False
            for a in args:
                if skip:
                    skip = False
                    continue
                if a == "-fileset":
                    skip = True
                    continue
                if a.startswith("-"):
                    continue
                paths += a.split()  # a Tcl list of paths (build paths have no spaces)
    return paths


def check_design_dir(design_dir) -> list[str]:
    """Problems with ``DIR/vivado/*.tcl`` and ``*.xdc`` (parsing, stubbed runs, file references, port list); ``[]`` = all good."""
    d = Path(design_dir).resolve()
    problems = []
    scripts = sorted((d / "vivado").glob("*.tcl")) + sorted((d / "vivado").glob("*.xdc"))  # XDC is Tcl too
    if not scripts:
        return [f"no Tcl scripts in {d / 'vivado'}"]
    vports = verilog_ports(d / "rtl" / "rtlgen_axi_top.v")
    for s in scripts:
        if not is_complete(s):
            problems.append(f"{s.name}: not a complete Tcl script (unbalanced braces/brackets/quotes)")
            continue
        runs = [run_stubbed(s, vports, False), run_stubbed(s, vports, True)]
        if s.name == "package_ip.tcl":
            runs.append(run_stubbed(s, vports, False, args=("xczu7ev-ffvc1156-2-e",)))
            if runs[-1]["vars"].get("rtlgen_part") != ["xczu7ev-ffvc1156-2-e"]:
                problems.append("package_ip.tcl: -tclargs <part> not honoured")
        for r in runs:
            if r["error"]:
                problems.append(f"{s.name}: {r['error']}")
                continue
            for p in _read_paths(r["log"]):
                pp = Path(p)
                if p.startswith("/stub/"):
                    continue
                if not pp.is_absolute() or d not in pp.resolve().parents:
                    problems.append(f"{s.name}: reads {p}, outside the build folder")
                elif not pp.exists():
                    problems.append(f"{s.name}: reads {p}, which does not exist")
            if "rtlgen_ports" in r["vars"]:
                tports = [tuple(e.split()) for e in r["vars"]["rtlgen_ports"]]
                tports = [(n, di, int(w)) for n, di, w in tports]
                if sorted(tports) != sorted(vports):
                    problems.append(f"{s.name}: rtlgen_ports {tports} != Verilog ports {vports}")
                for itf in r["vars"].get("rtlgen_interfaces", []):
                    ports = itf.split(" ", 3)[3].strip("{}").split()
                    missing = set(ports) - {n for n, _, _ in vports}
                    if missing:
                        problems.append(f"{s.name}: interface {itf.split()[0]} names unknown ports {sorted(missing)}")
    return problems
