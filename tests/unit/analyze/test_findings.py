"""Findings, answers, categories and outputs on small hand-made images."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from support.images import Entry, file, layer

from torchslim.analyze import Analysis, diff, gate_exit_code, parse_size
from torchslim.analyze.html import to_html
from torchslim.analyze.report import diff_to_markdown, to_json, to_sarif
from torchslim.errors import ConfigError

Run = Callable[..., Analysis]
PASSWD = (
    b"root:x:0:0:root:/root:/bin/bash\nadmin:x:0:0::/:/bin/sh\n"
    b"app:x:10001:10001::/app:/sbin/nologin\n"
)
SITE = "usr/local/lib/python3.11/site-packages"
KEY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + b"b3BlbnNzaC1rZXktdjEAAAAA" * 10
    + b"\n-----END OPENSSH PRIVATE KEY-----\n"
)


def _dist(
    name: str, version: str, files: dict[str, bytes], requires: tuple[str, ...] = ()
) -> list[Entry]:
    di = f"{SITE}/{name.replace('-', '_')}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    rows = [f"{p},," for p in files] + [
        f"{di.removeprefix(SITE + '/')}/METADATA,,",
        f"{di.removeprefix(SITE + '/')}/RECORD,,",
    ]
    return [file(f"{SITE}/{p}", d) for p, d in files.items()] + [
        file(f"{di}/METADATA", meta.encode()),
        file(f"{di}/RECORD", "\n".join(rows).encode()),
    ]


@pytest.mark.parametrize(
    ("user", "root"),
    [
        (None, True),
        ("", True),
        ("root", True),
        ("0", True),
        ("0:0", True),
        ("admin", True),
        ("app", False),
        ("10001", False),
        ("10001:10001", False),
    ],
)
def test_runs_as_root(analyze_layers: Run, user: str | None, root: bool) -> None:
    a = analyze_layers(layer([file("etc/passwd", PASSWD)]), user=user)
    assert a.answers.runs_as_root is root
    assert (a.finding("runs-as-root") is not None) is root


def test_healthcheck_and_tag(analyze_layers: Run) -> None:
    a = analyze_layers(layer([file("a", 1)]), healthcheck=["CMD", "/app/health"], name="r/app:v1.2")
    assert a.finding("no-healthcheck") is None and a.finding("tag-latest") is None
    b = analyze_layers(layer([file("a", 1)]), healthcheck=["NONE"], name="r/app")
    assert b.finding("no-healthcheck") is not None and b.finding("tag-latest") is not None
    assert analyze_layers(layer([file("a", 1)]), name="localhost:5000/app:latest").finding(
        "tag-latest"
    )


def test_secrets_by_header_and_name_never_contents(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer(
            [
                file("opt/app/deploy_key", KEY),
                file("app/.env", b"TOKEN=hunter2\n"),
                file("root/.aws/credentials", b"[default]\n"),
                file("app/notes.txt", b"x" * 100),
            ]
        )
    )
    f = a.finding("secrets")
    assert f is not None and f.severity == "critical"
    assert set(f.paths) == {"opt/app/deploy_key", "app/.env", "root/.aws/credentials"}
    assert f.bytes == len(KEY) + 14 + 10
    doc = json.dumps(to_json(a)) + to_html(a) + json.dumps(to_sarif(a))
    assert "hunter2" not in doc and "b3BlbnNzaC1rZXktdjEAAAAA" not in doc


def test_cuda_twice_and_unused_libraries(analyze_layers: Run) -> None:
    sys_cuda = [
        file("usr/local/cuda-12.4/targets/x86_64-linux/lib/libcublas.so.12", 7000),
        file("usr/local/cuda-12.4/targets/x86_64-linux/lib/libcupti.so.12", 900),
        file("usr/local/cuda-12.4/bin/nvcc", 3000, 0o755),
        file("usr/local/cuda-12.4/targets/x86_64-linux/include/cuda_runtime.h", 400),
    ]
    wheel = _dist(
        "nvidia-cublas-cu12",
        "12.4.5.8",
        {
            "nvidia/cublas/lib/libcublas.so.12": b"c" * 6000,
            "nvidia/cublas/lib/libcublasLt.so.12": b"l" * 500,
        },
    )
    nccl = _dist("nvidia-nccl-cu12", "2.21.5", {"nvidia/nccl/lib/libnccl.so.2": b"n" * 1200})
    a = analyze_layers(layer(sys_cuda), layer(wheel + nccl))
    cublas = a.category("cuda.cublas")
    assert cublas is not None and cublas.bytes == 7000 + 6000 + 500
    assert cublas.by_owner == {"python:nvidia-cublas-cu12": 6500, "unowned": 7000}
    f = a.finding("cuda-twice")
    assert f is not None and f.bytes == min(7000 + 900, 6500 + 1200)
    u = a.finding("inference-unused-libs")
    assert u is not None and u.bytes == 900 + 1200
    assert a.answers.devel_base and a.answers.compiler_present
    assert "usr/local/cuda-12.4/bin/nvcc" in a.answers.devel_evidence
    assert a.category("headers") is not None and a.category("headers").bytes == 400  # type: ignore[union-attr]
    assert a.package("python", "nvidia-cublas-cu12").bytes == 6500 + len(wheel[-2].data) + len(
        wheel[-1].data
    )  # type: ignore[union-attr]


def test_dev_packages_by_dependency_closure(analyze_layers: Run) -> None:
    entries = (
        _dist(
            "pytest",
            "8.3.0",
            {"pytest/__init__.py": b"p" * 3000},
            ("pluggy<2", "iniconfig", "packaging"),
        )
        + _dist("pluggy", "1.5.0", {"pluggy/__init__.py": b"g" * 500})
        + _dist("iniconfig", "2.0.0", {"iniconfig/__init__.py": b"i" * 200})
        + _dist("packaging", "24.1", {"packaging/__init__.py": b"k" * 100})
        + _dist(
            "fastapi",
            "0.110.0",
            {"fastapi/__init__.py": b"f" * 800},
            ("packaging", "pytest; extra == 'test'"),
        )
    )
    a = analyze_layers(layer(entries))
    assert a.answers.dev_packages == ["iniconfig", "pluggy", "pytest"]
    dev = a.category("python.dev")
    assert dev is not None and dev.bytes == sum(
        p.bytes for p in a.packages if p.name in ("pytest", "pluggy", "iniconfig")
    )
    assert a.finding("dev-packages") is not None


def test_caches_torch_parts_and_leftovers(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer(
            [
                file("root/.cache/pip/http/ab", 1000),
                file("var/lib/apt/lists/deb_Packages", 2000),
                file("opt/conda/pkgs/x.conda", 3000),
                file(f"{SITE}/m/__pycache__/m.cpython-311.pyc", 40),
                file(f"{SITE}/torch/test/test_nn.py", 5000),
                file(f"{SITE}/torch/bin/protoc", 700, 0o755),
                file(f"{SITE}/torch/bin/torch_shm_manager", 60, 0o755),
                file(f"{SITE}/torch/include/ATen/ATen.h", 300),
                file(f"{SITE}/torch/lib/libtorch_cpu.so", 9000),
                file("usr/lib/x86_64-linux-gnu/libz.a", 77),
                file(f"{SITE}/numpy/tests/test_x.py", 11),
                file("usr/bin/bash", 1234, 0o755),
                file("usr/sbin/sshd", 999, 0o755),
                file("usr/bin/passwd", 55, 0o4755),
            ]
        )
    )
    sizes = {c.id: c.bytes for c in a.categories}
    assert sizes["cache.pip"] == 1000 and sizes["cache.apt"] == 2000
    assert sizes["cache.conda-pkgs"] == 3000 and sizes["cache.pycache"] == 40
    assert sizes["torch.test"] == 5000 and sizes["torch.bin"] == 700
    # torch_shm_manager is a runtime helper, not a test tool: it counts as torch.lib.
    assert sizes["torch.include"] == 300 and sizes["torch.lib"] == 9060
    assert sizes["static-libs"] == 77 and sizes["tests"] == 11 and sizes["shells"] == 1234
    assert sizes["ssh-server"] == 999
    assert sum(sizes.values()) == a.files_bytes
    got = {f.id: f.bytes for f in a.findings}
    # __pycache__ is a category but not a finding: precompiled bytecode speeds start-up.
    assert got["caches"] == 6000 and got["torch-test"] == 5000 and got["torch-bin"] == 700
    assert got["torch-include"] == 300 and got["ssh-server"] == 999 and got["setuid-files"] == 55
    assert got["build-leftovers"] == 88
    removable = 6000 + 5000 + 700 + 300 + 77 + 11 + 1234 + 999
    assert a.estimate.removable_by["cache.pip"] == 1000
    assert sum(v for k, v in a.estimate.removable_by.items() if k != "wasted-bytes") == removable
    assert a.estimate.uncompressed < a.uncompressed


def test_json_shape_gates_and_diff(analyze_layers: Run) -> None:
    a = analyze_layers(layer([file("usr/bin/gcc-12", 4000, 0o755)]))
    b = analyze_layers(layer([file("app/x", 10)]), healthcheck=["CMD", "true"], user="10001")
    doc = to_json(a)
    assert doc["image"] == "app:v1"
    assert set(doc["size"]) >= {"compressed", "uncompressed"}
    assert doc["answers"]["compiler_present"] is True and doc["answers"]["runs_as_root"] is True
    assert set(doc["answers"]) >= {"compiler_present", "devel_base", "dev_packages", "runs_as_root"}
    assert {"id", "severity", "bytes", "paths", "fix"} <= set(doc["findings"][0])
    assert set(doc["pull_seconds"]["now"]) == {"100 Mbit/s", "1 Gbit/s"}
    assert doc["estimate"]["after_build"]["compressed"] < doc["size"]["compressed"]
    sarif = to_sarif(a)
    assert sarif["version"] == "2.1.0" and {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {
        "compiler-present"
    }
    assert gate_exit_code(a, max_size=None, fail_on=[]) == 0
    assert gate_exit_code(a, max_size=10, fail_on=[]) == 4
    assert gate_exit_code(a, max_size=None, fail_on=["high"]) == 5
    assert gate_exit_code(a, max_size=None, fail_on=["critical"]) == 0
    assert gate_exit_code(a, max_size=None, fail_on=["compiler-present"]) == 5
    assert gate_exit_code(a, max_size=10, fail_on=["medium"]) == 6
    assert gate_exit_code(b, max_size=None, fail_on=["high"]) == 0
    with pytest.raises(ConfigError):
        gate_exit_code(a, max_size=None, fail_on=["nonsense"])
    assert (
        parse_size("2GB") == 2 * 10**9
        and parse_size("1.5GiB") == 3 << 29
        and parse_size("800") == 800
    )
    with pytest.raises(ConfigError):
        parse_size("big")
    d = diff(a, b)
    assert d.findings_removed == sorted(["compiler-present", "no-healthcheck", "runs-as-root"])
    assert [c.key for c in d.categories] == ["build-tools", "other"]
    md = diff_to_markdown(d)
    assert "| Compilers and build tools | 4.0 kB | 0 B | -4.0 kB |" in md
