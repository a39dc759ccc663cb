"""Graph optimizer: fold requantization chains into the layer that produces them, merge residual adds, report why not.

Exporters put several requantizations around one layer: Brevitas' QONNX export of a conv with an output quantizer and
a ``QuantReLU`` is ``Conv -> Quant(int8) -> Relu -> Quant(uint8)``, a quantized residual add is ``Add -> Quant ->
Relu -> Quant``. The importer turns each ``Quant`` after the first into a standalone :class:`~rtlgen.ir.Requantize`
layer (a core of its own in hardware). This pass folds them into the producer's one requantization **only where the
integer arithmetic allows it exactly**:

* the composite map ``R2(R1(v))`` of the producer's requant ``R1`` (``clamp(rshift_round(v*m1, sh1) + zp1)``) and a
  following requant ``R2`` is a monotone function of the producer's pre-rounding value ``v``; the candidate single
  requant has multiplier ``m1*m2``, shift ``sh1+sh2`` (reduced; a 24-bit multiplier when the product is wider), the
  second rounding mode and the clamp ``[R2(lo1), R2(hi1)]``;
* the candidate is accepted only if it equals the composite on **every** reachable value: the integers of the producer's
  input domain where ``R1`` does not saturate (both maps are constant and equal beyond: monotone, clamped), enumerated
  per channel (accumulator ranges from the weights, every (a, b) pair of an add, every window sum of an average pool,
  every code of a standalone requant);
* double rounding that changes a result (e.g. ``round(round(v/4)/2) != round(v/8)`` for ``v = 6``) is refused, with
  the first differing value in the reason.

A standalone add of two requantized branches merges into the conv producing one of them (the merged residual of
:class:`~rtlgen.ir.Conv`: per-branch multipliers before one rounding) only when that conv's own requantization is
lossless and never saturates on its reachable accumulator range; otherwise the add stays a core and the report says
why (the source model rounds the conv output before the add, so adding at the accumulator would change results).

Every decision is recorded in ``net.fusion_notes``; :func:`fusion_report` gives one line per layer (the ONNX nodes each
layer absorbed and why anything was not folded). Run from :mod:`rtlgen.frontend.importer` after pruning.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ..quant import MULT_BITS, fixed_point_multiplier, rshift_round

#: most integers enumerated per channel to prove a fold exact (a wider domain is refused, never assumed)
MAX_DOMAIN = 1 << 22


def _requant(v, m, sh, zp, lo, hi, mode):
    return np.clip(rshift_round(np.asarray(v, np.int64) * np.asarray(m, np.int64), sh, mode) + zp, lo, hi)


def golden_requant(r: ir.Requantize, codes) -> np.ndarray:
    """``r`` applied to integer codes (the golden model's rule for a standalone requant)."""
    q = r.out_q
    return _requant(np.asarray(codes, np.int64) - r.in_q.zero_point, r.m, r.sh, q.zero_point, q.lo, q.hi, r.rounding)


def _reduce(ms: list, sh: int):
    """Strip common factors of two from multipliers ``ms`` against the shift ``sh``."""
    ms = [int(x) for x in ms]
    while sh > 0 and all(x % 2 == 0 for x in ms):
        ms = [x // 2 for x in ms]
        sh -= 1
    return ms, sh


class _Unfoldable(Exception):
    pass


# ------------------------------------------------------------------------------------------------------------------
# the producers' requantizations as functions of one integer "pre" value per channel


def _channels(lay):
    """Per output channel: (v_values, m_list, sh, zp, lo, hi, mode) of the producer's requant, where the requant is
    ``clamp(rshift_round(v * m[k], sh) + zp, lo, hi)`` summed over the multiplier terms ``k`` (one term, or two for an
    add / merged residual: then ``v`` is a tuple of value arrays). Raises _Unfoldable with a reason."""
    if isinstance(lay, ir.Requantize):
        x = np.arange(lay.in_q.lo, lay.in_q.hi + 1, dtype=np.int64) - lay.in_q.zero_point
        return [((x,), [lay.m], lay.sh)]
    if isinstance(lay, ir.Add):
        a = np.arange(lay.a_q.lo, lay.a_q.hi + 1, dtype=np.int64) - lay.a_q.zero_point
        b = np.arange(lay.b_q.lo, lay.b_q.hi + 1, dtype=np.int64) - lay.b_q.zero_point
        A, B = np.meshgrid(a, b, indexing="ij")
        return [((A.ravel(), B.ravel()), [lay.ma, lay.mb], lay.sh)]
    if isinstance(lay, ir.Pool) and lay.requant is not None:
        K = lay.kernel[0] * lay.kernel[1] if not lay.is_global else lay.in_shape[0] * lay.in_shape[1]
        zp = lay.in_q.zero_point
        lo, hi = K * (lay.in_q.lo - zp), K * (lay.in_q.hi - zp)
        rq = lay.requant
        return [((_window(lo, hi, int(rq.m[0]), int(rq.sh[0]), rq, lay.out_q),), [int(rq.m[0])], int(rq.sh[0]))]
    if isinstance(lay, (ir.Conv, ir.Dense)) and lay.requant is not None:
        rq = lay.requant
        w = lay.weights.reshape(lay.weights.shape[0], -1)
        alo, ahi = ir._mac_range(w, lay.bias, lay.in_q, per_channel=True)
        res = isinstance(lay, ir.Conv) and lay.residual is not None
        # channels sharing (m, sh) share one check over the union of their ranges (a superset: still sound), so a
        # per-tensor requant is verified once, not once per channel
        spans, keys = {}, []
        for o in range(w.shape[0]):
            mo = int(rq.m[o] if rq.m.size > 1 else rq.m[0])
            so = int(rq.sh[o] if rq.sh.size > 1 else rq.sh[0])
            if res:  # the requant input v = acc*m + (skip - zp)*res_m: enumerate v itself (one term, m = 1)
                rm = int(lay.res_m[o] if lay.res_m.size > 1 else lay.res_m[0])
                r = sorted(((lay.res_q.lo - lay.res_zp) * rm, (lay.res_q.hi - lay.res_zp) * rm))
                key, lo, hi = (1, so, rm), int(alo[o]) * mo + r[0], int(ahi[o]) * mo + r[1]
            else:
                key, lo, hi = (mo, so), int(alo[o]), int(ahi[o])
            a, b = spans.get(key, (lo, hi))
            spans[key] = (min(a, lo), max(b, hi))
            keys.append(key)
        entries = {k: ((_window(lo, hi, k[0], k[1], rq, lay.out_q),), [k[0]], k[1]) for k, (lo, hi) in spans.items()}
        return [entries[k] for k in keys]
    raise _Unfoldable(f"{lay.name} ({lay.kind}) has no requantization to fold into")


def _window(vlo, vhi, m, sh, rq, q):
    """The integers of ``[vlo, vhi]`` where ``rshift_round(v*m, sh) + zp`` lies within one step of the clamp (plus a
    saturated point at each reachable end): beyond them the requant is constant."""
    zp = rq.zp_out
    a = ((q.lo - 2 - zp) << sh) // m - 1 if sh >= 0 else vlo
    b = -((-(q.hi + 2 - zp) << sh) // m) + 1 if sh >= 0 else vhi
    lo, hi = max(vlo, a), min(vhi, b)
    if hi - lo + 1 > MAX_DOMAIN:
        raise _Unfoldable(f"its requant input spans {hi - lo + 1:,} values per channel (more than {MAX_DOMAIN:,} to verify)")
    return np.arange(lo, hi + 1, dtype=np.int64)


def _params(lay):
    """(zp, lo, hi, rounding) of the producer's requant."""
    if isinstance(lay, ir.Requantize):
        return lay.out_q.zero_point, lay.out_q.lo, lay.out_q.hi, lay.rounding
    if isinstance(lay, ir.Add):
        return lay.zp_out, lay.out_q.lo, lay.out_q.hi, lay.rounding
    rq = getattr(lay, "requant", None)
    if rq is None:
        raise _Unfoldable(f"{lay.name} ({lay.kind}) has no requantization to fold into")
    return rq.zp_out, rq.lo, rq.hi, rq.rounding


def compose(prod, r: ir.Requantize):
    """The single requant equal to ``r`` after ``prod``'s requant on every reachable value, as
    ``(chans, lo, hi, out_shift, out_hi)`` (``chans``: per channel ``(ms, sh)``, one multiplier per term), or raise
    _Unfoldable with the reason.

    Two candidates: one rounding of the product ``m1*m2 / 2**(sh1+sh2)``; or, where ``r`` is an exact left shift by
    ``k`` (a finer output scale, e.g. int8 -> ReLU -> uint8 at half the scale), the producer's own rounding with the
    clamp narrowed and the result shifted left by ``k`` (:attr:`rtlgen.ir.Requant.out_shift`, conv and add producers
    with output zero point 0: wiring in hardware), saturated at the second clamp where shifted codes pass it
    (``out_hi``: one compare)."""
    if prod.out_q is None:
        raise _Unfoldable(f"{prod.name} outputs raw accumulators")
    zp1, lo1, hi1, mode1 = _params(prod)
    zp2, lo2, hi2, mode2 = r.out_q.zero_point, r.out_q.lo, r.out_q.hi, r.rounding
    if r.in_q.zero_point != zp1:
        raise _Unfoldable(f"zero points differ ({zp1} vs {r.in_q.zero_point})")
    R2 = lambda q: _requant(np.asarray(q) - zp1, r.m, r.sh, zp2, lo2, hi2, mode2)  # noqa: E731
    nlo, nhi = int(R2(lo1)), int(R2(hi1))
    k = int(r.m).bit_length() - 1
    shift_ok = (isinstance(prod, (ir.Conv, ir.Add)) and r.sh == 0 and r.m == 1 << k and k > 0 and zp2 == 0
                and (prod.out_shift if isinstance(prod, ir.Add) else prod.requant.out_shift) == 0)
    L, H = max(lo1 - zp1, -((-lo2) >> k)), hi1 - zp1
    out_hi = hi2 if (H << k) > hi2 else None  # shifted codes above the second clamp saturate there
    shift_ok = shift_ok and (out_hi is None or L >= 0)
    chans, tried, seen = [], {"one": None, "shift": None}, {}
    for entry in _channels(prod):
        vals, ms, sh1 = entry
        if id(entry) in seen:  # the same check as an earlier channel's (shared (m, sh) group)
            chans.append(seen[id(entry)])
            continue
        pre = sum(v * m for v, m in zip(vals, ms))
        want = R2(_requant(pre, 1, sh1, zp1, lo1, hi1, mode1))
        if tried["one"] != "fail":
            cand = _reduce([m * r.m for m in ms], sh1 + r.sh)
            if max(cand[0]).bit_length() > MULT_BITS and not _residual(prod):  # too wide: its 24-bit approximation
                mm, ss = fixed_point_multiplier(np.array([m * r.m / 2.0 ** (sh1 + r.sh) for m in ms]))
                s = int(ss.max())
                cand = _reduce([int(x) << (s - int(t)) for x, t in zip(mm, ss)], s)
            got = _requant(sum(v * m for v, m in zip(vals, cand[0])), 1, cand[1], zp2, nlo, nhi, mode2)
            bad = np.flatnonzero(got != want)
            if bad.size:
                tried["one"] = "fail"
                j = int(bad[0])
                v0 = int(pre[j]) if len(vals) == 1 else tuple(int(v[j]) for v in vals)
                why = f"not exact: double rounding (at input {v0}: {int(want[j])} through both, {int(got[j])} in one step)"
            else:
                tried["one"] = "ok"
        if shift_ok and tried["shift"] != "fail":
            got2 = np.clip(rshift_round(pre, sh1, mode1), L, H) << k
            if out_hi is not None:
                got2 = np.minimum(got2, out_hi)
            tried["shift"] = "ok" if np.array_equal(got2, want) else "fail"
        chans.append((ms, sh1, cand))
        seen[id(entry)] = chans[-1]
        if tried["one"] == "fail" and tried["shift"] != "ok" and not (shift_ok and tried["shift"] is None):
            break
    if tried["one"] == "ok":
        return [c[2] for c in chans], nlo, nhi, 0, None
    if tried["shift"] == "ok":
        return [(c[0], c[1]) for c in chans], L, H, k, out_hi
    raise _Unfoldable(why + (f"; nor as an output shift by {k}" if shift_ok else ""))


def _apply(prod, r: ir.Requantize, chans, nlo, nhi, out_shift=0, out_hi=None):
    q = r.out_q
    zq = q.zero_point
    top = ((nhi - zq) << out_shift) + zq
    out_q = ir.QType(q.scale, zq, q.signed, q.bits, ((nlo - zq) << out_shift) + zq, top if out_hi is None else min(top, out_hi))
    if isinstance(prod, ir.Add) and out_shift:  # same arithmetic, narrower clamp, then the shift
        prod.clamp, prod.out_shift, prod.out_hi = (nlo, nhi), out_shift, out_hi
        prod.zp_out = q.zero_point
        prod.relu = prod.relu or nlo >= q.zero_point
        prod.out_q = out_q
        prod.source_nodes = list(prod.source_nodes) + list(r.source_nodes)
        return
    mode = prod.requant.rounding if out_shift else r.rounding
    if isinstance(prod, ir.Requantize):
        (ms, sh), = chans
        prod.m, prod.sh, prod.rounding = int(ms[0]), int(sh), r.rounding
    elif isinstance(prod, ir.Add):
        (ms, sh), = chans
        prod.ma, prod.mb, prod.sh, prod.rounding, prod.zp_out = int(ms[0]), int(ms[1]), int(sh), r.rounding, q.zero_point
        prod.relu = prod.relu or nlo >= q.zero_point
    elif _residual(prod):  # chans[o] = ([f], sh'): v scales by f, both terms alike
        f = np.array([c[0][0] for c in chans], np.int64)
        sh = np.array([c[1] for c in chans], np.int64)
        rq = prod.requant
        m = np.broadcast_to(rq.m, f.shape) * f
        prod.res_m = np.broadcast_to(prod.res_m, f.shape) * f
        prod.requant = ir.Requant(m, sh, q.zero_point, nlo, nhi, mode, out_shift, out_hi)
        prod.relu = prod.relu or nlo >= q.zero_point
    else:
        m = np.array([c[0][0] for c in chans], np.int64)
        sh = np.array([c[1] for c in chans], np.int64)
        if np.all(m == m[0]) and np.all(sh == sh[0]) and prod.requant.m.size == 1:
            m, sh = m[:1], sh[:1]
        if out_shift:
            m, sh = prod.requant.m, prod.requant.sh
        prod.requant = ir.Requant(m, sh, q.zero_point, nlo, nhi, mode, out_shift, out_hi)
        if hasattr(prod, "relu"):
            prod.relu = prod.relu or nlo >= q.zero_point
    prod.out_q = out_q
    prod.source_nodes = list(prod.source_nodes) + list(r.source_nodes)


def _residual(lay) -> bool:
    return isinstance(lay, ir.Conv) and lay.residual is not None


def _rename(layers, old, new):
    for lay in layers:
        lay.inputs = [new if i == old else i for i in lay.inputs]
        if isinstance(lay, ir.Conv) and lay.residual == old:
            lay.residual = new


def fold_requants(layers, out_name, notes):
    """Fold every Requantize into its producer where exact; returns (layers, output name)."""
    changed, final = True, False
    while changed or not final:
        final = not changed  # one last sweep records why the remaining requants stay
        changed = False
        for r in layers:
            if not isinstance(r, ir.Requantize):
                continue
            prod = next((lay for lay in layers if lay.name == r.inputs[0]), None)
            if prod is None:
                continue
            cons = [lay for lay in layers if prod.name in lay.inputs]
            if len(cons) != 1 or prod.name == out_name:
                why = "its producer feeds other layers too" if len(cons) != 1 else "its producer is the network output"
                if final:
                    _note(notes, r.name, "kept", f"{r.name} ({'+'.join(_ops(r))}) not folded into {prod.name}: {why}")
                continue
            if isinstance(prod, ir.InputStage) and len(cons) == 1 and prod.name != out_name:
                # a requant of the input codes folds into the input table: always exact (a table of its results)
                prod.table = golden_requant(r, prod.table)
                prod.out_q = r.out_q
                prod.source_nodes = list(prod.source_nodes) + list(r.source_nodes)
                _note(notes, prod.name, "fused", f"{r.name} ({'+'.join(_ops(r))}) folded into the input table")
                layers = [lay for lay in layers if lay is not r]
                _rename(layers, r.name, prod.name)
                changed, final = True, False
                break
            try:
                chans, nlo, nhi, osh, ohi = compose(prod, r)
            except _Unfoldable as e:
                if final:
                    _note(notes, r.name, "kept", f"{r.name} ({'+'.join(_ops(r))}) not folded into {prod.name}: {e}")
                continue
            ratio = r.m / 2.0 ** r.sh
            how = (f"output shifted left by {osh} after its rounding" + (f", saturating at {ohi}" if ohi is not None else "")
                   if osh else "one rounding")
            _note(notes, prod.name, "fused", f"{r.name} ({'+'.join(_ops(r))}: x{ratio:g}) folded into {prod.name}'s "
                  f"requant ({how}, clamp [{nlo}, {nhi}]; exact on every reachable value)")
            notes[:] = [n for n in notes if n["layer"] != r.name]
            _apply(prod, r, chans, nlo, nhi, osh, ohi)
            layers = [lay for lay in layers if lay is not r]
            _rename(layers, r.name, prod.name)
            if out_name == r.name:
                out_name = prod.name
            changed, final = True, False
            break
    return layers, out_name


def merge_adds(layers, out_name, notes):
    """Merge a standalone add into the conv producing one branch, where exact (see the module docstring)."""
    for add in [lay for lay in layers if isinstance(lay, ir.Add)]:
        reasons = []
        for side in (0, 1):
            conv = next(lay for lay in layers if lay.name == add.inputs[side])
            other = add.inputs[1 - side]
            if not isinstance(conv, ir.Conv):
                reasons.append(f"{conv.name} is a {conv.kind}, not a conv")
                continue
            why = _merge_blocker(conv, add, layers, out_name)
            if why:
                reasons.append(why)
                continue
            rq = conv.requant
            k = rq.m >> rq.sh  # lossless: the conv output is acc * k + zp exactly
            ma, mb = (add.ma, add.mb) if side == 0 else (add.mb, add.ma)
            oq = add.b_q if side == 0 else add.a_q
            conv.requant = ir.Requant(k * ma, np.full_like(rq.sh, add.sh), add.zp_out, add.out_q.lo, add.out_q.hi, add.rounding)
            conv.residual, conv.res_m, conv.res_zp, conv.res_q = other, np.full(conv.weights.shape[0], mb, np.int64), oq.zero_point, oq
            conv.inputs = [conv.inputs[0], other]
            conv.out_q, conv.relu = add.out_q, add.relu
            conv.source_nodes = list(conv.source_nodes) + list(add.source_nodes)
            layers = [lay for lay in layers if lay is not add]
            _rename(layers, add.name, conv.name)
            out_name = conv.name if out_name == add.name else out_name
            _note(notes, conv.name, "fused", f"{add.name} merged into {conv.name} (accumulator-level residual, exact: "
                  f"{conv.name}'s own requant is lossless and never saturates)")
            break
        else:
            _note(notes, add.name, "kept", f"{add.name} not merged into a conv: " + "; ".join(reasons))
    return layers, out_name


def _merge_blocker(conv, add, layers, out_name):
    if conv.residual is not None or conv.group != 1:
        return f"{conv.name} already has a residual" if conv.residual is not None else f"{conv.name} is grouped"
    if len([lay for lay in layers if conv.name in lay.inputs]) != 1 or conv.name == out_name:
        return f"{conv.name} feeds other layers too"
    rq = conv.requant
    if np.any(rq.m % (np.int64(1) << rq.sh)):
        return (f"the source model rounds {conv.name}'s output (x{float(rq.m.ravel()[0]) / 2.0 ** int(rq.sh.ravel()[0]):g}) "
                "before the add, so adding at the accumulator would change results")
    lo, hi = ir._mac_range(conv.weights.reshape(conv.weights.shape[0], -1), conv.bias, conv.in_q, per_channel=True)
    k = rq.m >> rq.sh
    if np.any(lo * k + rq.zp_out < rq.lo) or np.any(hi * k + rq.zp_out > rq.hi):
        return f"{conv.name}'s output clamp can saturate before the add"
    return None


def _ops(lay):
    return [s.split("/")[-1] or s for s in lay.source_nodes] or [lay.kind]


def _note(notes, layer, action, text):
    notes.append({"layer": layer, "action": action, "text": text})


def optimize(layers, out_name):
    """Run the passes; returns (layers, output name, notes)."""
    notes: list = []
    layers, out_name = fold_requants(layers, out_name, notes)
    layers, out_name = merge_adds(layers, out_name, notes)
    return layers, out_name, notes


def fusion_report(net) -> list[dict]:
    """One entry per layer: the source nodes it absorbed and the optimizer's notes about it."""
    notes = getattr(net, "fusion_notes", [])
    rows = []
    for lay in net.layers:
        if lay.kind == "input":
            continue
        mine = [n["text"] for n in notes if n["layer"] == lay.name]
        if isinstance(lay, ir.Conv) and lay.residual is not None and not any("merged" in t for t in mine):
            mine.insert(0, f"residual add ({lay.residual} + this conv) merged at the accumulator: the model adds the "
                           "skip to the un-requantized conv output, one rounding")
        rows.append({"layer": lay.name, "op": lay.kind, "source_nodes": list(lay.source_nodes), "notes": mine,
                     "standalone_requant": lay.kind in ("requant", "add")})
    return rows


def fusion_lines(rows) -> list[str]:
    """The fusion report as text: a line per layer (``layer (op) <- source nodes``), its notes indented below, then a
    summary line."""
    out = ["fusion report (graph optimizer): layer (op) <- the ONNX nodes it implements"]
    for r in rows:
        nodes = ", ".join(r["source_nodes"]) or "-"
        out.append(f"  {r['layer']} ({r['op']}) <- {nodes}")
        out += [f"      {t}" for t in r["notes"]]
    kept = sum(1 for r in rows if r["op"] == "requant")
    adds = sum(1 for r in rows if r["op"] == "add")
    out.append(f"  {len(rows)} layers; {kept} standalone requant and {adds} standalone add cores remain")
    return out
