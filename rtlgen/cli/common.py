"""Options and helpers shared by the commands."""

from __future__ import annotations

import click


def _floats(text, opt):
    if text is None:
        return None
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=opt) from None


def preprocess_options(f):
    """--input-scale/--mean/--std/--input-codes, shared by inspect, predict and build."""
    f = click.option("--input-codes", is_flag=True, help="the hardware takes the input's codes (its first quantizer's) as they are: identity input stage, no pixel table (default for an int8/uint8 graph input without --input-scale/--mean/--std)")(f)
    f = click.option("--std", default=None, help="per-channel std, e.g. 0.229,0.224,0.225 (default: model metadata or 1)")(f)
    f = click.option("--mean", default=None, help="per-channel mean, e.g. 0.485,0.456,0.406 (default: model metadata or 0)")(f)
    f = click.option("--input-scale", type=click.FloatRange(min=0.0, min_open=True), default=None, help="pixel scale S: float input = (pixel*S - mean)/std (default: metadata or 1/255)")(f)
    return f


def load_net(model, input_scale=None, mean=None, std=None, input_codes=False):
    from ..frontend import load_model
    from ..models import resolve

    return load_model(resolve(model), input_scale=input_scale, mean=_floats(mean, "--mean"), std=_floats(std, "--std"),
                      input_codes=input_codes)


def resource_line(res: dict, budget: dict) -> str:
    """``DSP 1,045 / 1,248 (83.7 %), ...`` from report.json's resources and budget."""
    parts = []
    for k, name in (("dsp", "DSP"), ("lut", "LUT"), ("ff", "FF"), ("bram36", "BRAM36"), ("uram", "URAM")):
        v, b = res.get(k, 0), budget.get(k)
        fv = f"{v:,}" if not isinstance(v, float) or not v.is_integer() else f"{int(v):,}"
        if b:
            parts.append(f"{name} {fv} / {b:,} ({100 * v / b:.1f} %)")
        else:
            parts.append(f"{name} {fv}" + (" / 0" if b == 0 and v else ""))
    return ", ".join(parts)
