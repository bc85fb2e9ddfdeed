"""SCALE-Sim topology files (``topologies/**/*.csv`` of SCALE-Sim v2/v3) as sparseforge networks.

SCALE-Sim describes a workload as a CSV file with one header line and one row per layer, in one
of two forms (SCALE-Sim picks the form with its ``-i conv|gemm`` flag; here the header decides):

- **conv**: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` and optionally a tenth column: SCALE-Sim v3's ``Sparsity`` (``N:M``) or
  SCALE-Sim v2's separate stride width (an integer; the ``Strides`` column is then the stride
  height). Without it the stride is the same in both directions.
- **GEMM** (``-i gemm``): ``Layer, M, N, K,`` and optionally v3's ``Sparsity`` (``N:M``).

How SCALE-Sim reads a row, and how this module follows it (scale-sim-v3 ``scalesim/topology_utils.py``
at commit fab89b77, MIT licence):

- ``load_arrays_gemm`` turns ``M, N, K`` into the conv ``[M, K, 1, K, 1, N, 1, 1]`` (IFMAP M x K,
  a 1 x K filter of one channel, N filters, stride 1): ``M`` output pixels, a reduction of ``K``,
  ``N`` outputs. Here: a ``linear`` layer with ``tokens = M``, ``k = K``, ``n_out = N``.
- ``topo_calc_hyperparams`` sizes a conv output as ``ofmap_h = ceil((ifmap_h - filt_h + stride_h)
  / stride_h)`` (the same for the width), without padding; PyTorch's ``floor((H - F) / S) + 1``
  is one smaller whenever ``S`` does not divide ``H - F`` (AlexNet Conv1 on 224 x 224: SCALE-Sim
  55 x 55, PyTorch 54 x 54). The GEMM SCALE-Sim runs is ``M = ofmap_h * ofmap_w`` pixels,
  ``K = filt_h * filt_w * channels`` (its window size) and ``N = num_filt``; here a ``conv``
  layer with those ``tokens``, ``k`` and ``n_out``, so MACs are ``M * N * K`` as SCALE-Sim counts.
- ``append_topo_arrays`` refuses a filter larger than the IFMAP (an assertion there; a
  :class:`TopologyError` here).
- ``load_arrays_conv`` runs a layer whose name contains ``DP`` as a depthwise conv: one layer
  per channel, named ``<name>Channel_<i>``, each with one channel. Here the same, so that the
  layer IDs of a per-layer report line up with SCALE-Sim's.
- SCALE-Sim drops the last comma-separated field of every row (``row.split(',')[:-1]``: its
  files end every row with a comma). Here an empty last field is dropped, and a row without the
  trailing comma keeps its last value (SCALE-Sim would lose it; its own ``GEMM_mnk/gpt2.csv``
  has such a last row).
- Blank lines are skipped, as SCALE-Sim skips them; so are rows whose fields are all empty (a
  spreadsheet's ``,,,,,,,,``, which SCALE-Sim fails to parse).

The ``Sparsity`` column is mapped as far as sparseforge's model goes: a layer marked ``1:1``
stays dense (``prunable = False``), a layer marked with any other ``N:M`` is prunable. The
pattern itself is the one of ``--sparsity`` (or the array's own ``n:m``): a file that names
patterns reports so in :attr:`Topology.notes`. Layer names must be unique in a network, so a
repeated name gets ``_2``, ``_3``, ... (also reported).

Bad files raise :class:`TopologyError`: one line naming the file, the line, the column (number
and header name), the value and what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sparseforge.errors import InputError

from .network import GemmLayer, Network

__all__ = ["TopologyError", "Topology", "read_topology", "conv_layer", "gemm_layer", "conv_output_size",
           "MAX_TOPOLOGY_BYTES", "MAX_TOPOLOGY_LAYERS", "MAX_DIM", "FORMS"]

#: the two forms of a topology file
FORMS = ("conv", "gemm")
#: largest topology file read (SCALE-Sim's own files are below 8 KiB)
MAX_TOPOLOGY_BYTES = 1 << 22
#: most layers one file may expand to (a DP layer expands to one layer per channel)
MAX_TOPOLOGY_LAYERS = 100_000
#: largest value of any size column (a billion: far above any layer of a real network)
MAX_DIM = 10**9

#: the columns of each form, as SCALE-Sim's files name them (for messages)
CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")


class TopologyError(InputError):
    """A SCALE-Sim topology file is missing, malformed or describes an impossible layer."""


@dataclass(frozen=True)
class Topology:
    """A topology file read as a :class:`Network`, its form (``conv`` or ``gemm``), and notes
    on what of the file sparseforge maps only in part (one line each)."""

    network: Network
    form: str
    notes: tuple[str, ...] = ()


def conv_output_size(ifmap: int, filt: int, stride: int) -> int:
    """SCALE-Sim's output size of one dimension: ``ceil((ifmap - filt + stride) / stride)``
    (scale-sim-v3 ``scalesim/topology_utils.py``, ``topo_calc_hyperparams``; no padding),
    computed in integers."""
    return -(-(ifmap - filt + stride) // stride)


def conv_layer(name: str, h: int, w: int, fh: int, fw: int, ch: int, nf: int, stride: int,
               stride_w: int | None = None, *, prunable: bool = True) -> GemmLayer:
    """A SCALE-Sim conv row as the GEMM SCALE-Sim runs: ``conv_output_size`` pixels per
    dimension, ``K = fh * fw * ch`` (its window size), ``N = nf`` filters."""
    sw = stride if stride_w is None else stride_w
    oh, ow = conv_output_size(h, fh, stride), conv_output_size(w, fw, sw)
    return GemmLayer(name=name, tokens=oh * ow, k=fh * fw * ch, n_out=nf, kind="conv", prunable=prunable)


def gemm_layer(name: str, m: int, n: int, k: int, *, prunable: bool = True) -> GemmLayer:
    """A SCALE-Sim GEMM row (``M, N, K``): ``M`` rows of activations, reduction ``K``, ``N`` outputs."""
    return GemmLayer(name=name, tokens=m, k=k, n_out=n, prunable=prunable)


# ------------------------------------------------------------------ reading
def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise TopologyError(f"topology {str(path)!r}: no such file") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(f"topology {str(path)!r} cannot be read: {why}") from None
    if not path.is_file():
        raise TopologyError(f"topology {str(path)!r} is not a regular file: give a SCALE-Sim topology .csv file")
    if size > MAX_TOPOLOGY_BYTES:
        raise TopologyError(f"topology {path}: {size} bytes is not allowed: a topology file is at most "
                            f"{MAX_TOPOLOGY_BYTES} bytes")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TopologyError(f"topology {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")          # a spreadsheet's UTF-8 export may start with a BOM
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TopologyError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}): a topology is a "
                            "text CSV file") from None


def _fields(line: str) -> list[str]:
    """A row's fields as SCALE-Sim splits them (on ',', no quoting), stripped, without the empty
    field after the trailing comma."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) > 1 and fields[-1] == "":
        fields.pop()
    return fields


def _form(path: Path, header: list[str]) -> str:
    """``conv`` or ``gemm`` from the header line (SCALE-Sim reads it only to skip it)."""
    low = [h.lower() for h in header]
    if len(low) >= 4 and low[1:4] == ["m", "n", "k"]:
        return "gemm"
    if len(low) >= 8 and low[1].startswith("ifmap") and "filter" in low[3]:
        return "conv"
    shown = ", ".join(header)[:120]
    raise TopologyError(f"{path}:1: header {shown!r} is not a SCALE-Sim topology header: expected "
                        f"'{', '.join(CONV_COLUMNS)},' (conv) or '{', '.join(GEMM_COLUMNS)},' (GEMM)")


def _int(path: Path, no: int, col: int, header: str, text: str, *, low: int = 1) -> int:
    where = f"{path}:{no}: column {col} ({header})"
    if text == "":
        raise TopologyError(f"{where} is empty: must be an integer >= {low}")
    try:
        value = int(text)
    except ValueError:
        raise TopologyError(f"{where} = {text[:40]!r} is not allowed: must be an integer >= {low}") from None
    if not low <= value <= MAX_DIM:
        raise TopologyError(f"{where} = {value} is not allowed: must be an integer in {low}..{MAX_DIM}")
    return value


def _sparsity(path: Path, no: int, col: int, text: str) -> tuple[int, int]:
    n, sep, m = text.partition(":")
    try:
        nm = (int(n), int(m))
        if not sep or not 1 <= nm[0] <= nm[1] <= 64:
            raise ValueError
    except ValueError:
        raise TopologyError(f"{path}:{no}: column {col} (Sparsity) = {text[:40]!r} is not allowed: write N:M with "
                            "1 <= N <= M <= 64 (1:1 for a dense layer)") from None
    return nm


def read_topology(path: str | os.PathLike) -> Topology:
    """Read a SCALE-Sim topology CSV (conv or GEMM form, told apart by the header) as a
    :class:`Topology`; the network is named after the file (as SCALE-Sim names its run's
    topology). :class:`TopologyError` for a missing or malformed file."""
    path = Path(os.fspath(path))
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise TopologyError(f"{path}:1: empty topology: the first line must be the header "
                            f"'{', '.join(CONV_COLUMNS)},' or '{', '.join(GEMM_COLUMNS)},'")
    header = _fields(lines[0])
    form = _form(path, header)
    names = GEMM_COLUMNS if form == "gemm" else CONV_COLUMNS
    width = len(names)
    layers: list[GemmLayer] = []
    seen: dict[str, int] = {}
    renamed: list[str] = []
    patterns: dict[str, list[str]] = {}
    ignored: dict[int, str] = {}
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = _fields(line)
        if not any(fields):
            continue                            # ",,,,,,,,": an empty spreadsheet row
        if len(fields) < width:
            raise TopologyError(f"{path}:{no}: {len(fields)} columns is not allowed: a {form} row has {width} "
                                f"({', '.join(names)}), then optionally "
                                + ("Sparsity (N:M)" if form == "gemm" else "Sparsity (N:M) or a stride width")
                                + f"; this row is {line.strip()[:60]!r}")
        name = fields[0]
        vals = [_int(path, no, i + 1, names[i], fields[i]) for i in range(1, width)]
        stride_w = None
        nm: tuple[int, int] | None = None
        for j, extra in enumerate(fields[width:]):
            col = width + 1 + j
            named = header[col - 1] if col - 1 < len(header) else ""
            low = named.lower()
            if j == 0 and ("sparsity" in low or (not low and ":" in extra)):
                nm = _sparsity(path, no, col, extra) if extra else None
            elif j == 0 and form == "conv" and ("stride" in low or (not low and extra.isdigit())):
                stride_w = _int(path, no, col, named or "Stride width", extra) if extra else None
            elif extra:
                ignored.setdefault(col, named)
        prunable = nm is None or nm[0] != nm[1]
        if nm is not None and nm[0] != nm[1]:
            patterns.setdefault(f"{nm[0]}:{nm[1]}", []).append(name or f"line {no}")
        if form == "gemm":
            m, n, k = vals
            rows = [(name, partial(gemm_layer, m=m, n=n, k=k, prunable=prunable))]
        else:
            h, w, fh, fw, ch, nf, stride = vals
            if fh > h or fw > w:
                dim, f, i = ("height", fh, h) if fh > h else ("width", fw, w)
                raise TopologyError(f"{path}:{no}: filter {dim} {f} is larger than the IFMAP {dim} {i}, which is "
                                    "not allowed (SCALE-Sim refuses it too; it does not pad)")
            if "DP" in name:                    # SCALE-Sim's depthwise convention: one layer per channel
                one = partial(conv_layer, h=h, w=w, fh=fh, fw=fw, ch=1, nf=nf, stride=stride, stride_w=stride_w,
                              prunable=prunable)
                rows = [(f"{name}Channel_{c}", one) for c in range(ch)]
            else:
                rows = [(name, partial(conv_layer, h=h, w=w, fh=fh, fw=fw, ch=ch, nf=nf, stride=stride,
                                       stride_w=stride_w, prunable=prunable))]
        if len(layers) + len(rows) > MAX_TOPOLOGY_LAYERS:
            raise TopologyError(f"{path}:{no}: more than {MAX_TOPOLOGY_LAYERS} layers is not allowed in one topology")
        for lname, build in rows:
            base = lname or f"layer{len(layers)}"
            count = seen.get(base, 0) + 1
            seen[base] = count
            unique = base if count == 1 else f"{base}_{count}"
            while unique in seen and count > 1:
                count += 1
                unique = f"{base}_{count}"
            if unique != base:
                seen[unique] = 1
                renamed.append(f"{base!r} (line {no}) -> {unique!r}")
            layers.append(build(unique))
    if not layers:
        raise TopologyError(f"{path}: no layers: the file has a header and no rows")
    notes: list[str] = []
    if renamed:
        notes.append(f"{path.name}: layer names must be unique here, so repeated names were renamed: "
                     + "; ".join(renamed[:5]) + (f"; and {len(renamed) - 5} more" if len(renamed) > 5 else ""))
    if ignored:
        cols = ", ".join(f"{c}" + (f" ({h})" if h else "") for c, h in sorted(ignored.items()))
        notes.append(f"{path.name}: column(s) {cols} are not SCALE-Sim topology columns: their values were ignored")
    if patterns:
        listed = "; ".join(f"{p}: {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}" for p, v in patterns.items())
        notes.append(f"{path.name}: the Sparsity column marks which layers are pruned ({listed}); layers marked 1:1 "
                     "stay dense. The pattern simulated is --sparsity's (or the array's n:m), not each row's")
    stem = path.name[:-4] if path.name.lower().endswith(".csv") else path.stem
    return Topology(network=Network(name=stem or "topology", layers=tuple(layers)), form=form, notes=tuple(notes))
