"""The disk cache of expensive results: Verilog generation, synthesis runs and MoE routing.

An entry is a folder ``<cache>/<kind>/<key>/`` holding ``meta.json`` (what was computed, how
long it took, when) and the result's files. Keys are SHA-256 digests (32 hex digits) of
everything the result depends on, spelled out by the caller: the spec's digest, the
inputs, the tool versions, a fingerprint of the generator's source. An entry is written
into a temporary folder beside its place and renamed into it in one step, so a reader
never sees half an entry, a killed run leaves at most a temporary folder (removed by
:func:`clean`), and two processes computing the same entry at once both succeed (the
second rename loses and its copy is dropped). An unreadable entry is a miss.

The cache folder is ``$SPARSEFORGE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/sparseforge``,
else ``~/.cache/sparseforge`` (the XDG base-directory layout, as platformdirs has it on
Linux). Every command that uses the cache takes ``--no-cache`` (compute again, store
nothing); ``rm -rf ~/.cache/sparseforge`` empties it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["cache_dir", "make_key", "versions", "Entry", "lookup", "store", "clean", "saved_line"]


def cache_dir() -> Path:
    """The sparseforge cache folder (not created here)."""
    env = os.environ.get("SPARSEFORGE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "sparseforge"


@functools.lru_cache(maxsize=None)
def versions(*dists: str) -> dict[str, str | None]:
    """The installed version of each distribution (None when it is not installed): the tool
    versions a cache key, or a record of what produced a result, names."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def make_key(kind: str, parts: Mapping[str, Any]) -> str:
    """32 hex digits of SHA-256 over ``kind`` and ``parts`` (JSON, keys sorted): the same
    inputs give the same key on every machine and Python version."""
    blob = json.dumps({"kind": kind, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Entry:
    """A cache entry: its folder, its metadata (``seconds``: what computing it took) and
    the names of its files."""

    path: Path
    meta: dict[str, Any]

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    @property
    def seconds(self) -> float:
        s = self.meta.get("seconds")
        return float(s) if isinstance(s, (int, float)) else 0.0


def _where(kind: str, key: str) -> Path:
    return cache_dir() / kind / key


def lookup(kind: str, key: str, files: tuple[str, ...] = ()) -> Entry | None:
    """The entry of ``kind``/``key`` if it is complete (its ``meta.json`` reads and every
    name in ``files`` is there); None otherwise."""
    path = _where(kind, key)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not all((path / f).is_file() for f in files):
        return None
    return Entry(path=path, meta=meta)


def store(kind: str, key: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Entry | None:
    """Write an entry (``files``: name -> bytes, names without folders) in one step; returns
    it, or None when the cache folder cannot be written (the result is then simply not
    cached: caching never fails the work it caches)."""
    where = _where(kind, key)
    record = {**meta, "kind": kind, "key": key, "stored": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = None
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=where.parent))
        for name, data in files.items():
            if "/" in name or name in ("", ".", "..", "meta.json"):
                raise ValueError(f"cache file name {name!r} is not allowed")
            (tmp / name).write_bytes(data)
        (tmp / "meta.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        try:
            os.rename(tmp, where)
            tmp = None
        except OSError:
            if lookup(kind, key, tuple(files)) is None:    # a damaged entry, not another writer's complete one
                shutil.rmtree(where, ignore_errors=True)
                os.rename(tmp, where)
                tmp = None
        return Entry(path=where, meta=record)
    except OSError:
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def clean(kind: str, older_than_s: float = 3600.0) -> int:
    """Remove temporary folders of ``kind`` left by killed runs (older than
    ``older_than_s``); returns how many."""
    removed = 0
    folder = cache_dir() / kind
    now = time.time()
    for p in folder.glob(".*") if folder.is_dir() else ():
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
        except OSError:
            pass
    return removed


def saved_line(what: str, entry: Entry, seconds_now: float) -> str:
    """The line that says a result came from the cache and what that saved."""
    return (f"{what}: from the cache ({entry.path}), {seconds_now:.1f} s instead of {entry.seconds:.1f} s "
            f"(saved {max(0.0, entry.seconds - seconds_now):.1f} s; --no-cache recomputes)")
