"""sparseforge: co-design simulator and FPGA accelerator generator for sparse neural networks.

    import sparseforge as sf
    spec = sf.load_spec("default", rows=32, cols=32)
    res = sf.simulate(spec, net="resnet50", sparsity="2:4")
    res.total.cycles, res.speedup, res.to_pandas()
    sf.generate(spec, design="engine", out="rtl_out")

The public functions and result classes live in :mod:`sparseforge.api` (documented in
docs/api.md) and are loaded on first use, so ``import sparseforge`` imports nothing heavy.
"""

from __future__ import annotations

__all__ = [
    "__version__", "load_spec", "clock_check", "simulate", "simulate_training", "spgemm", "simulate_moe", "generate", "synth",
    "train_accuracy", "InputError", "HardwareSpec", "SimulationResult", "TrainingResult", "SpgemmResult",
    "MoeResult", "GenerateResult", "SynthResult", "AccuracyResult", "verify", "lint", "VerifyResult", "LintResult",
    "prune", "PruneResult",
]

_FROM_API = frozenset(__all__) - {"__version__"}


def _version() -> str:
    """The installed distribution's version; in a source tree that is not installed, the
    version its pyproject.toml declares."""
    from importlib import metadata

    try:
        return metadata.version("sparseforge")
    except metadata.PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    try:
        data = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
        return str(data["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


def __getattr__(name: str) -> object:
    if name == "__version__":
        value: object = _version()
    elif name in _FROM_API:
        from . import api

        value = getattr(api, name)
    elif name == "api":
        import importlib

        value = importlib.import_module(".api", __name__)
    else:
        raise AttributeError(f"module 'sparseforge' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
