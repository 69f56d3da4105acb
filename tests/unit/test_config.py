"""ProjectConfig: defaults, validation, and one-line errors naming file and key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.config import duration_ns, load_config
from torchslim.errors import ConfigError
from torchslim.project.items import requirement_entry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-torch"


def write(tmp: Path, text: str) -> Path:
    (tmp / "app").mkdir(exist_ok=True)
    (tmp / "requirements.txt").write_text("fastapi\n")
    (tmp / "torchslim.toml").write_text(text)
    return tmp


MINIMAL = 'name = "svc"\nversion = "1.0"\ntorch = "2.13.0"\napp = "app"\ncmd = "python3 -m app"\n'


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.name == "hello-torch"
    assert cfg.user == 1000
    assert cfg.model == ["model/model.pt"]
    assert cfg.healthcheck.retries == 3
    assert cfg.root == EXAMPLE


def test_defaults_and_string_forms(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.cmd == ["python3", "-m", "app"]
    assert cfg.requirements is None  # found in the project (torchslim.project.sources)
    assert cfg.dev_requirements is None
    assert (cfg.version, cfg.extras, cfg.include, cfg.files, cfg.writable) == (
        "1.0",
        [],
        [],
        {},
        [],
    )
    assert (cfg.base, cfg.profile, cfg.variant, cfg.python) == (
        "debian",
        "inference",
        "cpu",
        "3.11",
    )


def test_pyproject_table(tmp_path: Path) -> None:
    write(tmp_path, "")
    (tmp_path / "torchslim.toml").unlink()
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n[tool.torchslim]\n" + MINIMAL)
    assert load_config(tmp_path).name == "svc"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("colour = 'blue'\n", "unknown key `colour`"),
        ("port = 'eighty'\n", "key `port`"),
        ("user = 0\n", "key `user`"),
        ("variant = 'rocm'\n", "key `variant`"),
        ("platform = 'windows/amd64'\n", "key `platform`"),
        ("[healthcheck]\ninterval = 'soon'\n", "key `healthcheck.interval`"),
        ("requests = [{ path = 'predict' }]\n", "key `requests.0.path`"),
        (
            "requests = [{ path = '/p', upload = 'requirements.txt', json = 1 }]\n",
            "one of upload, body",
        ),
        ("requests = [{ path = '/p', upload = 'missing.png' }]\n", "upload file 'missing.png'"),
        ("requests = [{ path = '/p', body = '../../etc/passwd' }]\n", "body"),
        ("proof-timeout = 1\n", "key `proof-timeout`"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, MINIMAL + extra))
    msg = str(err.value)
    assert needle in msg and "torchslim.toml" in msg and "\n" not in msg


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key `torch`"):
        load_config(write(tmp_path, MINIMAL.replace('torch = "2.13.0"\n', "")))


def test_malformed_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="torchslim.toml: not found") as err:
        load_config(tmp_path)
    assert f"`torchslim init {tmp_path}`" in str(err.value)


def test_missing_files_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key `model`"):
        load_config(write(tmp_path, MINIMAL + 'model = "nope.pt"\n'))


def test_durations() -> None:
    assert duration_ns("30s") == 30_000_000_000
    assert duration_ns("500ms") == 500_000_000
    with pytest.raises(ValueError):
        duration_ns("30")


@pytest.mark.parametrize(("text", "lines"), [("", 1), ("name = \n", 1), ("name = 'x'\n", 3)])
def test_cli_bad_config_reports_every_error(tmp_path: Path, text: str, lines: int) -> None:
    if text:
        write(tmp_path, text)
    exe = shutil.which("torchslim") or sys.executable
    args = [exe] if exe != sys.executable else [exe, "-m", "torchslim.cli"]
    proc = subprocess.run(
        [*args, "build", str(tmp_path), "--output", f"oci:{tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    out = proc.stderr.strip().splitlines()
    assert len(out) == lines
    if lines > 1:  # name = 'x' lacks torch and cmd: a count, then one line each
        assert "2 configuration errors" in out[0]
        assert "missing required key `torch`" in out[1] and "missing required key `cmd`" in out[2]
    assert not (tmp_path / "out").exists()


def test_every_error_of_one_file_is_reported_together(tmp_path: Path) -> None:
    text = (
        MINIMAL + "port = 'eighty'\nuser = 0\nmodel = ['nope.pt']\nrequirements = ['missing.txt']\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    lines = str(err.value).splitlines()
    assert lines[0].endswith("torchslim.toml: 4 configuration errors:")
    body = "\n".join(lines[1:])
    for needle in ("key `port`", "key `user`", "key `model`: file or folder 'nope.pt'",
                   "key `requirements`: file 'missing.txt' does not exist"):  # fmt: skip
        assert needle in body


def test_inline_requirements_and_files_told_apart(tmp_path: Path) -> None:
    # The example: inline strings are requirements, not missing files.
    text = MINIMAL + 'requirements = ["torch==2.13.0", "fastapi", "requirements.txt"]\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.requirements == ["torch==2.13.0", "fastapi", "requirements.txt"]
    assert requirement_entry("fastapi[standard]>=0.110", tmp_path) == "inline"
    assert requirement_entry("pkg @ https://example.org/pkg-1.0-py3-none-any.whl", tmp_path) == (
        "inline"
    )
    for name in ("requirements.txt", "reqs/prod.in", "uv.lock", "Pipfile", "pylock.toml"):
        assert requirement_entry(name, tmp_path) == "file"
    (tmp_path / "constraints").write_text("numpy<3\n")
    with pytest.raises(ValueError, match="write './constraints' for the file"):
        requirement_entry("constraints", tmp_path)
    assert requirement_entry("./constraints", tmp_path) == "file"
    with pytest.raises(ConfigError, match=r"key `requirements`: 'not valid !!' is neither a file"):
        load_config(write(tmp_path, MINIMAL + 'requirements = ["not valid !!"]\n'))


def test_version_from_pyproject_and_minimal_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "2.4.1"\n')
    (tmp_path / "torchslim.toml").write_text(
        'name = "svc"\ntorch = "2.13.0"\ncmd = "python3 app.py"\n'
    )
    cfg = load_config(tmp_path)
    assert (cfg.version, cfg.app, cfg.port, cfg.model) == ("2.4.1", ".", None, [])
    (tmp_path / "pyproject.toml").unlink()
    assert load_config(tmp_path).version == "0.1.0"


def test_new_keys_validate_their_shape(tmp_path: Path) -> None:
    (tmp_path / "models" / "hf").mkdir(parents=True)
    (tmp_path / "config.json").write_text("{}")
    good = MINIMAL + (
        'files = { "config.json" = "/app/config.json" }\n'
        'model = ["models/hf/", "models/**/*.safetensors"]\n'
        'writable = ["/app/uploads"]\n'
        'include = [".env.production"]\nexclude = ["notebooks/"]\nextras = ["serve"]\n'
        '[allow-missing]\n"libcuda.so.1" = "injected by the NVIDIA toolkit"\n'
    )
    cfg = load_config(write(tmp_path, good))
    assert cfg.files == {"config.json": "/app/config.json"}
    assert cfg.allow_missing == {"libcuda.so.1": "injected by the NVIDIA toolkit"}
    assert cfg.writable == ["/app/uploads"] and cfg.exclude == ["notebooks/"]
    bad = MINIMAL + (
        'files = { "../etc/passwd" = "relative/path" }\nwritable = ["uploads", "/"]\n'
        '[allow-missing]\n"libfoo.so" = ""\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, bad))
    text = str(err.value)
    assert "key `files`" in text and "key `writable`" in text and "key `allow-missing" in text


def test_smoke_requests_in_one_line_each(tmp_path: Path) -> None:
    """The seed's upload to /predict is one line; JSON and raw bodies too."""
    (tmp_path / "cat.jpg").write_bytes(b"\xff\xd8jpeg")
    cfg = load_config(
        write(
            tmp_path,
            MINIMAL + 'port = 8000\nrequests = [{ path = "/predict", upload = "cat.jpg" }, '
            '{ path = "/p", json = { x = [1, 2] }, status = 201 }, { path = "/h" }]\n',
        )
    )
    upload, posted, plain = (r.wire(tmp_path) for r in cfg.requests)
    assert upload[0] == "POST" and upload[2]["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="cat.jpg"' in (upload[1] or b"")
    assert b"Content-Type: image/jpeg" in (upload[1] or b"") and b"\xff\xd8jpeg" in (
        upload[1] or b""
    )
    assert posted == ("POST", b'{"x": [1, 2]}', {"Content-Type": "application/json"})
    assert cfg.requests[1].status == 201
    assert plain == ("GET", None, {})
    assert cfg.proof_timeout == 180
