"""Compressed matrices: gzip-compressed MatrixMarket (``.mtx.gz``) and SuiteSparse Matrix
Collection bundles (``NAME.tar.gz`` holding ``NAME/NAME.mtx`` and ``NAME/NAME_*.mtx``
auxiliaries), read in memory, from the API and from ``sparseforge spgemm``.

The matrix is SciPy's illc1850 (the Harwell-Boeing ILLC1850 the project ships as a built-in),
written with scipy.io.mmwrite and packed the way SuiteSparse packs its archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import scipy.io

from sparseforge import api
from sparseforge.cli import main
from sparseforge.models.matrices import MatrixError, load_matrix, read_matrix_archive

ERR = "sparseforge: error: "


@pytest.fixture(scope="module")
def illc():
    """illc1850 and its MatrixMarket text."""
    m = load_matrix("illc1850").matrix
    buf = io.BytesIO()
    scipy.io.mmwrite(buf, m, comment="illc1850 for sparseforge's archive tests")
    return m, buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


RHS = b"%%MatrixMarket matrix array real general\n3 1\n1\n2\n3\n"


def _same(a, b) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


def test_suitesparse_bundle_reads_its_main_matrix(tmp_path, illc):
    """NAME/NAME.mtx is the matrix; NAME/NAME_b.mtx (a right-hand side, listed first) is not."""
    m, text = illc
    path = _tar(tmp_path / "illc1850.tar.gz", {"illc1850/illc1850_b.mtx": RHS, "illc1850/illc1850.mtx": text})
    nm = load_matrix(str(path))
    assert nm.name == "illc1850" and _same(nm.matrix, m)
    assert nm.source.endswith("illc1850.tar.gz[illc1850/illc1850.mtx]")
    assert not (tmp_path / "illc1850").exists()          # nothing was extracted
    assert _same(api.load_matrix(path).matrix, m)


def test_renamed_archive_finds_the_matrix_named_after_its_folder(tmp_path, illc):
    m, text = illc
    path = _tar(tmp_path / "download.tgz", {"illc1850/illc1850_coord.mtx": RHS, "illc1850/illc1850.mtx": text})
    assert _same(read_matrix_archive(path)[0], m)
    plain = _tar(tmp_path / "one.tar", {"whatever.mtx": text}, mode="w")
    assert _same(read_matrix_archive(plain)[0], m)


def test_mtx_gz_reads(tmp_path, illc):
    m, text = illc
    path = tmp_path / "illc1850.mtx.gz"
    path.write_bytes(gzip.compress(text))
    nm = load_matrix(str(path))
    assert nm.name == "illc1850" and _same(nm.matrix, m)


@pytest.mark.parametrize("members, links, match", [
    ({"x/readme.txt": b"hello"}, None, r"holds no \.mtx file"),
    ({"a/a_b.mtx": RHS, "a/a_x.mtx": RHS}, None, r"cannot tell which of its 2 \.mtx members is the matrix"),
    ({}, {"bad/bad.mtx": "/etc/passwd"}, r"holds no \.mtx file"),            # a link is never followed
    ({"bad/bad.mtx": b"%%MatrixMarket matrix coordinate real general\n99999999 3 2\n1 1 1\n"}, None,
     r"bad\.tar\.gz\[bad/bad\.mtx\]: 99999999 rows is not allowed"),
    ({"bad/bad.mtx": b"hello\n"}, None, r"bad\.tar\.gz\[bad/bad\.mtx\]: not a MatrixMarket file"),
    ({"bad/bad.mtx": b"%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1\n9 9 x\n"}, None,
     r"bad\.tar\.gz\[bad/bad\.mtx\]: malformed MatrixMarket file"),
])
def test_bad_archives_are_one_line_errors(tmp_path, members, links, match):
    path = _tar(tmp_path / "bad.tar.gz", members, links=links)
    with pytest.raises(MatrixError, match=match) as exc:
        load_matrix(str(path))
    assert "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_not_a_tar_and_truncated_archives(tmp_path, illc):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(MatrixError, match=r"junk\.tar\.gz: not a readable tar archive"):
        load_matrix(str(junk))
    good = _tar(tmp_path / "t.tar.gz", {"t/t.mtx": illc[1]})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MatrixError, match=r"cut\.tar\.gz"):
        load_matrix(str(cut))
    with pytest.raises(MatrixError, match="does not exist"):
        load_matrix(str(tmp_path / "missing.tar.gz"))


def test_cli_spgemm_takes_a_bundle(tmp_path, illc, capsys):
    path = _tar(tmp_path / "illc1850.tar.gz", {"illc1850/illc1850.mtx": illc[1]})
    assert main(["spgemm", "--a", str(path), "--b", "illc1850.T", "--dataflow", "inner", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["a"]["source"] == f"{path}[illc1850/illc1850.mtx]"
    assert (data["a"]["shape"], data["a"]["nnz"]) == ([1850, 712], illc[0].nnz)
    assert data["nnz_c"] == (illc[0] @ illc[0].T).nnz
    bad = _tar(tmp_path / "none.tar.gz", {"x/readme.txt": b"hi"})
    assert main(["spgemm", "--a", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(ERR) and "holds no .mtx file" in err
