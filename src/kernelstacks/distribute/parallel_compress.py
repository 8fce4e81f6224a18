"""A write-only file that compresses what it is given in fixed-size chunks, on many threads.

``tarfile`` writes a layer's tar stream into :class:`ParallelCompressor`; every
:data:`~kernelstacks.distribute.compression.CHUNK_SIZE` bytes become one job on a thread pool
(liblzma and libzstd release the GIL), and the compressed pieces are written to the output in
order. Several layers can share one pool, so a publish keeps every core busy whether it has one
big layer or many small ones. At most ``max_pending`` chunks wait in memory per writer.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import BinaryIO

from kernelstacks.distribute.compression import CHUNK_SIZE, ArchiveFormat

Progress = Callable[[int], None]


class ParallelCompressor:
    """File-like sink: ``write``/``tell``/``close``; the output is ``fmt``'s concatenated pieces."""

    def __init__(
        self,
        out: BinaryIO,
        fmt: ArchiveFormat,
        level: int,
        pool: Executor,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_pending: int = 4,
        on_progress: Progress | None = None,
    ) -> None:
        self._out = out
        self._fmt = fmt
        self._level = level
        self._pool = pool
        self._chunk_size = chunk_size
        self._max_pending = max(1, max_pending)
        self._on_progress = on_progress
        self._buffer = bytearray()
        self._pending: collections.deque[tuple[Future[bytes], int]] = collections.deque()
        self._position = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take uncompressed bytes; full chunks go to the pool as soon as they are complete."""
        if self.closed:
            raise ValueError("write to a closed compressor")
        self._buffer += data
        self._position += len(data)
        while len(self._buffer) >= self._chunk_size:
            chunk = bytes(self._buffer[: self._chunk_size])
            del self._buffer[: self._chunk_size]
            self._submit(chunk)
        return len(data)

    def tell(self) -> int:
        """Uncompressed bytes written so far (``tarfile`` asks)."""
        return self._position

    def flush(self) -> None:
        """Nothing to do: pieces are written as they finish, in order."""

    def close(self) -> None:
        """Compress the last partial chunk and write every outstanding piece."""
        if self.closed:
            return
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._write_next()
        self.closed = True

    def abort(self) -> None:
        """Drop queued work after a failure (running jobs finish; their results are discarded)."""
        for future, _size in self._pending:
            future.cancel()
        self._pending.clear()
        self._buffer.clear()
        self.closed = True

    def _submit(self, chunk: bytes) -> None:
        self._pending.append(
            (self._pool.submit(self._fmt.compress, chunk, self._level), len(chunk))
        )
        while len(self._pending) > self._max_pending:
            self._write_next()

    def _write_next(self) -> None:
        future, size = self._pending.popleft()
        self._out.write(future.result())
        if self._on_progress is not None:
            self._on_progress(size)
