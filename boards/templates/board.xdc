# rtlgen @@VERSION@@: constraints for @@MODEL@@ on @@BOARD_NAME@@ (@@PART@@).
#
# The design has no package pins: the only clock, pl_clk0 (@@CLOCK_MHZ@@ MHz requested), is generated and
# constrained by the Zynq UltraScale+ PS IP in the block design, and every AXI path stays inside that one clock
# domain, so no clock, I/O or false-path constraints are needed here. This file only sets bitstream options.

set_property BITSTREAM.GENERAL.COMPRESS TRUE [current_design]
