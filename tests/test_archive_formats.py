"""Chunked parallel compression (kernelstacks.distribute.parallel_compress, compression).

Real files, real compressors and the real command-line tools (``tar``, ``xz``, ``zstd``): an
archive written on many threads must be byte-identical to one written on one thread, readable
as one archive by every standard reader, and deployable in both formats.
"""

from __future__ import annotations

import io
import lzma
import os
import random
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernelstacks._support.hashing import sha256_hex
from kernelstacks.distribute.archive_extract import safe_extract
from kernelstacks.distribute.archives import ArchiveError, write_archive
from kernelstacks.distribute.compression import FORMATS, archive_format, sniff_format
from kernelstacks.distribute.parallel_compress import ParallelCompressor

CLAMP = 1_700_000_000
TOP = "framework-big"


@pytest.fixture(scope="module")
def big_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layer of ~7 MiB (a mix of compressible text and random bytes) over several chunks."""
    root = tmp_path_factory.mktemp("big") / TOP
    rng = random.Random(1234)
    for i in range(40):
        sub = root / "lib" / f"pkg{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        text = "".join(f"def f{j}(x):\n    return x * {j}\n" for j in range(2000 + i))
        (sub / f"mod{i}.py").write_text(text)
        (sub / f"blob{i}.bin").write_bytes(rng.randbytes(60_000))
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to("../../cpython-3.12/bin/python3")
    return root


def publish(layer: Path, out: Path, fmt: str, workers: int, chunk: int = 1 << 20) -> Path:
    """Write ``layer`` as ``fmt`` with ``workers`` threads, in chunks of ``chunk`` bytes."""
    name = out / f"{TOP}{FORMATS[fmt].suffix}"
    with ThreadPoolExecutor(max_workers=workers) as pool:
        info = write_archive(
            layer,
            name,
            top=TOP,
            clamp_mtime=CLAMP,
            archive_type=fmt,
            pool=pool,
            chunk_size=chunk,
        )
    return info.path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_bytes_do_not_depend_on_the_number_of_workers(
    big_layer: Path, tmp_path: Path, fmt: str
) -> None:
    one = publish(big_layer, tmp_path / "one", fmt, workers=1)
    four = publish(big_layer, tmp_path / "four", fmt, workers=4)
    assert sha256_hex(one) == sha256_hex(four)
    assert sniff_format(one.read_bytes()[:8]) is FORMATS[fmt]


def test_small_chunks_make_several_xz_streams_that_lzma_reads_as_one(
    big_layer: Path, tmp_path: Path
) -> None:
    archive = publish(big_layer, tmp_path, "tar.xz", workers=2)
    raw = archive.read_bytes()
    assert raw.count(b"\xfd7zXZ\x00") >= 5  # one stream per chunk, concatenated
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(raw)), mode="r:") as tar:
        names = tar.getnames()
    assert f"{TOP}/lib/pkg0/mod0.py" in names


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_standard_tools_read_the_archive(big_layer: Path, tmp_path: Path, fmt: str) -> None:
    archive = publish(big_layer, tmp_path, fmt, workers=2)
    tool = {"tar.xz": "xz", "tar.zst": "zstd"}[fmt]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    test = subprocess.run([tool, "-t", str(archive)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    out = tmp_path / "untarred"
    out.mkdir()
    flag = {"tar.xz": "-xJf", "tar.zst": "--zstd"}[fmt]
    cmd = ["tar", flag, str(archive), "-C", str(out)]
    if fmt == "tar.zst":
        cmd = ["tar", "--zstd", "-xf", str(archive), "-C", str(out)]
    untar = subprocess.run(cmd, capture_output=True, text=True)
    assert untar.returncode == 0, untar.stderr
    original = big_layer / "lib" / "pkg3" / "mod10.py"
    assert (out / TOP / "lib" / "pkg3" / "mod10.py").read_bytes() == original.read_bytes()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_deploy_extraction_round_trips_both_formats(
    big_layer: Path, tmp_path: Path, fmt: str
) -> None:
    archive = publish(big_layer, tmp_path, fmt, workers=2)
    dest = tmp_path / "deploy"
    staging = dest / ".stage"
    staging.mkdir(parents=True)
    seen: list[tuple[int, int]] = []
    got = safe_extract(
        archive,
        dest,
        staging,
        expected_sha256=sha256_hex(archive),
        expected_top=TOP,
        strip_top=True,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert got == staging
    for path in big_layer.rglob("*"):
        rel = path.relative_to(big_layer)
        if path.is_symlink():
            assert os.readlink(staging / rel) == os.readlink(path)
        elif path.is_file():
            assert (staging / rel).read_bytes() == path.read_bytes(), rel
    assert seen and seen[-1][0] == seen[-1][1] == archive.stat().st_size


def test_unknown_format_and_bad_level_are_refused(big_layer: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tar\.xz or tar\.zst"):
        archive_format("tar.gz")
    with pytest.raises(ValueError, match="level must be 0-9"):
        write_archive(big_layer, tmp_path / "x.tar.xz", top=TOP, clamp_mtime=CLAMP, level=12)
    bogus = tmp_path / "x.tar.zst"
    bogus.write_bytes(b"PK\x03\x04 not an archive")
    staging = tmp_path / "stage"
    staging.mkdir()
    with pytest.raises(ArchiveError, match="unknown file header"):
        safe_extract(bogus, tmp_path, staging)
    assert list(staging.iterdir()) == []


def test_compressor_writes_pieces_in_order_whatever_finishes_first(tmp_path: Path) -> None:
    """Pieces come back out of order from the pool; the file must still be in input order."""
    fmt = archive_format("tar.zst")
    data = b"".join(bytes([i]) * 70_000 + os.urandom(30_000) for i in range(20))
    out = io.BytesIO()
    with ThreadPoolExecutor(max_workers=4) as pool:
        sink = ParallelCompressor(out, fmt, 3, pool, chunk_size=100_000, max_pending=8)
        for start in range(0, len(data), 33_333):  # writes that do not align with chunks
            sink.write(data[start : start + 33_333])
        sink.close()
    reader = fmt.reader(io.BytesIO(out.getvalue()))
    assert reader.read() == data
