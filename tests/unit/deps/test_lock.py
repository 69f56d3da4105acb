"""Real uv resolutions. Network-marked ones reach PyPI (and the local indexes of the
pip config); the unreachable-index one only talks to 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.deps.audit import audit
from torchslim.deps.install import Scheme, install_wheel
from torchslim.deps.lock import Target, read_lock, resolve
from torchslim.deps.pipconf import IndexSettings, load_pip_settings
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import NetworkError, ResolveError


def _req(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def test_unreachable_index_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # keep the test fast; the message is the point
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # nothing cached to fall on
    settings = IndexSettings(index_url="http://127.0.0.1:9/simple")
    out = tmp_path / "pylock.toml"
    with pytest.raises((NetworkError, ResolveError)) as exc:
        resolve([_req(tmp_path, "six\n")], Target(), settings, out=out)
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "http://127.0.0.1:9/simple" in msg and "pip config" in msg
    assert not out.exists()


def test_unreachable_index_from_a_requirements_file_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--extra-index-url` in requirements.txt (the PyTorch index, say) that cannot be
    reached: the message names the file and line, not the pip config."""
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    req = _req(tmp_path, "six\n-r more.txt\n")
    (tmp_path / "more.txt").write_text("# the CPU wheels\n--index-url http://127.0.0.1:9/simple/\n")
    with pytest.raises(NetworkError) as exc:
        resolve([req], Target(), IndexSettings(), out=tmp_path / "pylock.toml")
    msg = str(exc.value)
    assert "\n" not in msg and "http://127.0.0.1:9/simple" in msg
    assert f"it is named at {tmp_path / 'more.txt'}:2 (--index-url)" in msg
    assert "pip config list" not in msg


@pytest.mark.network
@pytest.mark.parametrize(
    ("target", "tag"),
    [(Target(arch="x86_64"), "x86_64.whl"), (Target.from_platform("linux/arm64"), "aarch64.whl")],
)
def test_fastapi_for_each_arch(tmp_path: Path, target: Target, tag: str) -> None:
    out = tmp_path / "lock" / "pylock.toml"
    lock = resolve([_req(tmp_path, "fastapi\nuvicorn\n")], target, load_pip_settings(), out=out)
    core = lock.get("pydantic-core")
    assert core is not None and core.filename.endswith(tag), core
    assert lock.parents["fastapi"] == ("-r requirements.txt",)
    assert lock.parents["pydantic-core"] == ("pydantic",)
    assert all(len(w.sha256) == 64 for w in lock.packages)
    assert read_lock(out) == lock  # graph and target survive the round trip
    assert [p.name for p in out.parent.iterdir()] == ["pylock.toml"]  # no temp left behind


@pytest.mark.network
def test_python_313_on_debian_13_locks(tmp_path: Path) -> None:
    """glibc 2.41 (trixie, Python 3.13's base) is newer than any platform uv names."""
    example = Path(__file__).parents[3] / "examples" / "hello-torch" / "requirements.txt"
    req = tmp_path / "requirements.txt"
    req.write_text(example.read_text())
    target = Target(python="3.13", glibc="2.41")
    lock = resolve([req], target, load_pip_settings(), out=tmp_path / "pylock.toml")
    core = lock.get("pydantic-core")
    assert core is not None and "-cp313-" in core.filename, core
    assert read_lock(tmp_path / "pylock.toml").target == target


@pytest.mark.network
def test_missing_requirement_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    req = _req(tmp_path, "fastapi==9.9.9\n")
    with pytest.raises(ResolveError, match="no version of fastapi==9.9.9") as exc:
        resolve([req], Target(), load_pip_settings(), out=out)
    assert "\n" not in str(exc.value) and not out.exists()
    with pytest.raises(ResolveError, match="torchslim-no-such-pkg-4711 was not found"):
        resolve(
            [_req(tmp_path, "torchslim-no-such-pkg-4711\n")], Target(), IndexSettings(), out=out
        )


@pytest.mark.network
def test_dev_package_pulled_transitively(tmp_path: Path) -> None:
    lock = resolve(
        [_req(tmp_path, "pytest-cov\n")], Target(), load_pip_settings(), out=tmp_path / "l.toml"
    )
    found = {f.package: f.chain for f in audit(lock)}
    assert found["pytest"] == ("pytest", "pytest-cov", "-r requirements.txt")


@pytest.mark.network
def test_torch_from_pip_config_find_links(tmp_path: Path) -> None:
    settings = load_pip_settings()
    if not any(Path(f).is_dir() and list(Path(f).glob("torch-*.whl")) for f in settings.find_links):
        pytest.skip("pip config has no find-links folder with a torch wheel")
    t0 = time.monotonic()
    lock = resolve([], Target(), settings, extra=["torch==2.13.0+cpu"], out=tmp_path / "l.toml")
    torch = lock.get("torch")
    assert torch is not None and torch.url.startswith("file://"), torch
    assert torch.version == "2.13.0+cpu"
    assert lock.parents["torch"][-1] == "torchslim config"
    assert time.monotonic() - t0 < 60
    with pytest.raises(ResolveError, match="no wheel of torch v2.13.0.cpu for linux/arm64"):
        resolve(
            [], Target(arch="aarch64"), settings, extra=["torch==2.13.0+cpu"], out=tmp_path / "a"
        )


def _project(root: Path, name: str, compiled: bool) -> Path:
    src = root / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text("X = 1\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
    )
    if compiled:
        (src / "fast.c").write_text(
            "#include <Python.h>\n"
            'static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "fast"};\n'
            "PyMODINIT_FUNC PyInit_fast(void) { return PyModule_Create(&m); }\n"
        )
        (src / "setup.py").write_text(
            "from setuptools import Extension, setup\n"
            "setup(ext_modules=[Extension('fast', ['fast.c'])])\n"
        )
    return src


@pytest.mark.network
def test_local_source_without_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    _project(tmp_path, "purepkg", compiled=False)
    _project(tmp_path, "cpkg", compiled=True)
    settings = load_pip_settings()
    lock = resolve(
        [_req(tmp_path, "./purepkg\n")], Target(arch="aarch64"), settings, out=tmp_path / "l.toml"
    )
    pure = lock.get("purepkg")
    assert pure is not None and pure.filename == "purepkg-0.1-py3-none-any.whl"
    assert pure.url.startswith((tmp_path / "cache").as_uri())
    assert lock.parents["purepkg"] == ("-r requirements.txt",)
    with pytest.raises(ResolveError, match="./cpkg: building it in the sandbox failed .* no comp"):
        resolve([_req(tmp_path, "./cpkg\n")], Target(), settings, out=tmp_path / "c.toml")
    assert not (tmp_path / "c.toml").exists()


@pytest.mark.network
def test_pypi_https_lock_fetch_install(tmp_path: Path) -> None:
    settings = IndexSettings(cert="/etc/ssl/certs/ca-certificates.crt")  # PyPI only, https
    lock = resolve([_req(tmp_path, "six\nidna\n")], Target(), settings, out=tmp_path / "l.toml")
    assert all(w.url.startswith("https://") for w in lock.packages)
    store = BlobStore(tmp_path / "cache")
    paths = fetch_wheels(lock, store, settings)
    root = tmp_path / "root"
    for _name, wheel in sorted(paths.items()):
        install_wheel(wheel, root, Scheme.debian(), "/usr/bin/python3.11")
    assert (root / "usr/local/lib/python3.11/dist-packages/six.py").is_file()
