"""Issue 23, item 9: the CUDA profiles' rules, checked on a real GPU.

Our images do not fit through the device machine's door (64 MiB per call), so this checks
the rules instead, on that machine's own torch and nvidia-* packages:

1. finds the site-packages that holds torch and copies all of it (torch, triton, the
   nvidia packages and the rest) into a staging root at the same path, once per profile;
2. applies torchslim's own slimming (``torchslim.slim.slim_tree``) with profile
   ``inference`` to one copy and ``compile`` to the other; the ledgers say what went;
3. runs the checks in a child Python for the original (the control), then each copy, with
   the copy first on ``sys.path`` (the child checks that torch was imported from it):
   ``torch.cuda.is_available()``; the example model (examples/hello-torch) forward on
   the GPU against the CPU; a cuDNN convolution; cuBLAS matmuls (fp32, fp16);
   ``torch.compile`` on the GPU, which the ``compile`` profile promises (it keeps Triton
   and the headers) and ``inference`` does not (it drops Triton);
4. writes gpu-rules.json and gpu-rules.md into ``--out``.

On the device machine, from the repository root (under 10 minutes; no network there):

    python3 bench/gpu_rules.py --out "$OUT"

It needs pyelftools, and binutils' ``strip`` for the strip-symbols rule. Prepare them
here, as ``.gpu-deps`` (git ignores it), and name it in the run's carry:

    .venv/bin/python bench/gpu_rules.py --prepare

Here (no GPU) the same command runs as a dry run against an installed CPU torch: the
rules apply and the CUDA checks say why they cannot pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPS = REPO / ".gpu-deps"
MODEL = REPO / "examples" / "hello-torch" / "model" / "model.pt"
PROFILES = ("inference", "compile")
STRIP_LIBS = ("libbfd-2.40-system.so", "libsframe.so.0", "libz.so.1", "libzstd.so.1")

# The checks, run in a child Python; prints one JSON object.
CHECKS = r"""
import json, os, sys, time
first, original = sys.argv[1], os.path.realpath(sys.argv[3])
if first:  # the copy instead of the original, never both
    sys.path = [p for p in sys.path if os.path.realpath(p) != original]
    sys.path.insert(0, first)
out = {}
def check(name, fn):
    start = time.monotonic()
    try:
        out[name] = {"ok": True, "detail": fn()}
    except Exception as exc:  # every failure is a finding, with its type and message
        out[name] = {"ok": False, "detail": f"{type(exc).__name__}: {str(exc)[:600]}"}
    out[name]["seconds"] = round(time.monotonic() - start, 2)
import torch
out["torch"] = {"ok": not first or torch.__file__.startswith(first),
                "detail": f"{torch.__version__} from {torch.__file__}", "seconds": 0}
def available():
    assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
    return f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
check("cuda.is_available", available)
def example():
    note = ""
    try:
        model = torch.jit.load(sys.argv[2], map_location="cpu").eval()
    except Exception as exc:  # saved by a newer torch: the same model (make_model.py), eager
        note = f" (eager copy: the TorchScript file did not load: {type(exc).__name__})"
        model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU())
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor([[1.0, 0.0, -1.0, 0.5], [0.0, 2.0, 0.0, -0.5]]))
            model[0].bias.copy_(torch.tensor([0.5, -1.0]))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]])
    with torch.no_grad():
        want = model(x)
        got = model.cuda()(x.cuda()).cpu()
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert torch.allclose(want, torch.tensor([[0.5, 1.0], [0.0, 0.0]])), want
    return f"outputs {got.tolist()}{note}"
check("example model forward", example)
def conv():
    torch.backends.cudnn.enabled = True
    x, w = torch.randn(8, 16, 32, 32), torch.randn(32, 16, 3, 3)
    want = torch.nn.functional.conv2d(x, w, padding=1)
    got = torch.nn.functional.conv2d(x.cuda(), w.cuda(), padding=1).cpu()
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-3), (got - want).abs().max()
    return f"cuDNN {torch.backends.cudnn.version()}, max error {(got - want).abs().max():.2e}"
check("cuDNN conv2d", conv)
def matmul():
    a, b = torch.randn(512, 256), torch.randn(256, 384)
    want = a @ b
    got32 = (a.cuda() @ b.cuda()).cpu()
    got16 = (a.cuda().half() @ b.cuda().half()).float().cpu()
    assert torch.allclose(got32, want, atol=1e-2, rtol=1e-3), (got32 - want).abs().max()
    assert torch.allclose(got16, want, atol=0.5, rtol=1e-2), (got16 - want).abs().max()
    return f"fp32 max error {(got32 - want).abs().max():.2e}, fp16 {(got16 - want).abs().max():.2e}"
check("cuBLAS matmul", matmul)
def compiled():
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8))
    model = model.cuda().eval()
    x = torch.randn(32, 64, device="cuda")
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model)(x)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    return "inductor + Triton kernels ran and matched eager"
check("torch.compile (GPU)", compiled)
print(json.dumps(out))
"""


def prepare() -> None:
    """.gpu-deps: pyelftools (pure Python) and binutils' strip with the libraries it needs."""
    shutil.rmtree(DEPS, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(DEPS / "py"),
         "pyelftools"],
        check=True,
    )  # fmt: skip
    (DEPS / "bin").mkdir()
    (DEPS / "lib").mkdir()
    strip = shutil.which("strip")
    if strip is None:
        raise SystemExit("no strip here: apt-get install binutils, then run --prepare again")
    shutil.copy2(os.path.realpath(strip), DEPS / "lib" / "strip.bin")
    for lib in STRIP_LIBS:
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            if Path(d, lib).exists():
                shutil.copy2(os.path.realpath(Path(d, lib)), DEPS / "lib" / lib)
                break
    wrapper = DEPS / "bin" / "strip"
    wrapper.write_text(
        '#!/bin/sh\nhere="$(dirname "$(readlink -f "$0")")/../lib"\n'
        'LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/strip.bin" "$@"\n'
    )
    wrapper.chmod(0o755)
    size = sum(f.stat().st_size for f in DEPS.rglob("*") if f.is_file())
    print(f"wrote {DEPS} ({size / 1e6:.1f} MB): carry it with the device run")


def site_of_torch(python: str) -> Path:
    code = "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise SystemExit(f"{python} cannot import torch:\n{found.stderr[-2000:]}")
    return Path(found.stdout.strip())


def tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())


def copy_site(site: Path, root: Path) -> tuple[str, int]:
    """The whole site-packages into ``root`` at the same path. Real copies: strip must
    never write through a hard link into the machine's own torch. All of it, so that the
    child can take the original off ``sys.path``: the ``nvidia`` namespace package would
    otherwise find a removed library in the original."""
    rel = site.as_posix().lstrip("/")
    dest = root / rel
    dest.parent.mkdir(parents=True)
    shutil.copytree(site, dest, symlinks=True)
    return "/" + rel, tree_bytes(dest)


def run_checks(python: str, site: Path, first: Path | None, timeout: int) -> dict[str, object]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [python, "-c", CHECKS, str(first or ""), str(MODEL), str(site)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"child": {"ok": False, "detail": proc.stderr[-1500:], "seconds": 0}}
    got: dict[str, object] = json.loads(lines[-1])
    return got


def report(results: dict[str, dict[str, object]], slimmed: dict[str, object]) -> str:
    names: list[str] = []
    for checks in results.values():
        names += [n for n in checks if n not in names]
    head = ["check", *results]
    lines = [f"| {' | '.join(head)} |", "|---" * len(head) + "|"]
    for name in names:
        cells = []
        for checks in results.values():
            got = checks.get(name)
            if not isinstance(got, dict):
                cells.append("–")
                continue
            mark = "pass" if got["ok"] else "FAIL"
            cells.append(f"{mark}: {str(got['detail']).replace('|', '/')[:160]}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        "| profile | bytes before | bytes after | removed by rule |",
        "|---|---:|---:|---|",
    ]
    for profile, info in slimmed.items():
        assert isinstance(info, dict)
        rules = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in info["by_rule"].items())
        before, after = info["before"] / 1e6, info["after"] / 1e6
        lines.append(f"| {profile} | {before:.1f} MB | {after:.1f} MB | {rules} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prepare", action="store_true", help="make .gpu-deps here, then stop")
    ap.add_argument("--out", type=Path, default=Path("gpu-rules"), help="where the report goes")
    ap.add_argument("--python", default=sys.executable, help="the Python that has torch")
    ap.add_argument("--work", type=Path, help="scratch space (default: a temporary folder)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds for each child's checks")
    args = ap.parse_args()
    if args.prepare:
        prepare()
        return
    sys.path.insert(0, str(REPO / "src"))
    if (DEPS / "py").is_dir():
        sys.path.insert(0, str(DEPS / "py"))
        os.environ["PATH"] = f"{DEPS / 'bin'}:{os.environ['PATH']}"
    from torchslim.slim import Ledger, slim_tree
    from torchslim.slim.elf import strip_tool

    started = time.monotonic()
    site = site_of_torch(args.python)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, object]] = {}
    slimmed: dict[str, object] = {}
    print(f"torch from {site}; strip: {strip_tool() or 'none (strip-symbols not applied)'}")
    results["original"] = run_checks(args.python, site, None, args.timeout)
    with tempfile.TemporaryDirectory(prefix="gpu-rules-", dir=args.work) as tmp:
        for profile in PROFILES:
            root = Path(tmp) / profile
            site_path, before = copy_site(site, root)
            ledger = Ledger()
            slim_tree(root, site_path, profile=profile, ledger=ledger)
            after = tree_bytes(root)
            by_rule = {rule: nbytes for rule, _why, _files, nbytes in ledger.by_rule()}
            slimmed[profile] = {"before": before, "after": after, "by_rule": by_rule}
            print(f"{profile}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
            copy = root / site_path.lstrip("/")
            results[profile] = run_checks(args.python, site, copy, args.timeout)
            shutil.rmtree(root)
    seconds = time.monotonic() - started
    data = {"site": str(site), "strip": strip_tool(), "seconds": round(seconds, 1),
            "results": results, "slimmed": slimmed}  # fmt: skip
    (args.out / "gpu-rules.json").write_text(json.dumps(data, indent=2))
    text = report(results, slimmed)
    (args.out / "gpu-rules.md").write_text(text + "\n")
    print(text)
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
