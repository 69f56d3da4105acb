"""Blocks compressed on a thread pool and written out in the order they came.

zstd:chunked and eStargz both make a blob of many independent compressed pieces (a zstd
frame or a gzip member per file); each piece can be compressed on any thread, but the
blob must hold them in order and each reader's table of contents needs where each one
landed. Small blocks are batched into jobs of about ``batch`` bytes; at most twice as
many jobs as threads are in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

# Told where a block's compressed bytes landed in the blob: (start, end).
Placed = Callable[[int, int], None]
# Compresses a job's blocks, each on its own: one output per input, in order.
Compress = Callable[[list[bytes]], list[bytes]]


class OrderedBlocks:
    """Write compressed blocks to ``out`` in order, compressing them on ``pool``."""

    def __init__(
        self,
        out: Callable[[bytes], object],
        pool: Callable[[], ThreadPoolExecutor],
        compress: Compress,
        *,
        threads: int,
        batch: int,
    ) -> None:
        self._out = out
        self._pool = pool
        self._compress = compress
        self._threads = threads
        self._batch_limit = batch
        self.written = 0  # compressed bytes out so far
        self._batch: list[tuple[bytes, Sequence[Placed]]] = []
        self._batch_size = 0
        self._pending: deque[tuple[Future[list[bytes]], list[Sequence[Placed]]]] = deque()

    def add(self, block: bytes, placed: Sequence[Placed] = ()) -> None:
        """Queue ``block``; each of ``placed`` is told where it landed once written."""
        self._batch.append((block, placed))
        self._batch_size += len(block)
        if self._batch_size >= self._batch_limit:
            self._submit()

    def flush(self) -> None:
        """Write every block queued so far (waiting for their jobs)."""
        self._submit()
        self._drain(everything=True)

    def write(self, data: bytes) -> None:
        """Write ``data`` as it is, after what was written; call ``flush`` first for it to
        follow every queued block."""
        if data:
            self._out(data)
            self.written += len(data)

    def _submit(self) -> None:
        if self._batch:
            blocks = [b for b, _ in self._batch]
            placed = [p for _, p in self._batch]
            job = self._pool().submit(self._compress, blocks)
            self._pending.append((job, placed))
            self._batch, self._batch_size = [], 0
        self._drain(everything=False)

    def _drain(self, *, everything: bool) -> None:
        """Write the finished jobs at the head, in order: all of them when ``everything``,
        else those done, waiting only while too many are in flight."""
        while self._pending and (
            everything or self._pending[0][0].done() or len(self._pending) > 2 * self._threads
        ):
            future, placed = self._pending.popleft()
            for data, told in zip(future.result(), placed, strict=True):
                start = self.written
                self.write(data)
                for tell in told:
                    tell(start, self.written)
