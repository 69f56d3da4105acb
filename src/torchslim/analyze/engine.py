"""One pass over the layers into a merged view, then classification and findings."""

from __future__ import annotations

import posixpath
import re
import stat
from typing import Any

from torchslim.analyze import owners
from torchslim.analyze.classify import (
    CATEGORIES,
    DEV_PYTHON,
    FileFacts,
    classify,
    cuda_lib,
    is_compiler,
)
from torchslim.analyze.findings import FindingInput, find
from torchslim.analyze.model import (
    Analysis,
    Answers,
    CategoryTotal,
    Estimate,
    LayerInfo,
    PackageTotal,
)
from torchslim.oci.flatten import MergedView, Node, display, flatten
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer
from torchslim.oci.limits import Budget, Limits
from torchslim.oci.tarstream import LayerStats, Peek

EXAMPLES = 8
_KEY_MARKERS = (b"PRIVATE KEY-----", b"openssh-key-v1", b"PuTTY-User-Key-File")
_NOT_KEYS = (
    ".py",
    ".pyc",
    ".so",
    ".h",
    ".hpp",
    ".json",
    ".txt",
    ".md",
    ".html",
    ".js",
    ".css",
    ".png",
    ".svg",
    ".c",
    ".cc",
    ".cpp",
    ".pyi",
    ".rst",
    ".typed",
    ".cfg",
    ".toml",
    ".mo",
    ".gz",
    ".xml",
    ".yaml",
    ".yml",
    ".ini",
    ".sh",
    ".list",
    ".md5sums",
)
_CUDA_HEADERS = re.compile(r"(^|/)(cuda|cuda_runtime|cublas_v2|cudnn|cusparse|nvrtc)\.h$")

# Categories torchslim build (inference profile) drops; the estimate subtracts them.
# Not __pycache__: torchslim precompiles hash-based .pyc on purpose (fast start-up).
REMOVED_BY_BUILD = (
    "secrets",
    "cache.pip",
    "cache.conda-pkgs",
    "cache.apt",
    "build-tools",
    "python.dev",
    "torch.test",
    "torch.bin",
    "torch.include",
    "headers",
    "static-libs",
    "tests",
    "ssh-server",
    "shells",
    "cuda.cupti",
    "cuda.cufile",
    "cuda.nvshmem",
)


class _Inspector:
    """What analyze reads of each file as it streams by: metadata files whole, key heads."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __call__(self, node: Node, peek: Peek) -> None:
        if owners.wants_capture(node.path) and self.budget.can_capture(node.size):
            node.data = peek(node.size)
        elif 64 <= node.size <= 16384 and not node.path.endswith(_NOT_KEYS):
            head = peek(64)
            node.private_key = (
                head.startswith(b"-----BEGIN")
                and any(k in head for k in _KEY_MARKERS)
                or head.startswith(b"openssh-key-v1")
                or head.startswith(b"PuTTY-User-Key-File")
            )


def _created_by(config: dict[str, Any], n: int) -> list[str]:
    hist = [h for h in config.get("history") or [] if isinstance(h, dict)]
    real = [str(h.get("created_by", "")) for h in hist if not h.get("empty_layer")]
    return real + [""] * (n - len(real)) if len(real) <= n else real[-n:]


def _user_is_root(user: str, uids: dict[str, int]) -> tuple[bool, str]:
    name = user.split(":", 1)[0].strip()
    if not name:
        return True, "config User is empty: the container runs as root"
    if name == "root" or name == "0":
        return True, f"config User is {user!r}"
    if name.isdigit():
        return False, f"config User is uid {name}"
    if name in uids:
        uid = uids[name]
        return uid == 0, f"config User {name!r} is uid {uid} in /etc/passwd"
    return False, f"config User {name!r} is not in the image's /etc/passwd (runtime decides)"


def _owner_map(view: MergedView, pkgs: list[owners.Package]) -> dict[str, owners.Package]:
    out: dict[str, owners.Package] = {}
    # Lower priority first, so Python RECORDs win over conda and dpkg.
    order = {"debian": 0, "conda": 1, "python": 2}
    for pkg in sorted(pkgs, key=lambda p: order[p.kind]):
        for f in pkg.files:
            real = view.resolve(f) if f in view.nodes else (view.resolve(f) or f)
            if real is not None:
                out[real] = pkg
    return out


def analyze_image(image: Image, *, name: str, limits: Limits) -> Analysis:
    config = image.config()
    layers = image.layers()
    budget = Budget(limits)
    created = _created_by(config, len(layers))
    infos: list[LayerInfo] = []

    def on_layer(i: int, layer: Layer, stats: LayerStats) -> None:
        d = layer.descriptor
        infos.append(
            LayerInfo(
                i,
                d.digest,
                layer.diff_id,
                d.media_type,
                stats.compressed,
                stats.uncompressed,
                stats.entries,
                created[i] if i < len(created) else "",
            )
        )

    view = flatten(
        image, limits=limits, budget=budget, on_file=_Inspector(budget), on_layer=on_layer
    )

    deb = owners.debian_packages(view)
    py = owners.python_packages(view)
    conda = owners.conda_packages(view)
    dev_names = owners.dev_only(py, DEV_PYTHON)
    owner_of = _owner_map(view, [*deb.values(), *py.values(), *conda.values()])

    cats = {c.id: CategoryTotal(c.id, c.title, c.why) for c in CATEGORIES}
    examples: dict[str, list[tuple[str, int]]] = {c.id: [] for c in CATEGORIES}
    pkg_bytes: dict[int, list[int]] = {}
    setuid: list[tuple[str, int]] = []
    compilers: list[str] = []
    devel: list[str] = []
    system_cuda: list[tuple[str, int]] = []
    wheel_cuda: list[tuple[str, int]] = []
    files_bytes = count = 0
    for node in view.files():
        pkg = owner_of.get(node.path)
        facts = FileFacts(
            node.path,
            pkg.kind if pkg else "",
            pkg.name if pkg else "",
            bool(pkg and pkg.kind == "python" and pkg.name in dev_names),
            node.private_key,
            created[node.layer] if node.layer < len(created) else "",
        )
        cat = classify(facts)
        total = cats[cat.id]
        total.bytes += node.size
        total.files += 1
        examples[cat.id].append((node.path, node.size))
        owner_key = f"{pkg.kind}:{pkg.name}" if pkg else "unowned"
        total.by_owner[owner_key] = total.by_owner.get(owner_key, 0) + node.size
        if pkg is not None:
            acc = pkg_bytes.setdefault(id(pkg), [0, 0])
            acc[0] += node.size
            acc[1] += 1
        files_bytes += node.size
        count += 1
        infos[node.layer].added_bytes += node.size
        if node.mode & (stat.S_ISUID | stat.S_ISGID) and node.mode & 0o111:
            setuid.append((node.path, node.size))
        if is_compiler(node.path):
            compilers.append(node.path)
        base = posixpath.basename(node.path)
        if base == "nvcc" or (_CUDA_HEADERS.search(node.path) and "-packages/" not in node.path):
            devel.append(node.path)
        if cat.id.startswith("cuda.") and cat.id not in ("cuda.triton",) and cuda_lib(node.path):
            is_wheel = (pkg is not None and pkg.kind == "python") or "-packages/" in node.path
            (wheel_cuda if is_wheel else system_cuda).append((node.path, node.size))

    for w in view.waste:
        infos[w.layer].wasted_bytes += w.size
    for cid, ex in examples.items():
        ex.sort(key=lambda e: (-e[1], e[0]))
        cats[cid].examples = [(display(p), s) for p, s in ex[:EXAMPLES]]

    packages: list[PackageTotal] = []
    for pkg in [*py.values(), *deb.values(), *conda.values()]:
        nbytes, nfiles = pkg_bytes.get(id(pkg), [0, 0])
        if pkg.kind == "debian" and not pkg.files:
            nbytes = pkg.installed_size  # distroless status.d: no file lists, use the claim
        packages.append(
            PackageTotal(
                pkg.kind,
                pkg.name,
                pkg.version,
                nbytes,
                nfiles,
                pkg.kind == "python" and pkg.name in dev_names,
                display(pkg.location),
            )
        )
    packages.sort(key=lambda p: (-p.bytes, p.kind, p.name))

    inner = config.get("config") or {}
    user = str(inner.get("User") or "")
    root, root_why = _user_is_root(user, owners.passwd_uids(view))
    hc = inner.get("Healthcheck") or {}
    healthcheck = bool(hc.get("Test")) and (hc.get("Test") or ["NONE"])[0] != "NONE"
    answers = Answers(
        compiler_present=bool(compilers),
        compiler_evidence=[display(p) for p in sorted(compilers)][:EXAMPLES],
        devel_base=bool(devel),
        devel_evidence=[display(p) for p in sorted(devel)][:EXAMPLES],
        dev_packages=sorted(dev_names),
        runs_as_root=root,
        root_evidence=root_why,
    )
    waste = sorted(view.waste, key=lambda w: (-w.size, w.path))
    wasted_bytes = sum(w.size for w in waste)
    setuid.sort()
    findings = find(
        FindingInput(
            name=name,
            user=user,
            healthcheck=healthcheck,
            answers=answers,
            categories=cats,
            packages=packages,
            wasted_bytes=wasted_bytes,
            wasted_paths=[display(w.path) for w in waste],
            unsafe=[f"{u.name} ({u.why})" for u in view.unsafe],
            devices=[f"{u.name} ({u.why})" for u in view.devices],
            bad_whiteouts=[f"{u.name} ({u.why})" for u in view.bad_whiteouts],
            setuid=[(display(p), s) for p, s in setuid],
            system_cuda=system_cuda,
            wheel_cuda=wheel_cuda,
        )
    )
    compressed = sum(i.compressed for i in infos)
    uncompressed = sum(i.uncompressed for i in infos)
    removable_by = {c: cats[c].bytes for c in REMOVED_BY_BUILD if cats[c].bytes}
    cuda_dup = next((f.bytes for f in findings if f.id == "cuda-twice"), 0)
    if cuda_dup:
        removable_by["cuda-twice"] = cuda_dup
    removable = sum(removable_by.values())
    est_files = max(files_bytes - removable, 0)
    # A rebuilt image holds each file once: tar overhead scales, hidden copies vanish.
    est_uncompressed = int(est_files * (uncompressed / files_bytes)) if files_bytes else 0
    est_uncompressed = min(est_uncompressed, uncompressed - wasted_bytes) if uncompressed else 0
    est_compressed = int(compressed * est_uncompressed / uncompressed) if uncompressed else 0
    if wasted_bytes:
        removable_by["wasted-bytes"] = wasted_bytes
    estimate = Estimate(
        uncompressed - est_uncompressed,
        max(est_uncompressed, 0),
        max(est_compressed, 0),
        removable_by,
    )
    ordered = sorted(cats.values(), key=lambda c: (-c.bytes, c.id))
    return Analysis(
        image=display(name),
        digest=image.digest(),
        platform=str(image.platform),
        user=user,
        healthcheck=healthcheck,
        compressed=compressed,
        uncompressed=uncompressed,
        files_bytes=files_bytes,
        file_count=count,
        layers=infos,
        categories=[c for c in ordered if c.files],
        packages=packages,
        wasted_bytes=wasted_bytes,
        wasted_top=[(display(w.path), w.size, w.layer, w.by_layer, w.how) for w in waste[:20]],
        answers=answers,
        findings=findings,
        estimate=estimate,
        view=view,
    )
