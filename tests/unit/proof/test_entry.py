"""entry_from_cmd: which module a cmd starts, for every rule in entry.py's docstring."""

from __future__ import annotations

import pytest

from torchslim.proof.entry import EntryPoint, entry_from_cmd


@pytest.mark.parametrize(
    ("cmd", "module", "attrs", "runner"),
    [
        (["python3", "-m", "uvicorn", "service.main:app", "--host", "0.0.0.0"], "service.main",
         ("app",), "uvicorn"),
        (["uvicorn", "--host", "0.0.0.0", "--port", "8000", "pkg.mod:api"], "pkg.mod", ("api",),
         None),
        (["/usr/local/bin/gunicorn", "-b", "0.0.0.0:8000", "-k", "uvicorn.workers.UvicornWorker",
          "svc.wsgi:application"], "svc.wsgi", ("application",), None),
        (["gunicorn", "--bind", "unix:sock", "pkg:create_app()"], "pkg", ("create_app",), None),
        (["gunicorn", "-w", "2", "myproject.wsgi"], "myproject.wsgi", ("application",), None),
        (["python", "-um", "hypercorn", "app.main:app"], "app.main", ("app",), "hypercorn"),
        (["daphne", "-b", "0.0.0.0", "-p", "8001", "proj.asgi:application"], "proj.asgi",
         ("application",), None),
        (["env", "A=1", "tini", "--", "uvicorn", "m:app"], "m", ("app",), None),
        (["fastapi", "run", "--entrypoint", "pkg.api:app"], "pkg.api", ("app",), None),
        (["flask", "--app", "hello:make()", "run"], "hello", ("make",), None),
        (["python3", "-m", "flask", "--app=hello", "run"], "hello",
         ("app", "application", "create_app", "make_app"), "flask"),
        (["waitress-serve", "--listen=*:8080", "web:app"], "web", ("app",), None),
        (["python", "-m", "waitress", "--port=8080", "--call", "web:create_app"], "web",
         ("create_app",), "waitress"),
    ],
)  # fmt: skip
def test_servers_import_the_app_module_and_check_the_attribute(
    cmd: list[str], module: str, attrs: tuple[str, ...], runner: str | None
) -> None:
    entry = entry_from_cmd(cmd, "/app")
    assert (entry.kind, entry.module, entry.attrs, entry.runner) == ("app", module, attrs, runner)


def test_host_port_values_are_never_taken_for_the_app() -> None:
    entry = entry_from_cmd(["gunicorn", "--bind", "localhost:8000", "-c", "conf.py"], "/app")
    assert entry.kind == "none"
    assert entry.note is not None and "no APP argument" in entry.note


def test_app_dir_and_chdir_go_first_on_sys_path() -> None:
    entry = entry_from_cmd(["uvicorn", "--app-dir", "src", "m:app"], "/srv")
    assert entry.sys_path == ("/srv/src",)
    entry = entry_from_cmd(["gunicorn", "--chdir=/code", "--pythonpath", "a,b", "m:app"], "/")
    assert entry.sys_path == ("/code", "/a", "/b")


def test_python_dash_m_finds_and_compiles_the_module() -> None:
    entry = entry_from_cmd(["python3", "-u", "-X", "dev", "-m", "pkg.serve", "--port", "1"], "/app")
    assert entry == EntryPoint("module", "pkg.serve")
    assert entry.describe() == "module pkg.serve"


def test_python_script_is_resolved_against_workdir_and_its_dir_is_on_sys_path() -> None:
    entry = entry_from_cmd(["python", "-B", "app.py", "--flag"], "/app")
    assert (entry.kind, entry.path, entry.sys_path) == ("script", "/app/app.py", ("/app",))
    entry = entry_from_cmd(["/usr/bin/python3.11", "/srv/tools/run.py"], "/app")
    assert (entry.path, entry.sys_path) == ("/srv/tools/run.py", ("/srv/tools",))


def test_python_dash_c_compiles_the_code() -> None:
    entry = entry_from_cmd(["python3", "-c", "import torch; print(1)"], "/app")
    assert (entry.kind, entry.code) == ("code", "import torch; print(1)")


def test_fastapi_file_or_default_candidates() -> None:
    entry = entry_from_cmd(["fastapi", "run", "app/main.py", "--port", "80", "--app", "api"], "/w")
    assert (entry.kind, entry.path, entry.attrs) == ("file", "/w/app/main.py", ("api",))
    entry = entry_from_cmd(["fastapi", "run"], "/w")
    assert entry.candidates[:2] == ("/w/main.py", "/w/app.py")
    assert entry.attrs == ("app", "api")


def test_flask_from_env_or_path_or_defaults() -> None:
    entry = entry_from_cmd(["flask", "run"], "/w", {"FLASK_APP": "svc:app"})
    assert (entry.kind, entry.module, entry.attrs) == ("app", "svc", ("app",))
    entry = entry_from_cmd(["flask", "--app", "src/hello.py", "run"], "/w")
    assert (entry.kind, entry.path) == ("file", "/w/src/hello.py")
    entry = entry_from_cmd(["flask", "run"], "/w")
    assert entry.candidates == ("/w/wsgi.py", "/w/app.py")


@pytest.mark.parametrize(
    "cmd",
    [["sh", "-c", "uvicorn m:app"], ["torchserve", "--start"], ["python3"], ["python3", "-"], []],
)
def test_no_python_entry_says_why(cmd: list[str]) -> None:
    entry = entry_from_cmd(cmd, "/app")
    assert entry.kind == "none"
    assert entry.note
    assert entry.describe() == "none"


def test_to_dict_round_trips_what_the_checker_reads() -> None:
    entry = entry_from_cmd(["uvicorn", "m:app"], "/app")
    data = entry.to_dict()
    assert data["kind"] == "app" and data["module"] == "m" and data["attrs"] == ["app"]
    assert entry.describe() == "m:app"
