"""Verilog text of an Amaranth component: ``amaranth.back.verilog`` with plain identifiers and no initial contents on
UltraRAM memories (the one path every Verilog file rtlgen writes goes through)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["verilog_text", "plain_identifiers", "write_verilog"]


def verilog_text(component, name: str) -> str:
    """Verilog for an Amaranth ``wiring.Component`` with top module ``name`` (identifiers made plain, see
    :func:`plain_identifiers`; no initial contents on UltraRAM memories, see :func:`rtlgen.cores.conv.strip_ultra_init`)."""
    from amaranth.back import verilog

    from rtlgen.cores.conv import strip_ultra_init

    return strip_ultra_init(plain_identifiers(verilog.convert(component, name=name, emit_src=False)))


_ESCAPED = re.compile(r"\\([^\s]+)\s")


def plain_identifiers(text: str) -> str:
    """Replace Verilog escaped identifiers (``\\rtlgen_top.conv0.engine``, ``\\o__ready$14``) by plain ones
    (``rtlgen_top__conv0__engine``, ``o__ready_14``): hierarchy dots become ``__``, other odd characters ``_``.
    Names stay stable (derived from the IR layer names) and the file reads well in any tool."""
    taken = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text))
    mapping: dict[str, str] = {}

    def plain(name: str) -> str:
        if name in mapping:
            return mapping[name]
        base = re.sub(r"[^A-Za-z0-9_]", "_", name.replace(".", "__"))
        if not re.match(r"[A-Za-z_]", base):
            base = "n_" + base
        cand, k = base, 1
        while cand in taken:
            cand = f"{base}_{k}"
            k += 1
        taken.add(cand)
        mapping[name] = cand
        return cand

    return _ESCAPED.sub(lambda m: plain(m.group(1)) + m.group(0)[-1], text)


def write_verilog(component, name: str, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog_text(component, name))
    return path
