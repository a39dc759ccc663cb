# rtlgen @@VERSION@@: package rtlgen_axi_top (the @@MODEL@@ accelerator) as a Vivado IP (IP-XACT, ipx::package_project).
#
# Generated for build hash @@HASH@@ (s_axis TDATA @@TDATA@@ bits). Written for Vivado @@VIVADO@@; NOT run by rtlgen's
# own tests (no Vivado there): only parsed with tclsh and checked against the Verilog port list.
#
# Standalone use (any Zynq UltraScale+ / Versal / 7-series part):
#     vivado -mode batch -source DIR/vivado/package_ip.tcl -tclargs <part>
# build.tcl sources this file with rtlgen_part already set. Result: DIR/vivado/ip_repo/component.xml, IP
# rtlgen.org:rtlgen:rtlgen_axi_top:1.0 with interfaces s_axis, m_axis (AXI4-Stream), s_axi_ctrl (AXI4-Lite),
# aclk (clock), aresetn (active-low reset); with URAM weights also s_axis_weights (AXI4-Stream).

set rtlgen_vivado_dir [file dirname [file normalize [info script]]]
set rtlgen_design_dir [file dirname $rtlgen_vivado_dir]
if {![info exists rtlgen_part]} {
    if {[info exists argv] && [llength $argv] > 0} {
        set rtlgen_part [lindex $argv 0]
    } else {
        set rtlgen_part "@@PART@@"
    }
}
set rtlgen_ip_repo [file join $rtlgen_vivado_dir ip_repo]
set rtlgen_ip_files [list \
    [file join $rtlgen_design_dir rtl rtlgen_axi_top.v] \
    [file join $rtlgen_design_dir rtl rtlgen_top.v]]

# {name direction width}: exactly the ports of module rtlgen_axi_top (rtl/rtlgen_axi_top.v)
set rtlgen_ports {
@@PORTS@@
}
# {interface mode vlnv ports}
set rtlgen_interfaces {
    {s_axis slave xilinx.com:interface:axis_rtl:1.0 {s_axis_tdata s_axis_tvalid s_axis_tready s_axis_tlast}}
    {m_axis master xilinx.com:interface:axis_rtl:1.0 {m_axis_tdata m_axis_tvalid m_axis_tready m_axis_tlast}}
@@WEIGHTS_ITF@@    {s_axi_ctrl slave xilinx.com:interface:aximm_rtl:1.0 {@@AXIL_PORTS@@}}
}

foreach f $rtlgen_ip_files {
    if {![file exists $f]} {
        error "rtlgen: missing source $f (run rtlgen build first)"
    }
}

create_project -force rtlgen_ip_pack [file join $rtlgen_vivado_dir ip_pack] -part $rtlgen_part
add_files -norecurse $rtlgen_ip_files
set_property top rtlgen_axi_top [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir $rtlgen_ip_repo -vendor rtlgen.org -library rtlgen -taxonomy /UserIP -import_files -force
set rtlgen_core [ipx::current_core]
set_property name rtlgen_axi_top $rtlgen_core
set_property version 1.0 $rtlgen_core
set_property display_name "rtlgen @@MODEL@@ accelerator (AXI)" $rtlgen_core
set_property description "rtlgen @@MODEL@@: int8 ResNet dataflow accelerator, build hash @@HASH@@, s_axis @@TDATA@@ bits" $rtlgen_core
set_property supported_families {zynquplus Production versal Production zynq Production} $rtlgen_core

# the packaged ports must be exactly the Verilog ports
foreach p $rtlgen_ports {
    set name [lindex $p 0]
    if {[llength [ipx::get_ports $name -of_objects $rtlgen_core]] != 1} {
        error "rtlgen: port $name missing from the packaged IP"
    }
}
if {[llength [ipx::get_ports -of_objects $rtlgen_core]] != [llength $rtlgen_ports]} {
    error "rtlgen: the packaged IP has [llength [ipx::get_ports -of_objects $rtlgen_core]] ports, expected [llength $rtlgen_ports]"
}

# interfaces: ipx::package_project infers them from the port names; infer explicitly where it did not
foreach itf $rtlgen_interfaces {
    lassign $itf name mode vlnv ports
    if {[llength [ipx::get_bus_interfaces $name -of_objects $rtlgen_core]] == 0} {
        ipx::infer_bus_interfaces $vlnv $rtlgen_core
    }
    if {[llength [ipx::get_bus_interfaces $name -of_objects $rtlgen_core]] == 0} {
        error "rtlgen: interface $name was not inferred"
    }
}
if {[llength [ipx::get_bus_interfaces aclk -of_objects $rtlgen_core]] == 0} {
    ipx::infer_bus_interface aclk xilinx.com:signal:clock_rtl:1.0 $rtlgen_core
}
if {[llength [ipx::get_bus_interfaces aresetn -of_objects $rtlgen_core]] == 0} {
    ipx::infer_bus_interface aresetn xilinx.com:signal:reset_rtl:1.0 $rtlgen_core
}
set rtlgen_rst_if [ipx::get_bus_interfaces aresetn -of_objects $rtlgen_core]
set rtlgen_pol [ipx::get_bus_parameters POLARITY -of_objects $rtlgen_rst_if]
if {[llength $rtlgen_pol] == 0} {
    set rtlgen_pol [ipx::add_bus_parameter POLARITY $rtlgen_rst_if]
}
set_property value ACTIVE_LOW $rtlgen_pol
foreach itf $rtlgen_interfaces {
    ipx::associate_bus_interfaces -busif [lindex $itf 0] -clock aclk $rtlgen_core
}
ipx::associate_bus_interfaces -clock aclk -reset aresetn $rtlgen_core

# AXI4-Lite register space: one 4 KiB block (registers at 0x00 .. 0x3C, see README.md)
set rtlgen_mm [ipx::get_memory_maps s_axi_ctrl -of_objects $rtlgen_core]
if {[llength $rtlgen_mm] == 0} {
    set rtlgen_mm [ipx::add_memory_map s_axi_ctrl $rtlgen_core]
    set_property slave_memory_map_ref s_axi_ctrl [ipx::get_bus_interfaces s_axi_ctrl -of_objects $rtlgen_core]
}
set rtlgen_ab [ipx::get_address_blocks -of_objects $rtlgen_mm]
if {[llength $rtlgen_ab] == 0} {
    set rtlgen_ab [ipx::add_address_block reg0 $rtlgen_mm]
}
set_property range 4096 [lindex $rtlgen_ab 0]
set_property width 32 [lindex $rtlgen_ab 0]

set_property core_revision @@REVISION@@ $rtlgen_core
ipx::create_xgui_files $rtlgen_core
ipx::update_checksums $rtlgen_core
ipx::check_integrity $rtlgen_core
ipx::save_core $rtlgen_core
close_project
puts "rtlgen: packaged rtlgen_axi_top into $rtlgen_ip_repo"
