"""Writing result files safely: atomically, with the umask's mode, and with hidden temporary
names that say whose they are.

- :func:`write_atomic` writes through a hidden temporary file beside the target and renames
  it into place, so a reader sees the old file or the new one, never half of one. The file
  gets mode ``0o666 & ~umask`` like any file the user creates (``mkstemp`` alone gives 0600).
- Temporary names are ``.<name>.sftmp-<pid>-<random>`` (:func:`temp_prefix`): hidden,
  recognisable, and carrying the writer's process id. Whatever a writer derives from such
  a name (e.g. ``.<tmp>.XXXX.npz``) matches too. A process killed mid-write leaves its
  temporary behind; :func:`remove_stale_temps`, which every :func:`write_atomic` runs on
  its folder, removes the temporaries of processes that no longer run.
- :func:`check_output_path` and :func:`check_output_folder` refuse, before any work is
  done, an output that cannot be written (an existing folder given as a file, a path under
  a regular file, too long a name, a folder that refuses new files, such as procfs or a
  read-only mount), with one line naming the path and the reason.

This module is on the ground floor: it imports nothing of the project but the error base.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import InputError

__all__ = ["OutputPathError", "TEMP_MARK", "temp_prefix", "is_temp_name", "remove_stale_temps", "current_umask",
           "write_atomic", "check_output_path", "check_output_folder", "os_reason"]

#: the part of every temporary name that marks it as sparseforge's: ``.<name>.sftmp-<pid>-``
TEMP_MARK = ".sftmp-"
_TEMP_RE = re.compile(r"^\..+?" + re.escape(TEMP_MARK) + r"(\d+)-")
#: characters of the target's name kept in a temporary name (so that a name near the
#: file system's limit still leaves room for the marks)
_TEMP_NAME_CHARS = 60


class OutputPathError(InputError):
    """An output path that cannot be written: one line naming the path and the reason."""


def os_reason(exc: OSError) -> str:
    """The operating system's reason of ``exc`` in words (``Not a directory``)."""
    return exc.strerror or str(exc)


def temp_prefix(path: Path | str) -> str:
    """The prefix of the hidden temporary names for ``path``: ``.<name>.sftmp-<pid>-``."""
    return f".{Path(path).name[:_TEMP_NAME_CHARS]}{TEMP_MARK}{os.getpid()}-"


def is_temp_name(name: str) -> int | None:
    """The writer's process id if ``name`` is a sparseforge temporary name, else None."""
    m = _TEMP_RE.match(name)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # it exists, and belongs to someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_stale_temps(folder: Path | str) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` whose writer no longer runs;
    returns what was removed. Temporaries of running processes (this one included) stay."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = is_temp_name(entry.name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path | str, content: str | bytes | Callable[[Path], None], *, what: str = "output") -> Path:
    """Write ``content`` to ``path`` atomically and return ``path``.

    ``content`` is text (written as UTF-8), bytes, or a function that writes the file it is
    given (a temporary path beside ``path``). Missing folders are created. The file gets mode
    ``0o666 & ~umask``. Stale temporaries of dead writers in the folder are removed first.
    Errors of the file system raise :class:`OutputPathError` naming ``what`` and the path."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), dir=folder)
    except OSError as exc:
        raise OutputPathError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)}") from None
    tmp = Path(tmp_name)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputPathError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)}") from None
        raise
    return path


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_new_path(path: Path, what: str) -> Path:
    """Walk up from ``path`` to the first existing folder, checking the names to create;
    returns that folder."""
    ancestor = path
    to_create: list[str] = []
    while not os.path.lexists(ancestor):
        to_create.append(ancestor.name)
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is not allowed: {str(ancestor)!r} is "
                              f"{'a file' if ancestor.exists() else 'a broken link'}, not a folder")
    limit = _name_max(ancestor)
    for name in to_create:
        if len(os.fsencode(name)) > limit:
            raise OutputPathError(f"{what} {str(path)!r} is not allowed: the name {name[:24] + '...'!r} is longer "
                                  f"than {limit} bytes")
    _probe(ancestor, path, what)
    return ancestor


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and remove a temporary file in ``folder``: the one test that says whether the
    file system will take a new file there (read-only mounts, procfs, permissions)."""
    before = os.stat(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=folder)
    except OSError as exc:
        raise OutputPathError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)} "
                              f"(in {str(folder)!r})") from None
    os.close(fd)
    os.unlink(tmp)
    try:  # the probe leaves no trace, not even the folder's modification time
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError:
        pass


def check_output_path(path: Path | str, *, what: str = "output") -> None:
    """Raise :class:`OutputPathError` unless a file can be written at ``path``: it is not an
    existing folder, nothing on its way is a regular file, its names fit the file system,
    and the nearest existing folder takes new files. Writes nothing that stays."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputPathError(f"{what} {str(path)!r} is not allowed: give a file name")
    try:
        if path.is_dir():
            raise OutputPathError(f"{what} {str(path)!r} is not allowed: it is an existing folder; give a file name")
        if os.path.lexists(path):
            if not path.is_file():
                raise OutputPathError(f"{what} {str(path)!r} is not allowed: it exists and is not a regular file")
            _check_new_path(path.parent, what)
            return
        _check_new_path(path, what)
    except OSError as exc:                  # e.g. a name too long to look up
        raise OutputPathError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)}") from None


def check_output_folder(path: Path | str, *, what: str = "output folder") -> None:
    """Raise :class:`OutputPathError` unless ``path`` is, or can be created as, a folder that
    takes new entries. Writes nothing that stays."""
    path = Path(path)
    try:
        if os.path.lexists(path) and not path.is_dir():
            raise OutputPathError(f"{what} {str(path)!r} is not allowed: it exists and is not a folder")
        _check_new_path(path, what)
    except OSError as exc:
        raise OutputPathError(f"{what} {str(path)!r} cannot be written: {os_reason(exc)}") from None
