"""The hardware spec: one frozen, typed, validated description of an accelerator.

This package is the ground floor of sparseforge: it imports nothing else of the project,
and every other layer (models aside) imports it.
"""

from .base import SpecError
from .hardware import FPGA_PARTS, NO_PART, HardwareSpec, list_presets, load_spec, preset_path, spec_bounds
from .moe import MoeSpec
from .spgemm import SMASH_VERSIONS, SpgemmSpec
from .train import TrainSpec

__all__ = ["SpecError", "HardwareSpec", "MoeSpec", "SpgemmSpec", "TrainSpec", "SMASH_VERSIONS",
           "load_spec", "list_presets", "preset_path", "spec_bounds", "FPGA_PARTS", "NO_PART"]
