"""Findings: stable id, severity, bytes, example paths and the fix.

Each rule reads the classified totals; none re-reads layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torchslim.analyze.model import Answers, CategoryTotal, Finding, PackageTotal

CUDA_UNUSED_BY_INFERENCE = ("cupti", "cufile", "nvshmem", "nccl")

# id → (severity, title, fix, why); the catalogue docs/analyze.md lists.
RULES: dict[str, tuple[str, str, str, str]] = {
    "secrets": (
        "critical",
        "Likely secrets in the image",
        "delete them in the same layer that added them (or never COPY them: .dockerignore), "
        "rotate the credentials, use build secrets or runtime mounts",
        "anyone who can pull the image can read every layer",
    ),
    "unsafe-paths": (
        "high",
        "Layer members with absolute or '..' names",
        "rebuild the image with a tool that writes relative member names",
        "such names escape the root when a naive tool extracts the layer",
    ),
    "world-writable-devices": (
        "high",
        "World-writable device nodes",
        "remove device nodes from the image (the runtime provides /dev); never ship mode 0666",
        "a device node any user can open (/dev/mem, a disk) gives the app user the hardware",
    ),
    "malformed-whiteouts": (
        "medium",
        "Malformed whiteout entries",
        "rebuild the layer with a tool that writes OCI whiteouts (.wh.NAME, .wh..wh..opq)",
        "runtimes disagree on them: one deletes a directory or its parent, another ignores it",
    ),
    "compiler-present": (
        "high",
        "A compiler is in the final image",
        "build in a separate stage and copy only the results, or use `torchslim build`",
        "compilers add hundreds of MB and let an attacker build tools inside the container",
    ),
    "devel-base": (
        "high",
        "Built on a CUDA devel base (nvcc, CUDA headers)",
        "use the matching -runtime base (or torchslim's debian base: torch wheels carry CUDA)",
        "devel images add the toolkit, headers and static libraries on top of runtime",
    ),
    "runs-as-root": (
        "high",
        "Runs as root",
        "set a numeric non-root user: USER 10001 (torchslim build does this)",
        "a process escaping the app runs as root in the container",
    ),
    "ssh-server": (
        "high",
        "SSH server installed",
        "remove openssh-server; use `docker exec` / `kubectl exec` to get a shell",
        "an extra network daemon with its own keys and users",
    ),
    "cuda-twice": (
        "high",
        "CUDA libraries twice: system CUDA and nvidia-* wheels",
        "use a base without CUDA (torch wheels bring their own) such as torchslim's debian base",
        "the same libraries are stored, pulled and unpacked twice",
    ),
    "dev-packages": (
        "medium",
        "Dev-only Python packages",
        "move them to a dev requirements file (torchslim audits prod vs dev requirements)",
        "notebooks, test runners and linters are never imported by the service",
    ),
    "wasted-bytes": (
        "medium",
        "Bytes hidden by later layers",
        "delete files in the same RUN that created them, or build with torchslim "
        "(one copy per file)",
        "a file overwritten or deleted in a later layer is still pulled and stored",
    ),
    "caches": (
        "medium",
        "Package manager and bytecode caches",
        "pip install --no-cache-dir; rm -rf /var/lib/apt/lists/* in the same RUN; conda clean -afy",
        "caches only speed up a later install that never happens in a service",
    ),
    "torch-test": (
        "medium",
        "torch/test shipped",
        "delete site-packages/torch/test (torchslim's inference profile does)",
        "PyTorch's own test suite is never imported by a service",
    ),
    "torch-bin": (
        "medium",
        "torch/bin shipped",
        "delete site-packages/torch/bin (torchslim's inference profile does)",
        "test binaries and protoc are never run by a service",
    ),
    "torch-include": (
        "low",
        "torch/include shipped",
        "delete site-packages/torch/include unless you use torch.compile or build extensions",
        "C++ headers are read only when compiling",
    ),
    "inference-unused-libs": (
        "low",
        "Libraries an inference service does not load",
        "drop them with torchslim's inference profile (kept by the distributed/compile profiles)",
        "CUPTI (profiling), cuFile (GPUDirect storage), NVSHMEM and NCCL (multi-GPU) are "
        "loaded only by those workloads",
    ),
    "build-leftovers": (
        "low",
        "Headers, static libraries and test suites",
        "remove *.h, *.a and tests/ directories in the build stage",
        "they are used when building, never when serving",
    ),
    "build-tools": (
        "low",
        "Build tools (make, cmake, git …)",
        "build in a separate stage; keep them out of the final image",
        "build tools are not needed to serve a model",
    ),
    "setuid-files": (
        "low",
        "setuid/setgid executables",
        "remove them or chmod u-s,g-s; a non-root service needs none",
        "setuid binaries are the usual privilege-escalation path",
    ),
    "no-healthcheck": (
        "low",
        "No health check",
        "add HEALTHCHECK (exec form) or Kubernetes probes; torchslim build sets one",
        "without one the orchestrator cannot tell a hung model server from a healthy one",
    ),
    "tag-latest": (
        "low",
        "Tag is 'latest' or missing",
        "tag with a version, e.g. v1.2.0-pytorch2.13-cpu (torchslim build's default)",
        "'latest' moves: deployments are not reproducible and rollbacks are guesswork",
    ),
    "shell-present": (
        "info",
        "Shell present",
        "use a distroless base (torchslim's debian base has no shell)",
        "a shell helps an attacker more than the service",
    ),
}


@dataclass
class FindingInput:
    name: str
    user: str
    healthcheck: bool
    answers: Answers
    categories: dict[str, CategoryTotal]
    packages: list[PackageTotal]
    wasted_bytes: int
    wasted_paths: list[str]
    unsafe: list[str]
    setuid: list[tuple[str, int]]
    devices: list[str] = field(default_factory=list)
    bad_whiteouts: list[str] = field(default_factory=list)
    system_cuda: list[tuple[str, int]] = field(default_factory=list)
    wheel_cuda: list[tuple[str, int]] = field(default_factory=list)


def _paths(examples: list[tuple[str, int]], n: int = 5) -> list[str]:
    return [p for p, _ in examples[:n]]


def _make(fid: str, nbytes: int, paths: list[str], title: str | None = None) -> Finding:
    sev, default_title, fix, why = RULES[fid]
    return Finding(fid, sev, title or default_title, nbytes, paths, fix, why)


def _merge(cats: dict[str, CategoryTotal], ids: list[str]) -> tuple[int, list[str]]:
    present = [cats[i] for i in ids if i in cats and cats[i].bytes + cats[i].files > 0]
    examples = sorted((e for c in present for e in c.examples), key=lambda e: -e[1])
    return sum(c.bytes for c in present), _paths(examples)


def tag_of(name: str) -> str | None:
    ref = name.split("@", 1)[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return ref[colon + 1 :] if colon > slash else None


def find(inp: FindingInput) -> list[Finding]:
    cats, ans = inp.categories, inp.answers
    out: list[Finding] = []

    def has(cid: str) -> bool:
        c = cats.get(cid)
        return c is not None and c.files > 0

    if has("secrets"):
        out.append(_make("secrets", *_merge(cats, ["secrets"])))
    if inp.unsafe:
        out.append(_make("unsafe-paths", 0, inp.unsafe[:10]))
    if inp.devices:
        out.append(_make("world-writable-devices", 0, inp.devices[:10]))
    if inp.bad_whiteouts:
        out.append(_make("malformed-whiteouts", 0, inp.bad_whiteouts[:10]))
    if ans.compiler_present:
        nbytes, _ = _merge(cats, ["build-tools"])
        out.append(_make("compiler-present", nbytes, ans.compiler_evidence[:5]))
    elif has("build-tools"):
        out.append(_make("build-tools", *_merge(cats, ["build-tools"])))
    if ans.devel_base:
        out.append(_make("devel-base", 0, ans.devel_evidence[:5]))
    if ans.runs_as_root:
        out.append(_make("runs-as-root", 0, [ans.root_evidence]))
    if has("ssh-server"):
        out.append(_make("ssh-server", *_merge(cats, ["ssh-server"])))
    if inp.system_cuda and inp.wheel_cuda:
        nbytes = min(sum(s for _, s in inp.system_cuda), sum(s for _, s in inp.wheel_cuda))
        paths = [p for p, _ in sorted(inp.system_cuda, key=lambda e: -e[1])[:3]]
        paths += [p for p, _ in sorted(inp.wheel_cuda, key=lambda e: -e[1])[:2]]
        out.append(_make("cuda-twice", nbytes, paths))
    if ans.dev_packages:
        dev = [p for p in inp.packages if p.dev]
        title = "Dev-only Python packages: " + ", ".join(sorted({p.name for p in dev})[:8])
        out.append(
            _make(
                "dev-packages",
                sum(p.bytes for p in dev),
                [p.location for p in dev][:1] + [p.name for p in dev][:5],
                title,
            )
        )
    if inp.wasted_bytes:
        out.append(_make("wasted-bytes", inp.wasted_bytes, inp.wasted_paths[:5]))
    # __pycache__ is not a finding: precompiled bytecode makes start-up fast.
    cache_ids = ["cache.pip", "cache.conda-pkgs", "cache.apt"]
    if any(has(c) for c in cache_ids):
        out.append(_make("caches", *_merge(cats, cache_ids)))
    for part in ("test", "bin", "include"):
        if has(f"torch.{part}"):
            out.append(_make(f"torch-{part}", *_merge(cats, [f"torch.{part}"])))
    unused = [f"cuda.{lib}" for lib in CUDA_UNUSED_BY_INFERENCE]
    if any(has(c) for c in unused):
        out.append(_make("inference-unused-libs", *_merge(cats, unused)))
    leftovers = ["headers", "static-libs", "tests"]
    if any(has(c) for c in leftovers):
        out.append(_make("build-leftovers", *_merge(cats, leftovers)))
    if inp.setuid:
        out.append(
            _make("setuid-files", sum(s for _, s in inp.setuid), [p for p, _ in inp.setuid[:10]])
        )
    if not inp.healthcheck:
        out.append(_make("no-healthcheck", 0, []))
    tag = tag_of(inp.name)
    if tag is None or tag == "latest":
        out.append(_make("tag-latest", 0, [inp.name]))
    if has("shells"):
        out.append(_make("shell-present", *_merge(cats, ["shells"])))
    out.sort(key=lambda f: (-f.rank, -f.bytes, f.id))
    return out
