"""The plan layer (pure Python, imports no Amaranth): what each layer of the IR becomes in hardware and what it costs.

* :mod:`.data` -- boards and budgets, :class:`LayerPlan` / :class:`Plan` (``plan.json``), reading plan files;
* :mod:`.geometry` -- the one source of the sizes the cores build (line-buffer depth, skip-FIFO entries, window
  delays, weight-word width);
* :mod:`.cost` -- the one cost model (cycles and resources per configuration, stream adapters);
* :mod:`.topology` -- the composed design's residual merges, stream edges and FIFO depths;
* :mod:`.search` -- the throughput planner (:func:`plan_network`), FIFO sizing and re-costing an edited plan.
"""

from .cost import conv_config_cost, dwconv_config_cost, edge_costs, fixed_stage_costs, layer_config_cost
from .data import (BOARDS, RESOURCES, UTILIZATION, Budget, LayerPlan, Plan, board_budget, load_plan_file,
                   parse_budget, validate_layer_plan)
from .geometry import (MAX_SIGNAL_BITS, embed_kernel, is_depthwise, line_buffer_depth, skip_fifo_entries,
                       weight_word_bits)
from .search import SEARCHES, plan_network, recost, size_fifos
from .topology import Edge, Topology, projection_merges, topology

__all__ = ["BOARDS", "RESOURCES", "UTILIZATION", "Budget", "LayerPlan", "Plan", "board_budget", "load_plan_file",
           "parse_budget", "validate_layer_plan", "MAX_SIGNAL_BITS", "line_buffer_depth", "skip_fifo_entries",
           "weight_word_bits", "embed_kernel", "is_depthwise", "conv_config_cost", "dwconv_config_cost",
           "layer_config_cost", "edge_costs", "fixed_stage_costs", "SEARCHES", "plan_network",
           "recost", "size_fifos", "Edge", "Topology", "projection_merges", "topology"]
