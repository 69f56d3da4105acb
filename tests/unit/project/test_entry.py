"""init takes the command out of tini, conda activation, shell wrappers and scripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.errors import ConfigError
from torchslim.project import plan_init, write_config
from torchslim.project.entry import script_exec

FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/health")
def health() -> str:
    return "ok"
"""

GUNICORN_SH = """\
#!/bin/sh
set -e
# workers from the environment, 2 by default
WORKERS=${WORKERS:-2}
: "${TIMEOUT:=120}"
export BIND="0.0.0.0:${PORT:-8000}"
echo "starting gunicorn with $WORKERS workers"
exec gunicorn -w "$WORKERS" --timeout "$TIMEOUT" -b "$BIND" "$@" app:app
"""


def _project(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    return write_tree(
        tmp_path / "svc",
        {"Dockerfile": dockerfile, "requirements.txt": "flask\ngunicorn\n", **files},
    )


def test_tini_and_a_gunicorn_script_become_the_exec_form_command(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "FROM python:3.11-slim\nRUN apt-get install -y tini\nWORKDIR /app\nCOPY . /app\n"
        'ENV WORKERS=4\nCMD ["tini", "--", "/app/gunicorn.sh", "--log-level", "info"]\n',
        **{"gunicorn.sh": GUNICORN_SH, "app.py": FLASK_APP},
    )
    plan = plan_init(root)
    assert plan.get("cmd") == [
        "gunicorn", "-w", "4", "--timeout", "120", "-b", "0.0.0.0:8000",
        "--log-level", "info", "app:app",
    ]  # fmt: skip
    notes = "\n".join(plan.notes)
    assert 'Dockerfile:6: tini → init = "auto" (the build adds Debian\'s tini unless' in notes
    assert plan.get("init") == "auto"
    text = write_config(plan).read_text()
    assert 'init = "auto"  # Dockerfile:6 runs the command under tini' in text
    assert "Dockerfile:6: gunicorn.sh ends in `exec gunicorn -w 4" in notes


@pytest.mark.parametrize(
    "cmd",
    [
        'CMD ["bash", "-c", "source activate pt && exec python run_pytorch_server.py"]',
        "CMD source activate pt && python run_pytorch_server.py",
        'CMD ["/bin/bash", "-lc", "conda activate pt; exec python run_pytorch_server.py"]',
        'ENTRYPOINT ["conda", "run", "-n", "pt", "--no-capture-output", "python", '
        '"run_pytorch_server.py"]',
        'ENTRYPOINT ["/usr/bin/dumb-init", "--", "conda", "run", "--name=pt", "python", '
        '"run_pytorch_server.py"]',
    ],
)
def test_conda_activation_is_dropped(tmp_path: Path, cmd: str) -> None:
    root = _project(
        tmp_path,
        f"FROM continuumio/miniconda3\nWORKDIR /app\nCOPY . .\n{cmd}\n",
        **{"run_pytorch_server.py": FLASK_APP},
    )
    plan = plan_init(root)
    assert plan.get("cmd")[-1] == "run_pytorch_server.py"
    assert plan.get("cmd")[0] in ("python", "python3")
    assert not any("needs a shell" in n for n in plan.notes)


def test_a_path_under_workdir_moves_to_the_app_folder(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "FROM python:3.11-slim\nWORKDIR /workspace\nCOPY . /workspace\n"
        'ENTRYPOINT ["python", "/workspace/run_inference.py", "--out", "/workspace/out"]\n',
        **{"run_inference.py": "print('done')\n"},
    )
    plan = plan_init(root)
    assert plan.get("cmd")[1:] == ["/app/run_inference.py", "--out", "/app/out"]
    assert any(
        "/workspace/run_inference.py is under WORKDIR /workspace; the image's app folder is "
        "/app, so it becomes /app/run_inference.py" in n
        for n in plan.notes
    )


def test_a_script_it_cannot_translate_is_named_in_one_line(tmp_path: Path) -> None:
    script = '#!/bin/bash\nif [ -n "$DEBUG" ]; then set -x; fi\ngunicorn app:app | tee log\n'
    dockerfile = 'FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nCMD ["./start.sh"]\n'
    # Something else says how it starts: the guess is used, the script named.
    root = _project(tmp_path, dockerfile, **{"start.sh": script, "app.py": FLASK_APP})
    plan = plan_init(root)
    assert plan.get("cmd") is not None and "./start.sh" not in plan.get("cmd")
    note = next(n for n in plan.notes if "start.sh" in n)
    assert note.startswith("Dockerfile:4: start.sh is a shell script and the image has no shell")
    assert "`cmd`" in note and "\n" not in note
    # Nothing else: init stops with that line.
    bare = _project(tmp_path / "bare", dockerfile, **{"start.sh": script, "worker.txt": "x"})
    with pytest.raises(ConfigError, match=r"^Dockerfile:4: start.sh is a shell script") as exc:
        plan_init(bare)
    assert "\n" not in str(exc.value)


def test_script_exec_expands_what_the_script_knows() -> None:
    assert script_exec(GUNICORN_SH, [], {}) == [
        "gunicorn", "-w", "2", "--timeout", "120", "-b", "0.0.0.0:8000", "app:app",
    ]  # fmt: skip
    assert script_exec(GUNICORN_SH, ["--reload"], {"PORT": "9000"})[-3:] == [
        "0.0.0.0:9000",
        "--reload",
        "app:app",
    ]
    # no exec line, a variable it cannot know, a pipe: it needs a shell
    assert script_exec("#!/bin/sh\ngunicorn app:app\n", [], {}) is None
    assert script_exec("#!/bin/sh\nexec gunicorn -w $WORKERS app:app\n", [], {}) is None
    assert script_exec("#!/bin/sh\nexec gunicorn app:app | tee x\n", [], {}) is None
