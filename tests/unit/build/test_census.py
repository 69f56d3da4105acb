"""What the census gives eStargz's prefetch: the image's own files, each once, sorted."""

from __future__ import annotations

from torchslim.build.census import prefetch_paths


def test_prefetch_takes_the_image_files_of_the_census() -> None:
    opened = (
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/app/service/main.py",
        "/proc/self/maps",
        "/tmp/.torchslim-census/sitecustomize.py",
        "/dev/shm/x",
        "/usr/local/lib/python3.11/dist-packages/torch/lib/libtorch_cpu.so (deleted)",
        "/app/service/main.py",
    )
    assert prefetch_paths(opened) == [
        "/app/service/main.py",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/local/lib/python3.11/dist-packages/torch/lib/libtorch_cpu.so",
    ]
