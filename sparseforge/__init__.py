"""sparseforge: co-design simulator and FPGA accelerator generator for sparse neural networks."""

__version__ = "0.1.0"
