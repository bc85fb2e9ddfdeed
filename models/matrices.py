"""Sparse matrices for SpGEMM: file loaders, built-in real matrices, and the golden product.

Every loader returns a :class:`NamedMatrix` holding a canonical SciPy CSR matrix: duplicate
entries summed, column indices sorted within each row, explicit zeros removed, values
``int64`` when the source is integer and ``float64`` otherwise. Canonical form matters: the
row-wise, outer and inner dataflows of :mod:`dataflow.spgemm` all add the products of one
output entry in ascending ``k``, which is the order SciPy's own SpGEMM uses, so integer
results are exact and float results agree to rounding (in practice bit for bit).

Sources (:func:`load_matrix`):

- a MatrixMarket file (``.mtx``, or gzip-compressed ``.mtx.gz``; coordinate or array; real,
  integer or pattern; general, symmetric or skew-symmetric), read with :func:`scipy.io.mmread`;
- a SuiteSparse Matrix Collection archive (``NAME.tar.gz``: ``NAME/NAME.mtx`` and optional
  ``NAME/NAME_*.mtx`` auxiliaries), whose main matrix is read from the archive in memory
  (:func:`read_matrix_archive`);
- a ``.npz`` written by :func:`scipy.sparse.save_npz`;
- a METIS graph file (``.graph``; text format, 1-based adjacency lists, optional vertex
  sizes/weights and edge weights), read by :func:`read_metis` into the adjacency matrix
  (edge weights as values, 1 when the file has none);
- a built-in name (:data:`BUILTINS`): SciPy's ``illc1850`` (1850 x 712, shipped in the SciPy
  wheel as a PROPACK test matrix), the pyamg examples (``airfoil``, ``bar``, ``knot``,
  ``recirc_flow``, ``unit_square``, ``unit_cube``; needs ``pyamg``), the METIS example graphs
  of Debian's ``libmetis-doc`` (``4elt``, ``copter2``, ``mdual``), and real MiniLM operands:
  magnitude-pruned int8 FFN weights and ReLU-sparsified int8 activations.

Any name may end in ``.T`` for the transpose (``illc1850.T``), so ``A @ A.T`` of a
rectangular matrix is one command. Bad files raise :class:`MatrixError` with one line that
names the file, the line where known, and what is wrong.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from sparseforge.errors import InputError

__all__ = [
    "MatrixError", "NamedMatrix", "BUILTINS", "METIS_DIR", "load_matrix", "read_matrix_market",
    "read_npz", "read_metis", "read_matrix_archive", "is_matrix_archive", "canonical", "golden_spgemm",
    "check_product_shapes",
    "prune_unstructured", "builtin_available", "product_count", "MAX_DIM", "MAX_NNZ", "MAX_PRODUCTS",
    "MAX_METIS_BYTES",
]

#: where Debian's ``libmetis-doc`` puts the METIS example graphs
METIS_DIR = Path("/usr/share/doc/libmetis-dev/examples/graphs")

# Request limits, checked before anything is allocated (docs/spec.md, "Request limits"). The
# simulators keep about ten numbers per row and about 150 bytes per partial product; the
# largest built-in (copter2 x copter2, 55,476 rows, 9.9M products) peaks at 1.7 GB.
#: rows or columns of a matrix (16.8M; the largest built-in, mdual, has 258,569)
MAX_DIM = 1 << 24
#: stored entries of a matrix file (33.6M; copter2 has 704,476)
MAX_NNZ = 1 << 25
#: partial products of A x B (33.6M, about 5 GB while simulated; the built-ins need at most 10.1M)
MAX_PRODUCTS = 1 << 25
#: size of a METIS graph file (its text reader holds every token as a Python string; mdual's
#: file is 7 MB)
MAX_METIS_BYTES = 1 << 28


class MatrixError(InputError):
    """A matrix source is missing, malformed or unsuitable; the message is one line."""


@dataclass(frozen=True, eq=False)
class NamedMatrix:
    """A canonical CSR matrix with where it came from."""

    name: str
    matrix: sp.csr_matrix
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def is_integer(self) -> bool:
        return bool(np.issubdtype(self.matrix.dtype, np.integer))

    def transpose(self) -> "NamedMatrix":
        return NamedMatrix(name=f"{self.name}.T", matrix=canonical(self.matrix.T), source=f"{self.source}, transposed")


# ------------------------------------------------------------------ canonical form
def canonical(m: sp.spmatrix | sp.sparray, *, what: str = "matrix") -> sp.csr_matrix:
    """``m`` as canonical CSR: summed duplicates, sorted indices, no explicit zeros,
    ``int64`` or ``float64`` values, ``int64`` index arrays. Complex or non-finite values
    raise :class:`MatrixError`."""
    csr = sp.csr_matrix(m)
    if np.iscomplexobj(csr.data):
        raise MatrixError(f"{what} has complex values: only real and integer matrices are supported")
    if csr.dtype == np.bool_ or np.issubdtype(csr.dtype, np.integer):
        csr = csr.astype(np.int64)
    else:
        csr = csr.astype(np.float64)
        if not np.all(np.isfinite(csr.data)):
            bad = csr.data[~np.isfinite(csr.data)][0]
            raise MatrixError(f"{what} has a value {bad} (NaN, or a number beyond the float range such as 1e309): "
                              "only finite values are allowed")
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    csr.indptr = csr.indptr.astype(np.int64)
    csr.indices = csr.indices.astype(np.int64)
    return csr


# ------------------------------------------------------------------ file loaders
def _check_size(path: Path | str, rows: int, cols: int, entries: int, *, where: str = "") -> None:
    """Refuse a matrix whose declared shape or entry count is over the limits, before it is
    read: one line naming the file, the value and the limit."""
    if min(rows, cols) < 0 or entries < 0:
        raise MatrixError(f"{path}{where}: declares {rows} x {cols} with {entries} entries: sizes must be >= 0")
    for what, v, limit in (("rows", rows, MAX_DIM), ("columns", cols, MAX_DIM), ("entries", entries, MAX_NNZ)):
        if v > limit:
            raise MatrixError(f"{path}{where}: {v} {what} is not allowed: at most {limit} "
                              f"(declared {rows} x {cols}, nnz {entries})")


def _mm_header(path: Path) -> tuple[bytes, int, int, int]:
    """The banner, and rows, columns and stored entries a MatrixMarket file declares (its
    size line), read without reading the body; a dense ``array`` file stores rows x cols.
    A ``.gz`` file is read through gzip."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return _mm_header_stream(f, str(path))
    except (OSError, EOFError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise MatrixError(f"matrix file {str(path)!r} cannot be read: {why}") from None


def _mm_header_stream(f, where: str) -> tuple[bytes, int, int, int]:
    """:func:`_mm_header` of an open binary stream; ``where`` names it in messages."""
    banner = f.readline(1024)
    if not banner.lower().startswith(b"%%matrixmarket"):
        raise MatrixError(f"{where}: not a MatrixMarket file: line 1 must start with '%%MatrixMarket'")
    for no in range(2, 1_000_002):
        line = f.readline(1024)
        if not line:
            raise MatrixError(f"{where}: malformed MatrixMarket file: no size line after the comments")
        if line.startswith(b"%") or not line.strip():
            continue
        if not line.endswith(b"\n") and len(line) >= 1024:
            raise MatrixError(f"{where}:{no}: malformed MatrixMarket size line: longer than 1024 bytes")
        break
    else:
        raise MatrixError(f"{where}: malformed MatrixMarket file: more than a million comment lines")
    try:
        sizes = [int(v) for v in line.split()]
    except ValueError:
        sizes = []
    dense = b" array" in banner.lower()
    if len(sizes) != (2 if dense else 3):
        shown = line.decode("latin-1").strip()[:60]
        raise MatrixError(f"{where}:{no}: malformed MatrixMarket size line {shown!r}: must be "
                          + ("'rows cols'" if dense else "'rows cols entries'"))
    rows, cols = sizes[0], sizes[1]
    entries = rows * cols if dense else sizes[2]
    return banner, rows, cols, entries


def read_matrix_market(path: str | Path) -> sp.csr_matrix:
    """A MatrixMarket file as canonical CSR (SciPy's reader; its errors become
    :class:`MatrixError` naming the file). The declared size is checked against
    :data:`MAX_DIM` and :data:`MAX_NNZ` first, so a header declaring 50M rows is refused
    before SciPy allocates for it."""
    import scipy.io

    path = Path(path)
    banner, rows, cols, entries = _mm_header(path)
    symmetric = any(w in banner.lower() for w in (b"symmetric", b"hermitian"))
    _check_size(path, rows, cols, entries * (2 if symmetric else 1))
    try:
        m = scipy.io.mmread(str(path))
    except Exception as exc:  # SciPy raises ValueError and friends with a line number
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MatrixError(f"{path}: malformed MatrixMarket file: {msg}") from None
    if not sp.issparse(m):
        m = sp.csr_matrix(np.asarray(m))
    return canonical(m, what=str(path))


#: most members a matrix archive may list (SuiteSparse bundles hold a handful)
MAX_ARCHIVE_MEMBERS = 10_000
#: largest MatrixMarket member read from an archive, uncompressed (MAX_NNZ entries of about
#: 60 bytes of text each)
MAX_ARCHIVE_MEMBER_BYTES = 1 << 31
#: suffixes of the archives :func:`read_matrix_archive` reads
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_matrix_archive(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`ARCHIVE_SUFFIXES` (any case)."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    low = path.name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return path.name[:-len(suffix)]
    return path.stem


def _main_member(path: Path, mtx: list["tarfile.TarInfo"]) -> "tarfile.TarInfo":
    """The matrix of a SuiteSparse bundle: ``NAME/NAME.mtx`` (NAME the archive's name, or the
    one folder whose file is named after it); the ``NAME_*.mtx`` auxiliaries (right-hand sides,
    coordinates, ...) are not it. A single ``.mtx`` member is the matrix too."""
    stem = _archive_stem(path)
    by_name = [m for m in mtx if m.name == f"{stem}/{stem}.mtx" or m.name == f"{stem}.mtx"]
    if len(by_name) == 1:
        return by_name[0]
    named_after_folder = [m for m in mtx if "/" in m.name
                          and m.name.rsplit("/", 1)[1] == m.name.rsplit("/", 2)[-2] + ".mtx"]
    if len(named_after_folder) == 1:
        return named_after_folder[0]
    if len(mtx) == 1:
        return mtx[0]
    listed = ", ".join(m.name for m in mtx[:6]) + (" ..." if len(mtx) > 6 else "")
    raise MatrixError(f"{path}: cannot tell which of its {len(mtx)} .mtx members is the matrix ({listed}): a "
                      f"SuiteSparse bundle holds NAME/NAME.mtx; expected {stem}/{stem}.mtx")


def read_matrix_archive(path: str | Path) -> tuple[sp.csr_matrix, str]:
    """The matrix of a SuiteSparse archive (``NAME.tar.gz`` holding ``NAME/NAME.mtx`` and
    optional ``NAME/NAME_*.mtx`` auxiliaries; also ``.tgz`` and ``.tar``) as canonical CSR, and
    the member it came from. Nothing is extracted to disk: the member is read from the archive in
    memory, only regular-file members are considered (links, devices and folders are not), its
    declared size is checked against :data:`MAX_DIM` / :data:`MAX_NNZ` from its header first,
    and its uncompressed size against :data:`MAX_ARCHIVE_MEMBER_BYTES`."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise MatrixError(f"matrix file {str(path)!r} does not exist")
    try:
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise MatrixError(f"{path}: not a readable tar archive (SuiteSparse's NAME.tar.gz): {why}") from None
    with tf:
        mtx = []
        try:
            for count, member in enumerate(tf, start=1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise MatrixError(f"{path}: more than {MAX_ARCHIVE_MEMBERS} members is not allowed in a matrix "
                                      "archive")
                if member.isfile() and member.name.lower().endswith(".mtx"):
                    mtx.append(member)
        except (tarfile.TarError, OSError, EOFError) as exc:
            why = str(exc) or type(exc).__name__
            raise MatrixError(f"{path}: damaged tar archive: {why}") from None
        if not mtx:
            raise MatrixError(f"{path}: the archive holds no .mtx file: a SuiteSparse bundle holds NAME/NAME.mtx")
        member = _main_member(path, mtx)
        where = f"{path}[{member.name}]"
        if member.size > MAX_ARCHIVE_MEMBER_BYTES:
            raise MatrixError(f"{where}: {member.size} bytes uncompressed is not allowed: a member is at most "
                              f"{MAX_ARCHIVE_MEMBER_BYTES} bytes")
        try:
            with tf.extractfile(member) as f:
                banner, rows, cols, entries = _mm_header_stream(f, where)
            symmetric = any(w in banner.lower() for w in (b"symmetric", b"hermitian"))
            _check_size(where, rows, cols, entries * (2 if symmetric else 1))
            with tf.extractfile(member) as f:
                m = scipy.io.mmread(f)
        except MatrixError:
            raise
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise MatrixError(f"{where}: damaged tar archive: {str(exc) or type(exc).__name__}") from None
        except Exception as exc:  # SciPy's parse errors
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MatrixError(f"{where}: malformed MatrixMarket file: {msg}") from None
    if not sp.issparse(m):
        m = sp.csr_matrix(np.asarray(m))
    return canonical(m, what=where), member.name


def _npz_sizes(path: Path) -> tuple[int, int, int]:
    """Rows, columns and stored values a ``save_npz`` file holds, from its ``shape`` array
    and the ``data`` member's header, without loading the matrix."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not {"shape.npy", "data.npy"} <= names:
                raise MatrixError(f"{path}: not a scipy.sparse.save_npz file: it lacks "
                                  + ", ".join(n[:-4] for n in sorted({"shape.npy", "data.npy"} - names)))
            with z.open("data.npy") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                data_shape = read(f)[0]
            if z.getinfo("shape.npy").file_size > 4096:
                raise MatrixError(f"{path}: not a scipy.sparse.save_npz file: its shape array is too large")
            with z.open("shape.npy") as f:
                shape = np.lib.format.read_array(f, allow_pickle=False)
    except MatrixError:
        raise
    except Exception as exc:  # not a zip, a truncated member, a bad header ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MatrixError(f"{path}: not a scipy.sparse.save_npz file: {msg[:200]}") from None
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or len(data_shape) != 1:
        raise MatrixError(f"{path}: not a scipy.sparse.save_npz file: shape must be two integers and data 1-D")
    return int(shape[0]), int(shape[1]), int(data_shape[0])


def read_npz(path: str | Path) -> sp.csr_matrix:
    """A ``scipy.sparse.save_npz`` file as canonical CSR (shape and entry count checked
    against the limits from the file's headers first)."""
    path = Path(path)
    if not path.is_file():
        raise MatrixError(f"matrix file {str(path)!r} does not exist")
    rows, cols, entries = _npz_sizes(path)
    _check_size(path, rows, cols, entries)
    try:
        m = sp.load_npz(str(path))
    except Exception as exc:  # not a zip, wrong keys, pickled content ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MatrixError(f"{path}: not a scipy.sparse.save_npz file: {msg}") from None
    return canonical(m, what=str(path))


def read_metis(path: str | Path) -> sp.csr_matrix:
    """A METIS graph file as its (symmetric) adjacency matrix in canonical CSR.

    Format (METIS 5 manual, section 4.1.1): ``%`` lines are comments; the header is
    ``n m [fmt [ncon]]``; then one line per vertex listing ``[size] [w_1..w_ncon]``
    followed by its neighbours (1-based), each followed by an edge weight when ``fmt`` ends
    in 1. Every edge appears in both endpoints' lines, so the file lists ``2 m`` neighbours.
    Values are the edge weights, or 1.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_METIS_BYTES:
            raise MatrixError(f"{path}: a METIS file of {size} bytes is not allowed: at most {MAX_METIS_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise MatrixError(f"METIS file {str(path)!r} cannot be read: {why}") from None
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), start=1) if not ln.lstrip().startswith("%")]
    if not lines:
        raise MatrixError(f"{path}: empty METIS file: expected a header line 'n m [fmt [ncon]]'")
    hno, header = lines[0]
    try:
        head = [int(v) for v in header.split()]
    except ValueError:
        raise MatrixError(f"{path}:{hno}: METIS header {header.strip()!r} must be integers 'n m [fmt [ncon]]'") from None
    if not 2 <= len(head) <= 4 or head[0] < 1 or head[1] < 0:
        raise MatrixError(f"{path}:{hno}: METIS header {header.strip()!r} must be 'n m [fmt [ncon]]' with n >= 1, m >= 0")
    n, m = head[0], head[1]
    _check_size(path, n, n, 2 * m, where=f":{hno}")
    fmt = f"{head[2]:03d}" if len(head) > 2 else "000"
    if len(fmt) != 3 or set(fmt) - {"0", "1"}:
        raise MatrixError(f"{path}:{hno}: METIS fmt {head[2]} is not allowed: three digits of 0/1")
    has_size, has_vw, has_ew = fmt[0] == "1", fmt[1] == "1", fmt[2] == "1"
    ncon = head[3] if len(head) > 3 else (1 if has_vw else 0)
    body = lines[1:]
    # a trailing blank line is not a vertex; an isolated vertex is an empty line inside the body
    while body and not body[-1][1].strip() and len(body) > n:
        body.pop()
    if len(body) != n:
        raise MatrixError(f"{path}: METIS header says {n} vertices but the file has {len(body)} vertex lines")
    skip = int(has_size) + (ncon if has_vw else 0)
    step = 2 if has_ew else 1
    counts = np.empty(n, dtype=np.int64)
    chunks: list[str] = []
    for v, (no, ln) in enumerate(body):
        fields = ln.split()
        if len(fields) < skip or (len(fields) - skip) % step:
            raise MatrixError(f"{path}:{no}: vertex {v + 1} has {len(fields)} fields: expected {skip} vertex "
                              f"field(s) then {'(neighbour, weight) pairs' if has_ew else 'neighbours'}")
        counts[v] = (len(fields) - skip) // step
        chunks.append(" ".join(fields[skip:]))
    try:
        flat = np.array(" ".join(chunks).split(), dtype=np.int64)
    except ValueError:
        bad = next(no for (no, ln) in body if any(not t.lstrip("-").isdigit() for t in ln.split()))
        raise MatrixError(f"{path}:{bad}: METIS adjacency lists must hold integers") from None
    nbr = flat[0::step]
    wgt = flat[1::step] if has_ew else np.ones_like(nbr)
    if nbr.size and (nbr.min() < 1 or nbr.max() > n):
        pos = int(np.flatnonzero((nbr < 1) | (nbr > n))[0])
        v = int(np.searchsorted(np.cumsum(counts), pos, side="right"))
        raise MatrixError(f"{path}:{body[v][0]}: vertex {v + 1} lists neighbour {int(nbr[pos])}, "
                          f"outside 1..{n}")
    if nbr.size != 2 * m:
        raise MatrixError(f"{path}: METIS header says {m} edges but the adjacency lists hold {nbr.size} "
                          f"neighbours (expected 2 x {m} = {2 * m})")
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    adj = canonical(sp.csr_matrix((wgt, (rows, nbr - 1)), shape=(n, n)), what=str(path))
    asym = adj != adj.T
    if asym.nnz:
        coo = asym.tocoo()
        i, j = int(coo.row[0]) + 1, int(coo.col[0]) + 1
        raise MatrixError(f"{path}: METIS graph is not symmetric: edge {i}-{j} is not listed the same way "
                          f"(with the same weight) at vertex {j}")
    return adj


# ------------------------------------------------------------------ built-ins
def _illc1850() -> tuple[sp.csr_matrix, str]:
    import scipy

    path = Path(scipy.__file__).parent / "sparse" / "linalg" / "tests" / "propack_test_data.npz"
    if not path.is_file():
        raise MatrixError(f"built-in illc1850 needs SciPy's test data {path}, which this SciPy lacks")
    # the file ships inside the SciPy wheel and stores a pickled coo_matrix (SciPy's own
    # test reads it the same way); nothing user-supplied is unpickled here
    with np.load(path, allow_pickle=True) as data:
        m = data["A_real"].item()
    return canonical(m, what="illc1850"), f"SciPy {scipy.__version__} {path.name}[A_real] (Harwell-Boeing ILLC1850)"


def _pyamg(name: str) -> Callable[[], tuple[sp.csr_matrix, str]]:
    def load() -> tuple[sp.csr_matrix, str]:
        try:
            import pyamg
        except ImportError:
            raise MatrixError(f"built-in {name} needs pyamg: pip install 'pyamg>=5'") from None
        return canonical(pyamg.gallery.load_example(name)["A"], what=name), \
            f"pyamg {pyamg.__version__} gallery.load_example({name!r})"
    return load


def _metis(name: str) -> Callable[[], tuple[sp.csr_matrix, str]]:
    def load() -> tuple[sp.csr_matrix, str]:
        path = METIS_DIR / f"{name}.graph"
        if not path.is_file():
            raise MatrixError(f"built-in {name} needs {path}: apt-get install libmetis-doc")
        return read_metis(path), f"METIS graph {path}"
    return load


def prune_unstructured(w: np.ndarray, *, density: float) -> np.ndarray:
    """Keep the ``round(density * w.size)`` entries of largest magnitude (ties broken by
    position), zero the rest: unstructured magnitude pruning of a whole matrix."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density = {density} is not allowed: must be in (0, 1]")
    keep = int(round(density * w.size))
    order = np.argsort(-np.abs(w).ravel(), kind="stable")
    out = np.zeros_like(w)
    out.ravel()[order[:keep]] = w.ravel()[order[:keep]]
    return out


_HF_FFN = {"up": "intermediate.dense", "down": "output.dense"}


def _minilm_weight(which: str) -> Callable[[], tuple[sp.csr_matrix, str]]:
    def load() -> tuple[sp.csr_matrix, str]:
        from .minilm import load_weights
        from .quant import quantize_per_channel

        try:
            w = load_weights()[f"encoder.layer.0.{_HF_FFN[which]}.weight"]
        except FileNotFoundError as exc:
            raise MatrixError(str(exc)) from None
        q, _ = quantize_per_channel(prune_unstructured(w, density=0.1), axis=0)
        return canonical(q.astype(np.int64), what=f"minilm-ffn-{which}"), \
            (f"all-MiniLM-L6-v2 layer 0 ffn.{which} weight {w.shape[0]}x{w.shape[1]}, 90% unstructured "
             "magnitude pruning, int8 per-channel")
    return load


def _minilm_acts(which: str) -> Callable[[], tuple[sp.csr_matrix, str]]:
    layer = {"ln": "layer0.ffn.up", "gelu": "layer0.ffn.down"}[which]

    def load() -> tuple[sp.csr_matrix, str]:
        from .pipeline import pruned_minilm

        try:
            x = pruned_minilm(2, 4).layer(layer).x_q  # [T, K] int8, real text through the 2:4 int8 network
        except FileNotFoundError as exc:
            raise MatrixError(str(exc)) from None
        relu = np.maximum(x.astype(np.int64), 0).T     # [K, T]: the right operand of W @ X^T
        return canonical(relu, what=f"minilm-{which}-acts"), \
            (f"ReLU of the real int8 input activations of {layer} (2:4 MiniLM, {x.shape[0]} tokens of the "
             f"sample text), transposed to {relu.shape[0]}x{relu.shape[1]}")
    return load


#: built-in name -> loader returning (canonical CSR, source description)
BUILTINS: dict[str, Callable[[], tuple[sp.csr_matrix, str]]] = {
    "illc1850": _illc1850,
    **{n: _pyamg(n) for n in ("airfoil", "bar", "knot", "recirc_flow", "unit_square", "unit_cube")},
    **{n: _metis(n) for n in ("4elt", "copter2", "mdual")},
    "minilm-ffn-up": _minilm_weight("up"),        # 1536 x 384
    "minilm-ffn-down": _minilm_weight("down"),    # 384 x 1536
    "minilm-ln-acts": _minilm_acts("ln"),         # 384 x T: right operand of minilm-ffn-up
    "minilm-gelu-acts": _minilm_acts("gelu"),     # 1536 x T: right operand of minilm-ffn-down
}


def builtin_available(name: str) -> bool:
    """Whether built-in ``name`` can load here (its package or file is installed)."""
    if name in ("airfoil", "bar", "knot", "recirc_flow", "unit_square", "unit_cube"):
        try:
            import pyamg  # noqa: F401
        except ImportError:
            return False
        return True
    if name in ("4elt", "copter2", "mdual"):
        return (METIS_DIR / f"{name}.graph").is_file()
    return name in BUILTINS


_CACHE: dict[str, tuple[sp.csr_matrix, str]] = {}


def load_matrix(spec: str) -> NamedMatrix:
    """Load a built-in name or a file (by suffix: ``.mtx``/``.mtx.gz``, a SuiteSparse
    ``.tar.gz``/``.tgz``/``.tar`` bundle, ``.npz``, ``.graph``/``.metis``).
    A trailing ``.T`` on a built-in name transposes it."""
    if not isinstance(spec, str) or not spec:
        raise MatrixError("matrix name must be a non-empty string")
    if spec.endswith(".T") and spec[:-2] in BUILTINS:
        return load_matrix(spec[:-2]).transpose()
    if spec in BUILTINS:
        if spec not in _CACHE:
            _CACHE[spec] = BUILTINS[spec]()
        m, src = _CACHE[spec]
        return NamedMatrix(name=spec, matrix=m.copy(), source=src)
    path = Path(spec)
    suffix = path.suffix.lower()
    if is_matrix_archive(path.name):
        if not path.is_file():
            raise MatrixError(f"matrix file {spec!r} does not exist")
        m, member = read_matrix_archive(path)
        return NamedMatrix(name=_archive_stem(path), matrix=m, source=f"{os.path.abspath(path)}[{member}]")
    if suffix in (".mtx", ".mm") or path.name.lower().endswith(".mtx.gz"):
        reader = read_matrix_market
    elif suffix == ".npz":
        reader = read_npz
    elif suffix in (".graph", ".metis"):
        reader = read_metis
    else:
        raise MatrixError(f"matrix {spec!r} is not a built-in ({', '.join(BUILTINS)}) nor a file ending in "
                          ".mtx, .mtx.gz, .tar.gz (a SuiteSparse bundle), .npz or .graph")
    if not path.is_file():
        raise MatrixError(f"matrix file {spec!r} does not exist")
    name = path.name[:-len(".mtx.gz")] if path.name.lower().endswith(".mtx.gz") else path.stem
    return NamedMatrix(name=name, matrix=reader(path), source=str(os.path.abspath(path)))


# ------------------------------------------------------------------ golden
def check_product_shapes(a: NamedMatrix, b: NamedMatrix, *, b_given: bool = True) -> None:
    """Raise :class:`MatrixError` unless ``a @ b`` is defined. ``b_given=False`` means B
    defaulted to A, so the message says that A x A needs a square A."""
    if not b_given and a.shape[0] != a.shape[1]:
        raise MatrixError(f"A = {a.name} is {a.shape[0]}x{a.shape[1]}, not square, so A x A is undefined: "
                          f"give --b (e.g. --b {a.name}.T)")
    if a.shape[1] != b.shape[0]:
        raise MatrixError(f"shape mismatch: A = {a.name} is {a.shape[0]}x{a.shape[1]} and B = {b.name} is "
                          f"{b.shape[0]}x{b.shape[1]}: A's {a.shape[1]} columns must equal B's {b.shape[0]} rows")
    for nm in (a, b):
        _check_size(nm.name, nm.shape[0], nm.shape[1], nm.nnz)
    count = product_count(a.matrix, b.matrix)
    if count > MAX_PRODUCTS:
        raise MatrixError(f"A x B = {a.name} x {b.name} has {count} partial products, which is not allowed: at most "
                          f"{MAX_PRODUCTS} (about 150 bytes each while simulated)")
    if a.is_integer and b.is_integer and a.nnz and b.nnz:
        amax = max(int(a.matrix.data.max()), -int(a.matrix.data.min()))
        bmax = max(int(b.matrix.data.max()), -int(b.matrix.data.min()))
        longest = int(np.diff(a.matrix.indptr).max())
        if amax * bmax * longest >= 1 << 63:
            raise MatrixError(f"A x B = {a.name} x {b.name} could overflow 64-bit integers: values up to {amax} "
                              f"and {bmax}, {longest} products per output entry; scale the values down")


def product_count(a: sp.csr_matrix, b: sp.csr_matrix) -> int:
    """Partial products of ``a @ b``: every stored ``a[i, k]`` meets every stored ``b[k, j]``
    (the work of every dataflow, counted without forming any product)."""
    per_k = np.bincount(a.indices, minlength=a.shape[1]).astype(np.int64)
    return int(per_k @ np.diff(b.indptr).astype(np.int64))


def golden_spgemm(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """SciPy's ``A @ B`` in canonical form: the reference every dataflow and the RTL match."""
    if a.shape[1] != b.shape[0]:
        raise MatrixError(f"shape mismatch: {a.shape[0]}x{a.shape[1]} times {b.shape[0]}x{b.shape[1]}")
    return canonical(a @ b, what="A @ B")
