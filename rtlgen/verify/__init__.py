"""Verification: everything that checks a build.

* :mod:`.beats` -- the one beat packer (frames <-> stream beats, any payload width);
* :mod:`.harness` -- the compiled Verilator C++ harness of ``rtlgen sim`` (frames sharded over processes) and
  :mod:`.shard` (the same shards on a Dask cluster);
* :mod:`.sim` -- ``rtlgen sim``'s runner (harness, or the cocotb bench :mod:`.bench` for ``--waves``);
* :mod:`.runner` -- building and running cocotb benches with Verilator;
* :mod:`.tb` -- the reusable cocotb testbench (driver, monitor, scoreboard, idle/backpressure generators) and its
  example :mod:`.tb_example`;
* :mod:`.lint`, :mod:`.synth`, :mod:`.timing` -- Verilator lint, yosys resource estimates, the pre-Vivado timing
  estimate.
"""
