"""Import a PyTorch ``nn.Module`` as a list of GEMMs: export it to ONNX, then import that.

torch is an optional dependency (``pip install sparseforge[torch]``); it is imported only
when a function here is called, and a missing torch is a :class:`TorchError` saying how to
install it. Steps of :func:`import_torch`:

1. The example inputs: tensors (``example_inputs``: one tensor or a tuple, one per
   ``forward`` argument) or shapes (``input_shapes``: name -> shape, one per ``forward``
   argument in order, filled with zeros; the names become the ONNX input names).
2. Export with PyTorch's TorchScript-based ONNX exporter (``torch.onnx.export(...,
   dynamo=False)``: it needs no package beyond torch) into a temporary folder, with the
   module in eval mode (its mode is restored afterwards). With ``batch``, dimension 0 of
   every input is exported free (``dynamic_axes``) and the importer sets it to ``batch``.
3. :func:`~sparseforge.models.onnx_import.read_onnx` lowers the file: the GEMMs, each
   layer's constant weight, and the N:M pattern the weights already have (``GemmLayer.nm``;
   masks applied with ``torch.nn.utils.prune`` export as ``weight_orig * weight_mask``,
   which the exporter or the importer's constant folding computes).

:func:`load_module` turns what a command line can name into a module: a TorchScript file
(``torch.jit.save``), a whole pickled module (``torch.save(model)``; unpickling runs code
from the file, so load only files you trust), or ``package.module:factory`` /
``file.py:factory`` (an ``nn.Module`` attribute, or a callable taking no arguments that
returns one).

Errors: :class:`TorchError` (an :class:`~sparseforge.errors.InputError`), one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
import warnings
from typing import Any, Mapping, Sequence

from sparseforge.errors import InputError

from .onnx_import import OnnxImport, read_onnx

__all__ = ["import_torch", "load_module", "TorchError", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'sparseforge[torch]'"


class TorchError(InputError):
    """A module that cannot be loaded or exported, bad example inputs, or no torch."""


def _torch():
    try:
        import torch
    except ImportError:
        raise TorchError(f"PyTorch is not installed: {INSTALL_HINT} (or pip install torch)") from None
    return torch


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _examples(torch, example_inputs: Any, input_shapes: Mapping[str, Sequence[int]] | None
              ) -> tuple[tuple[Any, ...], list[str]]:
    """(example tensors, ONNX input names)."""
    if example_inputs is not None and input_shapes:
        raise TorchError("example_inputs and input_shapes are not allowed together: give one")
    if example_inputs is None:
        if not input_shapes:
            raise TorchError("a PyTorch module needs example inputs: give example_inputs (a tensor or a tuple of "
                             "tensors) or input_shapes (CLI: --input-shape NAME=d0,d1,..., one per forward argument)")
        names, tensors = [], []
        for name, shape in input_shapes.items():
            shape = tuple(shape)
            if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
                raise TorchError(f"input_shapes[{name!r}] = {shape!r} is not allowed: must be positive integers")
            names.append(str(name))
            tensors.append(torch.zeros(shape))
        return tuple(tensors), names
    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise TorchError(f"example_inputs of type {type(example_inputs).__name__} is not allowed: give a tensor or "
                         "a tuple of tensors, one per forward argument")
    return tuple(items), [f"input{i}" if len(items) > 1 else "input" for i in range(len(items))]


def import_torch(module: Any, example_inputs: Any = None, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 batch: int | None = None, name: str | None = None, opset: int | None = None) -> OnnxImport:
    """The GEMMs (and weights, N:M patterns) of the PyTorch module ``module`` run on
    ``example_inputs`` (or zeros of ``input_shapes``), through an ONNX export (module
    docstring). ``batch`` sets dimension 0 of every input. ``name`` defaults to the module's
    class name; ``opset`` to the exporter's default.

    Raises:
        TorchError: no torch, not a module, bad example inputs, the export failing.
        OnnxError: the exported model does not import (e.g. an unsupported operator).
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TorchError(f"module of type {type(module).__name__} is not allowed: give a torch.nn.Module")
    args, names = _examples(torch, example_inputs, input_shapes)
    label = name or type(module).__name__
    dynamic = {n: {0: "batch"} for n in names} if batch is not None else None
    with tempfile.TemporaryDirectory(prefix="sparseforge-torch-") as tmp:
        path = os.path.join(tmp, f"{label}.onnx")
        was_training = module.training
        _set_mode(module, training=False)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                kw = {"opset_version": opset} if opset is not None else {}
                torch.onnx.export(module, args, path, dynamo=False, input_names=names, dynamic_axes=dynamic, **kw)
        except TorchError:
            raise
        except Exception as exc:  # torch raises many types here (RuntimeError, its own export errors)
            raise TorchError(f"torch module {label!r}: the ONNX export failed: {_one_line(exc)}") from None
        finally:
            _set_mode(module, training=was_training)
        return read_onnx(path, name=label, batch=batch)


def _set_mode(module: Any, *, training: bool) -> None:
    """``module.train(training)``; a module that cannot switch (torch.export's modules are
    fixed in the mode they were exported in) keeps its mode."""
    try:
        module.train(training)
    except NotImplementedError:
        pass


def load_module(source: str) -> Any:
    """The ``nn.Module`` that ``source`` names: a TorchScript file, a ``torch.save``'d whole
    module (pickled: load only files you trust), or ``package.module:factory`` /
    ``path/file.py:factory``."""
    torch = _torch()
    if not isinstance(source, str) or not source:
        raise TorchError(f"torch module {source!r} is not allowed: give FILE.pt or module.path:factory")
    if os.path.isfile(source):
        return _load_file(torch, source)
    target, sep, attr = source.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise TorchError(f"torch module {source!r}: no such file, and not module.path:factory either "
                         "(e.g. my_models:build or my_models.py:build)")
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise TorchError(f"torch module {source!r}: no such file {target!r}")
        spec = importlib.util.spec_from_file_location(f"_sparseforge_user_{abs(hash(target))}", target)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            raise TorchError(f"torch module {source!r}: running {target!r} failed: {_one_line(exc)}") from None
    else:
        try:
            mod = importlib.import_module(target)
        except Exception as exc:
            raise TorchError(f"torch module {source!r}: cannot import {target!r}: {_one_line(exc)}") from None
    if not hasattr(mod, attr):
        raise TorchError(f"torch module {source!r}: {target!r} has no attribute {attr!r}")
    obj = getattr(mod, attr)
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise TorchError(f"torch module {source!r}: {attr!r} is a {type(obj).__name__}, not an nn.Module or a "
                             "factory returning one")
        try:
            obj = obj()
        except Exception as exc:
            raise TorchError(f"torch module {source!r}: calling {attr}() failed: {_one_line(exc)}") from None
    if not isinstance(obj, torch.nn.Module):
        raise TorchError(f"torch module {source!r}: {attr}() returned a {type(obj).__name__}, not an nn.Module")
    return obj


def _load_file(torch, path: str) -> Any:
    if path.endswith(".pt2"):  # torch.export.save: its modules refuse the TorchScript exporter's train()
        raise TorchError(f"torch module {path!r}: torch.export programs (.pt2) are not supported: give a TorchScript "
                         "file (torch.jit.save), a torch.save'd module or module.path:factory")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated in favour of torch.export
            return torch.jit.load(path, map_location="cpu")
    except Exception:
        pass  # not TorchScript: a pickled module?
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise TorchError(f"torch module {path!r} is neither a TorchScript file nor a torch.save'd module: "
                         f"{_one_line(exc)}") from None
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping):
        raise TorchError(f"torch module {path!r} holds a state_dict (weights without the network): save the whole "
                         "module (torch.save(model) or torch.jit.save(torch.jit.script(model))) or give "
                         "module.path:factory")
    raise TorchError(f"torch module {path!r} holds a {type(obj).__name__}, not an nn.Module")
