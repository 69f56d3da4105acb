"""The ordered writer: blocks come out in the order they went in, each told where."""

from __future__ import annotations

import random
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from torchslim.oci.ordered import OrderedBlocks


def _slow_deflate(blocks: list[bytes]) -> list[bytes]:
    # Jobs finish out of order: a job's delay does not follow its position.
    time.sleep(random.random() / 200)
    return [zlib.compress(b) for b in blocks]


def test_blocks_come_out_in_order_and_each_is_told_where() -> None:
    out = bytearray()
    where: dict[int, tuple[int, int]] = {}
    blocks = [bytes([i % 251]) * (i * 97 % 5000) for i in range(400)]
    with ThreadPoolExecutor(4) as pool:
        writer = OrderedBlocks(out.extend, lambda: pool, _slow_deflate, threads=2, batch=3000)
        for i, block in enumerate(blocks):
            if i == 200:  # raw bytes written in between follow everything queued before
                writer.flush()
                writer.write(b"RAW")

            def placed(start: int, end: int, i: int = i) -> None:
                where[i] = (start, end)

            writer.add(block, [placed])
        writer.flush()
    assert writer.written == len(out)
    assert sorted(where) == list(range(400))
    ends = [where[i] for i in range(400)]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))
    for i, block in enumerate(blocks):
        start, end = where[i]
        assert zlib.decompress(bytes(out[start:end])) == block
    assert out[where[199][1] : where[200][0]] == b"RAW"
