"""Emission: the composed top (:mod:`.compose`: ``rtlgen_top`` from the IR, the plan and the core registry, its
weight images and the Verilog header) and Verilog text (:mod:`.verilog`)."""
