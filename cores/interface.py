"""The interface every layer core has (what the composition, ``rtlgen core`` and the planner rely on).

* ``from_layer(layer, **knobs)`` -- the core for one IR layer with explicit knobs (lanes, parallelism, storage...);
* ``from_plan(layer, lp, ctx=None)`` -- the same from the layer's :class:`rtlgen.plan.LayerPlan` (``plan_knobs`` maps
  the plan's decisions to knobs; ``ctx`` is the :class:`PlanContext`, for knobs that depend on the neighbours);
* ``plan_cycles(layer, lp, ctx=None)`` -- steady-state cycles per frame from the plan alone (the default builds the core
  without elaborating it; cores whose model is pure Python override it);
* ``cycles_per_frame()`` -- the same for a built core; ``latency`` -- cycles from the first input beat to the first
  output beat (a property).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PlanContext", "LayerCore", "FrameStreamCore"]


@dataclass
class PlanContext:
    """What a core needs beyond its own layer and plan entry: the network, every layer's plan and the topology
    (:func:`rtlgen.plan.topology.topology`: residual merges)."""

    net: object
    plans: dict = field(default_factory=dict)  # layer name -> LayerPlan
    topo: object = None

    @classmethod
    def of(cls, net, plan, topo=None) -> "PlanContext":
        from rtlgen.plan.topology import topology

        return cls(net, {lp.name: lp for lp in plan.layers}, topo if topo is not None else topology(net, plan))


class LayerCore:
    """Mixin of the layer cores (module docstring)."""

    @classmethod
    def from_layer(cls, layer, **knobs):
        raise NotImplementedError

    @classmethod
    def plan_knobs(cls, layer, lp, ctx: PlanContext | None = None) -> dict:
        """The knobs of :meth:`from_layer` the plan entry ``lp`` decides (default: ``lanes = lp.lanes_out``)."""
        return {"lanes": lp.lanes_out}

    @classmethod
    def from_plan(cls, layer, lp, ctx: PlanContext | None = None):
        return cls.from_layer(layer, **cls.plan_knobs(layer, lp, ctx))

    @classmethod
    def plan_cycles(cls, layer, lp, ctx: PlanContext | None = None) -> int:
        return int(cls.from_plan(layer, lp, ctx).cycles_per_frame())

    def cycles_per_frame(self) -> int:
        raise NotImplementedError


class FrameStreamCore(LayerCore):
    """A layer core that takes one beat per cycle over its ``shape`` = ``H x W x C`` frame, ``lanes`` channels per
    beat, and answers ``pipe_depth`` pipeline stages plus a 2-cycle output FIFO later (the add and requant cores)."""

    @classmethod
    def plan_cycles(cls, layer, lp, ctx: PlanContext | None = None) -> int:
        H, W, C = layer.in_shape
        return H * W * -(-C // lp.lanes_out)

    def cycles_per_frame(self) -> int:
        H, W, C = self.shape
        return H * W * -(-C // self.lanes)

    @property
    def latency(self) -> int:
        return self.pipe_depth + 2
