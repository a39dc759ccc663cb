# rtlgen @@VERSION@@: Vivado project, block design, bitstream and PYNQ overlay files for @@MODEL@@ on @@BOARD_NAME@@.
#
#     vivado -mode batch -source DIR/vivado/build.tcl [-tclargs <jobs>]
#
# Written for Vivado @@VIVADO@@ (see README.md beside this file). NOT run by rtlgen's own tests: no Vivado was
# available where it was generated; the script is only parsed with tclsh and its file references and port list are
# checked. Steps:
#   1. package rtl/rtlgen_axi_top.v + rtl/rtlgen_top.v as an IP (package_ip.tcl)
#   2. project for part @@PART@@ (the board part too when its board files are installed)
#   3. block design "rtlgen_bd": Zynq UltraScale+ PS (pl_clk0 = @@CLOCK_MHZ@@ MHz), AXI DMA (MM2S + S2MM, simple
#      mode, no scatter-gather) on S_AXI_HP0_FPD, the IP's s_axi_ctrl and the DMA's S_AXI_LITE on M_AXI_HPM0_FPD,
#      proc_sys_reset, DMA interrupts on pl_ps_irq0, automatic address map; validate; HDL wrapper
#   4. synthesis, implementation, bitstream
#   5. out/rtlgen.bit + out/rtlgen.hwh (PYNQ overlay), out/rtlgen.xsa, utilization and timing reports
# With URAM weights (rtlgen_weights 1) a second AXI DMA, axi_dma_weights (MM2S only), feeds the IP's s_axis_weights:
# the driver sends weights/weights.bin through it once after reset, before any image.

set rtlgen_vivado_dir [file dirname [file normalize [info script]]]
set rtlgen_design_dir [file dirname $rtlgen_vivado_dir]
set rtlgen_board @@BOARD@@
set rtlgen_part @@PART@@
set rtlgen_board_part_pattern "@@BOARD_PART_PATTERN@@"
set rtlgen_carrier_pattern "@@CARRIER_PATTERN@@"
set rtlgen_clock_mhz @@CLOCK_MHZ@@
set rtlgen_tdata_width @@TDATA@@
set rtlgen_weights @@WEIGHTS@@
set rtlgen_jobs 4
if {[info exists argv] && [llength $argv] > 0} {
    set rtlgen_jobs [lindex $argv 0]
}
set rtlgen_proj_dir [file join $rtlgen_vivado_dir project]
set rtlgen_out_dir [file join $rtlgen_vivado_dir out]
set rtlgen_xdc_files [list [file join $rtlgen_vivado_dir @@XDC@@]]

# ---------------------------------------------------------------------------------------------- 1. IP
source [file join $rtlgen_vivado_dir package_ip.tcl]

# ---------------------------------------------------------------------------------------------- 2. project
create_project -force rtlgen_$rtlgen_board $rtlgen_proj_dir -part $rtlgen_part
set rtlgen_board_parts [get_board_parts -quiet -latest_file_version $rtlgen_board_part_pattern]
set rtlgen_use_board 0
if {[llength $rtlgen_board_parts] > 0} {
    set_property board_part [lindex $rtlgen_board_parts 0] [current_project]
    set rtlgen_use_board 1
    if {$rtlgen_carrier_pattern ne ""} {
        set rtlgen_carrier [get_board_parts -quiet -latest_file_version $rtlgen_carrier_pattern]
        if {[llength $rtlgen_carrier] > 0} {
            set_property board_connections "som240_1_connector [lindex $rtlgen_carrier 0]" [current_project]
        }
    }
    puts "rtlgen: board part [lindex $rtlgen_board_parts 0]"
} else {
    puts "rtlgen: no board files matching $rtlgen_board_part_pattern installed: bare part $rtlgen_part (PS DDR/MIO settings come from the PYNQ boot image)"
}
set_property target_language Verilog [current_project]
set_property ip_repo_paths [list [file join $rtlgen_vivado_dir ip_repo]] [current_project]
update_ip_catalog -rebuild
add_files -fileset constrs_1 -norecurse $rtlgen_xdc_files

# ---------------------------------------------------------------------------------------------- 3. block design
create_bd_design rtlgen_bd
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ultra_ps_e_0]
if {$rtlgen_use_board} {
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
}
set_property -dict [list \
    CONFIG.PSU__USE__M_AXI_GP0 {1} \
    CONFIG.PSU__USE__M_AXI_GP1 {0} \
    CONFIG.PSU__USE__M_AXI_GP2 {0} \
    CONFIG.PSU__USE__S_AXI_GP2 {1} \
    CONFIG.PSU__SAXIGP2__DATA_WIDTH {@@HP_WIDTH@@} \
    CONFIG.PSU__USE__IRQ0 {1} \
    CONFIG.PSU__FPGA_PL0_ENABLE {1} \
    CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $rtlgen_clock_mhz \
] $ps

set acc [create_bd_cell -type ip -vlnv rtlgen.org:rtlgen:rtlgen_axi_top:1.0 rtlgen_0]

set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma axi_dma_0]
set_property -dict [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_length_width {26} \
    CONFIG.c_include_mm2s {1} \
    CONFIG.c_include_s2mm {1} \
    CONFIG.c_m_axi_mm2s_data_width {@@TDATA@@} \
    CONFIG.c_m_axis_mm2s_tdata_width {@@TDATA@@} \
    CONFIG.c_m_axi_s2mm_data_width {32} \
    CONFIG.c_s_axis_s2mm_tdata_width {32} \
    CONFIG.c_mm2s_burst_size {64} \
    CONFIG.c_s2mm_burst_size {64} \
] $dma

set ctrl_ic [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect axi_ctrl_ic]
set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI [expr {$rtlgen_weights ? 3 : 2}]] $ctrl_ic
set mem_ic [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect axi_mem_ic]
set_property -dict [list CONFIG.NUM_SI [expr {$rtlgen_weights ? 3 : 2}] CONFIG.NUM_MI {1}] $mem_ic
set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset proc_sys_reset_0]
set irq [create_bd_cell -type ip -vlnv xilinx.com:ip:xlconcat irq_concat]
set_property -dict [list CONFIG.NUM_PORTS [expr {$rtlgen_weights ? 3 : 2}]] $irq

# streams: DMA MM2S -> accelerator -> DMA S2MM
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins rtlgen_0/s_axis]
connect_bd_intf_net [get_bd_intf_pins rtlgen_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]
# control: HPM0_FPD -> {accelerator registers, DMA registers}
connect_bd_intf_net [get_bd_intf_pins zynq_ultra_ps_e_0/M_AXI_HPM0_FPD] [get_bd_intf_pins axi_ctrl_ic/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_ctrl_ic/M00_AXI] [get_bd_intf_pins rtlgen_0/s_axi_ctrl]
connect_bd_intf_net [get_bd_intf_pins axi_ctrl_ic/M01_AXI] [get_bd_intf_pins axi_dma_0/S_AXI_LITE]
# memory: DMA masters -> HP0
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_MM2S] [get_bd_intf_pins axi_mem_ic/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_S2MM] [get_bd_intf_pins axi_mem_ic/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_mem_ic/M00_AXI] [get_bd_intf_pins zynq_ultra_ps_e_0/S_AXI_HP0_FPD]
# one clock (pl_clk0) for everything
set clk [get_bd_pins zynq_ultra_ps_e_0/pl_clk0]
foreach p {zynq_ultra_ps_e_0/maxihpm0_fpd_aclk zynq_ultra_ps_e_0/saxihp0_fpd_aclk rtlgen_0/aclk \
           axi_dma_0/s_axi_lite_aclk axi_dma_0/m_axi_mm2s_aclk axi_dma_0/m_axi_s2mm_aclk \
           axi_ctrl_ic/aclk axi_mem_ic/aclk proc_sys_reset_0/slowest_sync_clk} {
    connect_bd_net $clk [get_bd_pins $p]
}
# resets
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_resetn0] [get_bd_pins proc_sys_reset_0/ext_reset_in]
foreach p {rtlgen_0/aresetn axi_dma_0/axi_resetn axi_ctrl_ic/aresetn axi_mem_ic/aresetn} {
    connect_bd_net [get_bd_pins proc_sys_reset_0/peripheral_aresetn] [get_bd_pins $p]
}
# DMA interrupts (PYNQ's DMA driver uses them when present)
connect_bd_net [get_bd_pins axi_dma_0/mm2s_introut] [get_bd_pins irq_concat/In0]
connect_bd_net [get_bd_pins axi_dma_0/s2mm_introut] [get_bd_pins irq_concat/In1]
connect_bd_net [get_bd_pins irq_concat/dout] [get_bd_pins zynq_ultra_ps_e_0/pl_ps_irq0]

# URAM weights: a second DMA (MM2S only) streams weights/weights.bin into s_axis_weights once after reset
if {$rtlgen_weights} {
    set wdma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma axi_dma_weights]
    set_property -dict [list \
        CONFIG.c_include_sg {0} \
        CONFIG.c_sg_length_width {26} \
        CONFIG.c_include_mm2s {1} \
        CONFIG.c_include_s2mm {0} \
        CONFIG.c_m_axi_mm2s_data_width {@@TDATA@@} \
        CONFIG.c_m_axis_mm2s_tdata_width {@@TDATA@@} \
        CONFIG.c_mm2s_burst_size {64} \
    ] $wdma
    connect_bd_intf_net [get_bd_intf_pins axi_dma_weights/M_AXIS_MM2S] [get_bd_intf_pins rtlgen_0/s_axis_weights]
    connect_bd_intf_net [get_bd_intf_pins axi_ctrl_ic/M02_AXI] [get_bd_intf_pins axi_dma_weights/S_AXI_LITE]
    connect_bd_intf_net [get_bd_intf_pins axi_dma_weights/M_AXI_MM2S] [get_bd_intf_pins axi_mem_ic/S02_AXI]
    foreach p {axi_dma_weights/s_axi_lite_aclk axi_dma_weights/m_axi_mm2s_aclk} {
        connect_bd_net $clk [get_bd_pins $p]
    }
    connect_bd_net [get_bd_pins proc_sys_reset_0/peripheral_aresetn] [get_bd_pins axi_dma_weights/axi_resetn]
    connect_bd_net [get_bd_pins axi_dma_weights/mm2s_introut] [get_bd_pins irq_concat/In2]
}

assign_bd_address
validate_bd_design
save_bd_design
set rtlgen_bd_file [get_files rtlgen_bd.bd]
generate_target all $rtlgen_bd_file
set rtlgen_wrapper [make_wrapper -files $rtlgen_bd_file -top]
add_files -norecurse $rtlgen_wrapper
set_property top rtlgen_bd_wrapper [current_fileset]
update_compile_order -fileset sources_1

# ---------------------------------------------------------------------------------------------- 4. implementation
launch_runs synth_1 -jobs $rtlgen_jobs
wait_on_run synth_1
if {[get_property PROGRESS [get_runs synth_1]] ne "100%"} {
    error "rtlgen: synthesis failed (see $rtlgen_proj_dir)"
}
launch_runs impl_1 -to_step route_design -jobs $rtlgen_jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "rtlgen: implementation failed (see $rtlgen_proj_dir)"
}

# ---------------------------------------------------------------------------------------------- 5. outputs
file mkdir $rtlgen_out_dir
open_run impl_1
report_utilization -file [file join $rtlgen_out_dir utilization.rpt]
report_utilization -hierarchical -file [file join $rtlgen_out_dir utilization_hierarchical.rpt]
report_timing_summary -max_paths 20 -file [file join $rtlgen_out_dir timing_summary.rpt]
set rtlgen_wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
write_bitstream -force [file join $rtlgen_out_dir rtlgen.bit]
write_hw_platform -fixed -force -file [file join $rtlgen_out_dir rtlgen.xsa]
set rtlgen_hwh [lindex [get_files -all -quiet */rtlgen_bd.hwh] 0]
if {$rtlgen_hwh eq ""} {
    error "rtlgen: no rtlgen_bd.hwh was generated"
}
file copy -force $rtlgen_hwh [file join $rtlgen_out_dir rtlgen.hwh]
puts "rtlgen: wrote [file join $rtlgen_out_dir rtlgen.bit] and rtlgen.hwh (PYNQ overlay), rtlgen.xsa, reports"
puts "rtlgen: worst setup slack $rtlgen_wns ns at pl_clk0 (requested $rtlgen_clock_mhz MHz; see timing_summary.rpt)"
if {$rtlgen_wns < 0} {
    puts "rtlgen: WARNING: timing not met; rebuild with a lower --clock-mhz"
}
