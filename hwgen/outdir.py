"""Safe replacement of a design folder and of files in it: one lock, one atomic swap, no litter.

Used by :mod:`sparseforge.hwgen.emit` (writing ``<out>/<NAME>/``) and
:mod:`sparseforge.hwgen.synth` (writing ``<NAME>/synth/`` and ``<NAME>/synth.json``). The
rules, for a design folder ``P/NAME``:

* **Lock.** Every run that changes ``P/NAME`` holds an exclusive ``fcntl.flock`` on the lock
  file ``P/.NAME.lock`` while it changes it. A second run waits for it (up to a timeout, then
  refuses with one line). The lock file is removed when the holder is done (the waiter then
  sees that its lock file is gone and locks the new one), so a finished run leaves none.
* **Temporary entries** live beside the folder and carry their owner's pid:
  ``P/.NAME.<kind>.<pid>.<random>`` (kind ``tmp``: a folder being built or an old one being
  deleted; ``old``: the old folder moved aside by the fallback swap; ``synth``: a synthesis
  work folder). Before changing ``P/NAME`` a run (holding the lock) removes the entries of dead owners, and
  of any owner after :data:`STALE_AFTER_S`; a stranded ``old`` folder is first put back in
  place when ``P/NAME`` is missing (a fallback swap killed between its two renames). Files
  inside a folder are written with :func:`sparseforge.fileio.write_atomic`, whose own
  temporaries (``.<file>.sftmp-<pid>-...``) it cleans itself.
* **Swap.** The new folder is built completely under a temporary name, then exchanged with
  the old one in one ``renameat2(RENAME_EXCHANGE)`` system call (Linux >= 3.15; glibc >=
  2.28), and the old one (now under the temporary name) is deleted. Where the call is missing
  or the file system refuses it, the fallback renames the old folder aside and the new one in
  (two renames; killed between them, the next run puts the old folder back). SIGINT, SIGTERM
  and SIGHUP are held back during the swap, so Ctrl-C lands before or after it, never inside.
* **Modes** follow the umask, as a plain ``mkdir``/``open`` would.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "STALE_AFTER_S",
    "clean_stale",
    "link_tree",
    "lock_folder",
    "make_temp_dir",
    "pid_alive",
    "read_json",
    "remove_tree",
    "rtl_sha256",
    "swap_in",
]

#: Age after which a temporary entry is removed even if its pid is alive (pids are reused):
#: no single generate or synthesis run of a design within the cost limits takes this long.
STALE_AFTER_S: float = 24 * 3600.0

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_KINDS = ("tmp", "old", "synth")
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _stage(name: str) -> None:
    """A named point of a run (``locked``, ``built``, ``moved-aside``, ``swapped``,
    ``deleting``). Does nothing; the interruption tests replace it to stop a run there."""


# ----------------------------------------------------------------------------- modes
def make_temp_dir(folder: Path, kind: str) -> Path:
    """A new empty folder ``.<NAME>.<kind>.<pid>.<random>`` beside ``folder`` (mode per umask)."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    for _ in range(100):
        path = folder.parent / f".{folder.name}.{kind}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o777)  # mkdir applies the umask
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary folder beside {folder}")


# ----------------------------------------------------------------------------- lock
@contextlib.contextmanager
def lock_folder(folder: Path, *, timeout_s: float, error: type[Exception]) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (``.<NAME>.lock`` beside it).

    Waits up to ``timeout_s`` seconds for another holder, then raises ``error`` with one
    line naming the folder and the holder's pid."""
    lock_path = folder.parent / f".{folder.name}.lock"
    deadline = time.monotonic() + timeout_s
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                        raise error(f"{folder} is being written by another sparseforge run "
                                    f"(pid {holder}, lock {lock_path}); waited {timeout_s:g} s: "
                                    "try again when it has finished") from None
                    time.sleep(0.05)
            # the previous holder removes the lock file when done: lock the current one
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding it: a waiter re-checks and retries
        os.close(fd)


# ----------------------------------------------------------------------------- stale entries
def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _entries(folder: Path) -> Iterator[tuple[Path, str, int | None]]:
    """Temporary entries beside ``folder``: (path, kind, pid or None for the legacy
    ``.NAME.old`` of older versions)."""
    pat = re.compile(r"^\." + re.escape(folder.name) + r"\.(" + "|".join(_KINDS) + r")\.(\d{1,10})\.[0-9a-f]+$")
    try:
        names = os.listdir(folder.parent)
    except FileNotFoundError:
        return
    for name in names:
        m = pat.match(name)
        if m:
            yield folder.parent / name, m.group(1), int(m.group(2))
        elif name == f".{folder.name}.old":
            yield folder.parent / name, "old", None


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary entries of ``folder`` left by dead runs (call with the lock held).

    A stranded ``old`` folder is put back as ``folder`` when ``folder`` is missing; the other
    entries are deleted. Returns what was removed or restored."""
    done: list[Path] = []
    now = time.time()
    for path, kind, pid in sorted(_entries(folder), key=lambda e: e[1] != "old"):
        if pid == os.getpid():
            continue
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if pid is not None and pid_alive(pid) and age < STALE_AFTER_S:
            continue
        if kind == "old" and not os.path.lexists(folder) and path.is_dir() and not path.is_symlink():
            os.rename(path, folder)
        else:
            remove_tree(path)
        done.append(path)
    return done


def remove_tree(path: Path) -> None:
    """Delete a file, link or folder tree; missing is fine, and so is what cannot be deleted
    (a later run's :func:`clean_stale` tries again)."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
            return
        entries = sorted(path.iterdir())
    except OSError:
        return
    for i, entry in enumerate(entries):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        if i == 0:
            _stage("deleting")
    with contextlib.suppress(OSError):
        path.rmdir()


# ----------------------------------------------------------------------------- swap
_renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange the names ``a`` and ``b`` (both must exist). False when the
    system or the file system has no ``RENAME_EXCHANGE``; raises OSError on other errors."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
        except (AttributeError, OSError):
            _renameat2 = False
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        _renameat2 = fn
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM/SIGHUP (delivered when the block ends)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def swap_in(new: Path, target: Path, leftovers: list[Path]) -> None:
    """Put the complete folder ``new`` (a temporary entry beside ``target``) at ``target`` in
    one step. Afterwards the previous ``target`` is at ``new`` (exchange) or at a path this
    appends to ``leftovers`` (fallback): the caller deletes ``new`` and ``leftovers`` once the
    lock is released. Call with the lock of ``target`` held."""
    with _signals_held():
        if not os.path.lexists(target):
            os.rename(new, target)
            _stage("swapped")
            return
        if _exchange(new, target):
            _stage("swapped")
            return
        old = target.parent / f".{target.name}.old.{os.getpid()}.{secrets.token_hex(4)}"
        os.rename(target, old)
        leftovers.append(old)
        _stage("moved-aside")
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            leftovers.remove(old)
            raise
        _stage("swapped")


def link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` (a file or a folder tree) to the new path ``dst``, by hard links where the
    file system allows (results are never changed in place, so sharing their inodes is safe)."""
    if src.is_dir() and not src.is_symlink():
        dst.mkdir(mode=0o777)
        for entry in src.iterdir():
            link_tree(entry, dst / entry.name)
    elif src.is_file() and not src.is_symlink():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def rtl_sha256(files: Iterable[tuple[str, bytes]]) -> str:
    """SHA-256 over a design's source files in order (each: its name, a NUL, the SHA-256 of
    its bytes): what ``manifest.json`` and ``synth.json`` record as ``rtl_sha256``."""
    h = hashlib.sha256()
    for name, data in files:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    return h.hexdigest()
