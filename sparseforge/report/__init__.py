"""Reports with pictures: the sweep report (``sparseforge report``), the single-simulation
report (``sparseforge simulate --output report.html``), the training, SpGEMM and MoE reports
(``simulate --train``, ``spgemm``, ``simulate --net m3vit-*`` with ``--output report.html``)
and the spec comparison (``sparseforge compare``). See docs/report.md.

- :mod:`.pareto` -- Pareto extraction for any number of min/max objectives;
- :mod:`.plots` -- the figure builders every report shares (plotly for the page,
  matplotlib for PNG/SVG);
- :mod:`.page` -- one self-contained HTML page (plotly.js embedded, works offline);
- :mod:`.sweep`, :mod:`.sim`, :mod:`.compare` -- the sweep, inference and comparison reports;
- :mod:`.train`, :mod:`.spgemm`, :mod:`.moe` -- the training, SpGEMM and MoE reports (imported
  on use, by the results' ``write_html``).

Every report is built from results only (a sweep's results table, the simulator's result
objects) and written atomically.
"""

from .base import Objective, ReportError, objectives_of
from .compare import Comparison, compare_specs, write_comparison
from .pareto import pareto_mask
from .sim import write_simulation_report
from .sweep import write_sweep_report

__all__ = ["Objective", "ReportError", "objectives_of", "pareto_mask", "write_sweep_report",
           "write_simulation_report", "Comparison", "compare_specs", "write_comparison"]
