"""``torchslim init`` on hostile projects: paths the Dockerfile, Procfile and requirement
files name stay in the build context, expansion and line length are bounded, quoting
errors are one line. Each project is real files under ``tmp_path``, beside an outside
file whose text must never appear (it is never read)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from torchslim.errors import ConfigError
from torchslim.lint.parser import MAX_LINE
from torchslim.project import plan_init
from torchslim.project.dockerfile_facts import MAX_VALUE, read_dockerfile_facts

SECRET = "root:$6$outside-secret-hash:19000:0:99999:7:::"
PASSWORD = "hunter2-registry-pw"
CMD = 'CMD ["python3", "main.py"]\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``tmp/proj``, a service with a main.py, beside ``tmp/outside/shadow``."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "shadow").write_text(SECRET + "\n")
    (tmp_path / "outside" / "model.pt").write_text(SECRET)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "main.py").write_text("print('hi')\n")
    return proj


def notes_of(root: Path) -> str:
    """Every note and choice of init, its command given (what is checked is elsewhere)."""
    plan = plan_init(root, cmd="python3 main.py")
    shown = "\n".join([*plan.notes, *(f"{c.key}={c.value} {c.source}" for c in plan.choices)])
    assert "outside-secret" not in shown and PASSWORD not in shown
    return shown


def error_of(root: Path, **kw: str) -> str:
    with pytest.raises(ConfigError) as err:
        plan_init(root, **kw)
    message = str(err.value)
    assert "\n" not in message
    assert "outside-secret" not in message and PASSWORD not in message
    return message


# ---------------------------------------------------------------- paths stay inside


def test_dockerfile_pip_install_outside_is_a_note_and_never_read(root: Path) -> None:
    (root / "Dockerfile").write_text(
        "FROM python:3.11-slim\n"
        "RUN pip install -r /etc/shadow\n"
        "RUN pip install --no-cache-dir -r ../outside/shadow\n"
        "COPY ../outside/model.pt /models/\n"
        "COPY /etc/ /app/\n" + CMD
    )
    notes = notes_of(root)
    assert "Dockerfile:2: pip install -r '/etc/shadow' is outside the build context" in notes
    assert "Dockerfile:3: pip install -r '../outside/shadow' is outside" in notes
    assert "Dockerfile:4: COPY source '../outside/model.pt' is outside" in notes
    assert "Dockerfile:5: COPY source '/etc' is outside" in notes
    assert "/etc" not in str(plan_init(root).values)


def test_dockerfile_copy_through_a_symlink_out_is_not_followed(root: Path) -> None:
    (root / "models").symlink_to(root.parent / "outside")
    (root / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY models/model.pt /m/\n" + CMD)
    notes = notes_of(root)
    assert "Dockerfile:2: COPY source 'models/model.pt' is a symlink that leads outside" in notes
    assert "model" not in plan_init(root).values


def test_dockerfile_symlinked_out_is_not_read(root: Path) -> None:
    (root / "Dockerfile").symlink_to(root.parent / "outside" / "shadow")
    assert "Dockerfile: is a symlink that leads outside the build context" in notes_of(root)


def test_requirements_of_a_dockerfile_climbing_out_are_refused(root: Path) -> None:
    (root / "requirements.txt").write_text("numpy\n-r ../outside/shadow\n")
    (root / "Dockerfile").write_text(
        "FROM python:3.11-slim\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        + CMD
    )
    message = error_of(root)
    assert message.startswith(f"{root / 'requirements.txt'}:2: requirements file "), message
    assert "'../outside/shadow' is outside the build context" in message


def test_requirements_txt_symlinked_out_is_refused(root: Path) -> None:
    (root / "requirements.txt").symlink_to(root.parent / "outside" / "shadow")
    assert "is a symlink that leads outside the build context" in error_of(root)


def test_procfile_symlinked_out_is_refused(root: Path) -> None:
    (root / "main.py").unlink()
    (root / "Procfile").symlink_to(root.parent / "outside" / "shadow")
    assert error_of(root).startswith("Procfile: is a symlink that leads outside")


def test_requirement_password_is_expanded_never_shown(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    (root / "requirements.txt").write_text(
        "--extra-index-url https://ci:${REGISTRY_PASSWORD}@pypi.corp.example/simple\n"
        "corp-models==${REGISTRY_PASSWORD}!\n"
    )
    message = error_of(root)
    assert "requirements.txt:2: invalid requirement 'corp-models==${REGISTRY_PASSWORD}!'" in (
        message
    )


# ---------------------------------------------------------------- bounded, linear, one line


def test_chained_env_expansion_is_bounded(root: Path) -> None:
    chain = [f"ENV A{i}=${{A{i - 1}}}${{A{i - 1}}}" for i in range(1, 200)]
    (root / "Dockerfile").write_text(
        "FROM python:3.11-slim\nENV A0=xxxxxxxxxxxxxxxx\n" + "\n".join(chain) + "\n" + CMD
    )
    started = time.monotonic()
    facts = read_dockerfile_facts(root / "Dockerfile")
    assert time.monotonic() - started < 5
    assert max(len(f.value[1]) for f in facts.env) <= MAX_VALUE
    # A13 is the first over 64 KiB (16 << 13); one note, not one per line
    assert facts.notes == [
        "Dockerfile:15: variables expand to over 64 KiB here (or 16 MiB in all); "
        "such values are kept unexpanded"
    ]
    assert plan_init(root).get("cmd") == ["python3", "main.py"]


def test_many_large_expansions_are_bounded_in_all(root: Path) -> None:
    """Values under the per-value bound, each copied by many lines: 16 MiB in all."""
    half = "x" * (MAX_VALUE // 2 - 100)
    lines = [f"ENV B{i}=$A" for i in range(2000)]  # 2000 × 64 KiB would be 128 MiB
    (root / "Dockerfile").write_text(
        f"FROM python:3.11-slim\nENV H={half}\nENV A=$H$H\n" + "\n".join(lines)
    )
    facts = read_dockerfile_facts(root / "Dockerfile")
    assert sum(len(f.value[1]) for f in facts.env) < 20 << 20
    assert len(facts.notes) == 1 and "16 MiB in all" in facts.notes[0]


def test_64_mib_env_line_is_refused_fast_naming_the_line(root: Path) -> None:
    (root / "Dockerfile").write_text("FROM python:3.11-slim\nENV A=" + "x" * (64 << 20) + "\n")
    started = time.monotonic()
    notes = notes_of(root)
    assert time.monotonic() - started < 10
    assert f"{root / 'Dockerfile'}:2: line is longer than 64 KiB" in notes


def test_huge_dockerfile_is_refused(root: Path) -> None:
    (root / "Dockerfile").write_text("FROM python:3.11-slim\n" + "ENV A=b\n" * (200 << 10))
    assert "Dockerfile: larger than 1 MiB" in notes_of(root)


def test_long_logical_line_of_continuations_is_refused(root: Path) -> None:
    part = "x" * 1000 + " \\\n"
    (root / "Dockerfile").write_text(
        "FROM python:3.11-slim\nRUN echo " + part * (MAX_LINE // 1000 + 2) + "  done\n"
    )
    assert "Dockerfile:2: instruction is longer than 64 KiB" in notes_of(root)


def test_procfile_unterminated_quote_is_one_line(root: Path) -> None:
    (root / "main.py").unlink()
    (root / "Procfile").write_text("release: python migrate.py\nweb: gunicorn 'app:app -b :$PORT\n")
    message = error_of(root)
    assert message.startswith("Procfile:2: cannot split the command"), message
    assert "(no closing quotation); close the quote" in message


def test_cmd_option_unterminated_quote_is_one_line(root: Path) -> None:
    assert error_of(root, cmd='python3 "serve.py').startswith("--cmd: cannot split the command")


def test_procfile_with_a_huge_web_line_is_refused(root: Path) -> None:
    (root / "main.py").unlink()
    (root / "Procfile").write_text("web: " + "x" * (2 << 20) + "\n")
    assert error_of(root).startswith("Procfile:1: the web command is longer than 64 KiB")


def test_copy_with_unterminated_quote_reads_on(root: Path) -> None:
    (root / "Dockerfile").write_text('FROM python:3.11-slim\nCOPY "a b /app/\n' + CMD)
    assert plan_init(root).get("cmd") == ["python3", "main.py"]
