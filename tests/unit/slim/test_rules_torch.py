"""Rules on a slice of the real torch 2.13.0 CPU wheel (about 60 MB unpacked)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from support.slim import (
    SITE,
    TORCH_DIST,
    TORCH_LIB_KEPT,
    TORCH_LIB_TEST,
    TORCH_TEST_SAMPLE,
    clone_site,
    tree_bytes,
)

from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure, raise_for_missing, upstream_warnings
from torchslim.slim.elf import elf_info
from torchslim.slim.ledger import Ledger


def _slim(template: Path, root: Path, **kw: object) -> tuple[Path, Ledger, int]:
    site = clone_site(template, root)
    before = tree_bytes(site)
    ledger = Ledger()
    slim_tree(root, SITE, ledger=ledger, **kw)  # type: ignore[arg-type]
    return site, ledger, before


@pytest.fixture(scope="module")
def inference(torch_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ledger]:
    root = tmp_path_factory.mktemp("inference")
    site, ledger, before = _slim(torch_slice, root)
    # The ledger accounts for every byte that left the disk (removed + stripped).
    assert ledger.total() == before - tree_bytes(site)
    return site, ledger


def _rules(ledger: Ledger) -> dict[str, tuple[int, int]]:
    return {rid: (files, nbytes) for rid, _, files, nbytes in ledger.by_rule()}


def test_torch_test_binaries_removed(inference: tuple[Path, Ledger]) -> None:
    site, ledger = inference
    for rel in TORCH_TEST_SAMPLE:
        assert not (site / rel).exists()
    assert not (site / "torch/test").exists()  # emptied directory pruned
    assert _rules(ledger)["torch-test-binaries"][0] == len(TORCH_TEST_SAMPLE)


def test_torch_bin_tests_removed_but_shm_manager_kept(
    inference: tuple[Path, Ledger], torch_slice: Path
) -> None:
    site, ledger = inference
    assert sorted(p.name for p in (site / "torch/bin").iterdir()) == ["torch_shm_manager"]
    files, nbytes = _rules(ledger)["torch-bin-tests"]
    template_bin = [p for p in (torch_slice / "torch/bin").rglob("*") if p.is_file()]
    assert files == len(template_bin) - 1
    assert nbytes > 40_000_000  # test_api, test_jit, protoc ...


def test_torch_test_libraries_removed_and_not_needed(inference: tuple[Path, Ledger]) -> None:
    site, ledger = inference
    removed = {rel.rsplit("/", 1)[1] for rel in TORCH_LIB_TEST}
    for rel in TORCH_LIB_TEST:
        assert not (site / rel).exists()
    for rel in TORCH_LIB_KEPT:
        assert (site / rel).exists()
    assert _rules(ledger)["torch-test-libraries"][0] == len(TORCH_LIB_TEST)
    for so in site.rglob("*.so*"):
        info = elf_info(so)
        assert info is not None
        assert not removed & set(info.needed), so


def test_torch_headers_and_cmake_removed(inference: tuple[Path, Ledger]) -> None:
    site, ledger = inference
    assert not (site / "torch/include").exists()
    assert not (site / "torch/share").exists()
    assert not list((site / "torch/lib").glob("libshm/*.h"))
    rules = _rules(ledger)
    assert rules["torch-headers"][0] >= 5 and rules["torch-cmake-config"][0] > 3


def test_torch_package_test_suite_removed_but_torch_testing_kept(
    inference: tuple[Path, Ledger],
) -> None:
    site, ledger = inference
    assert not (site / "torch/fx/passes/tests").exists()
    assert (site / "torch/testing/__init__.py").exists()
    assert _rules(ledger)["package-test-suites"][0] == 3


def test_type_stubs_removed_and_torch_testing_internal_kept(
    inference: tuple[Path, Ledger],
) -> None:
    """torch._refs and torch.utils.checkpoint import torch.testing._internal at the top:
    it is not test-only (a rule that removed it was undone by the proof on every build)."""
    site, ledger = inference
    assert not (site / "torch/_VF.pyi").exists() and not (site / "torch/_C/__init__.pyi").exists()
    assert (site / "torch/testing/_internal/common_utils.py").exists()
    rules = _rules(ledger)
    assert rules["type-stubs"][0] == 2 and rules["type-stubs"][1] > 1_000_000


def test_full_keeps_type_stubs(torch_slice: Path, tmp_path: Path) -> None:
    site, _, _ = _slim(torch_slice, tmp_path / "f", profile="full")
    assert (site / "torch/_VF.pyi").exists()


def test_strip_symbols_on_torch_libs(inference: tuple[Path, Ledger]) -> None:
    site, ledger = inference
    (row,) = [r for r in ledger.to_dict()["rules"] if r["id"] == "strip-symbols"]
    assert row["files"] >= 3 and row["bytes"] > 0
    for image_path in row["examples"]:
        info = elf_info(site / image_path.removeprefix(SITE + "/"))
        assert info is not None and not info.strippable, image_path
    # Files strip would only grow (auditwheel-patched _C.so) are left as they were.
    assert (site / "torch/_C.cpython-311-x86_64-linux-gnu.so").stat().st_size == 8737


def test_record_rewritten(inference: tuple[Path, Ledger], torch_slice: Path) -> None:
    site, _ = inference
    dist = importlib.metadata.Distribution.at(site / TORCH_DIST)
    listed = {str(f) for f in dist.files or []}
    original = (torch_slice / TORCH_DIST / "RECORD").read_text()
    for gone in ("torch/bin/test_api", "torch/include/c10/macros/Macros.h", *TORCH_LIB_TEST):
        assert f"\n{gone}," in original and gone not in listed
    assert "torch/bin/torch_shm_manager" in listed
    assert "torch/testing/__init__.py" in listed
    # Stripped files carry their new hash and size.
    for f in dist.files or []:
        path = site / str(f)
        if str(f).startswith("torch/lib/") and path.exists() and f.hash is not None:
            from support.slim import record_hash

            assert f"{f.hash.mode}={f.hash.value}" == record_hash(path), f
            assert f.size == path.stat().st_size


def test_compile_profile_keeps_headers(torch_slice: Path, tmp_path: Path) -> None:
    site, ledger, _ = _slim(torch_slice, tmp_path, profile="compile")
    assert (site / "torch/include/c10/macros/Macros.h").exists()
    assert (site / "torch/include/c10/test/util/Macros.h").exists()  # not a "test suite"
    assert (site / "torch/share/cmake").is_dir()
    rules = _rules(ledger)
    assert "torch-headers" not in rules and "torch-cmake-config" not in rules
    assert not (site / "torch/bin/test_api").exists()


def test_full_profile_removes_nothing_of_torch(torch_slice: Path, tmp_path: Path) -> None:
    site, ledger, before = _slim(torch_slice, tmp_path, profile="full")
    assert ledger.total() == 0 and tree_bytes(site) == before


def test_keep_globs_override_rules(torch_slice: Path, tmp_path: Path) -> None:
    keep = ["torch/include", f"{SITE}/torch/bin/test_api", "torch/lib/libtorchbind_test.so"]
    site, ledger, _ = _slim(torch_slice, tmp_path, keep=keep)
    assert (site / "torch/include/c10/macros/Macros.h").exists()
    assert (site / "torch/bin/test_api").exists()
    assert not (site / "torch/bin/test_jit").exists()
    assert (site / "torch/lib/libtorchbind_test.so").exists()
    # Only the libshm headers (outside torch/include) went.
    (headers,) = [r for r in ledger.to_dict()["rules"] if r["id"] == "torch-headers"]
    assert all("/torch/lib/libshm" in p for p in headers["examples"])
    # --keep also protects from strip-symbols: the kept test binary still has its symbols.
    info = elf_info(site / "torch/bin/test_api")
    assert info is not None and info.strippable
    assert not any("test_api" in p for r in ledger.to_dict()["rules"] for p in r["examples"])


def test_ledger_examples_are_image_paths(inference: tuple[Path, Ledger]) -> None:
    _, ledger = inference
    for row in ledger.to_dict()["rules"]:
        assert all(p.startswith(SITE + "/") for p in row["examples"])


def test_test_shim_is_upstreams_miss_and_no_slim_passes(torch_slice: Path, tmp_path: Path) -> None:
    """torch/bin/test_shim has RUNPATH $ORIGIN and needs torch/lib's libraries: the wheel
    as published cannot load it. Unslimmed (--no-slim) that is a warning naming torch;
    slimmed, the rule torch-bin-tests removes it and nothing is missing."""
    sys_dir = Path("/usr/lib/x86_64-linux-gnu")
    if not (sys_dir / "libc.so.6").exists():
        pytest.skip(f"{sys_dir} not present")
    clone_site(torch_slice, tmp_path / "full")
    trees = [(tmp_path / "full", "/"), (sys_dir, str(sys_dir))]
    missing = check_closure(trees, check_prefixes=[SITE], removed={})
    shim = [m for m in missing if m.file == f"{SITE}/torch/bin/test_shim"]
    assert {"libc10.so", "libtorch.so"} <= {m.needed for m in shim}
    assert all(m.upstream and m.package == "torch 2.13.0+cpu" for m in missing)
    raise_for_missing(missing)  # the --no-slim build goes on
    (warning,) = upstream_warnings(missing)
    assert warning.startswith("torch 2.13.0+cpu as published: ")  # the slice lacks more too
    assert (
        "torch/bin/test_shim needs libc10.so, libtorch.so (in the image, not on its search path)"
        in warning
    )
    assert "--keep" not in warning

    clone_site(torch_slice, tmp_path / "slim")
    removed = slim_tree(tmp_path / "slim", SITE, ledger=Ledger())
    slimmed = check_closure(
        [(tmp_path / "slim", "/"), (sys_dir, str(sys_dir))], check_prefixes=[SITE], removed=removed
    )
    assert not [m for m in slimmed if "torch/bin/" in m.file]
    assert all(m.upstream for m in slimmed)  # what the slice lacks (libtorch_cpu.so), not slimming
