"""``torchslim init``: a config from the project's own facts, each choice with its source.

The facts: the Dockerfile (:mod:`~torchslim.project.dockerfile_facts`), a Procfile,
pyproject.toml, the requirement sources (:mod:`~torchslim.project.sources`), torch
pins, model files, and the code itself when nothing else says how the service starts.
Only values that differ from the defaults are written, so the config stays short: at
most ``name``, ``torch`` and ``cmd`` for a project that follows the conventions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim.config import NAME_PATTERN
from torchslim.confined import build_context
from torchslim.debian.spec import PYTHON_SUITES
from torchslim.deps.requirements import read_requirements
from torchslim.errors import ConfigError
from torchslim.lint.errors import LintError
from torchslim.project import guess, serving
from torchslim.project.conda import CONDA_FILES, CondaEnv, read_environment
from torchslim.project.dockerfile_facts import (
    DockerfileFacts,
    Found,
    copied_file_path,
    find_dockerfile,
    read_dockerfile_facts,
    read_procfile,
    split_command,
)
from torchslim.project.entry import Entry, unwrap
from torchslim.project.ignore import select_app_files
from torchslim.project.items import ProjectRequirements
from torchslim.project.models import find_model_files, holds_only_weights
from torchslim.project.pyproject import optional_holding, read_pyproject
from torchslim.project.reqfiles import is_dev_file
from torchslim.project.sources import find_requirements
from torchslim.project.spaces import Space, read_space, sdk_not_required, streamlit_run_line
from torchslim.project.torchpin import (
    nearest_cuda_variant,
    newest_known_torch,
    pins_in_requirement_files,
    torch_choice,
    torch_pins,
    variant_of_index,
    variant_of_local,
)
from torchslim.torchmeta import shipped_variants
from torchslim.units import human

# Dockerfile ENV the image sets itself, or that describe the build, not the service.
DROPPED_ENV = re.compile(
    r"^(PATH|HOME|LANG|LC_\w+|VIRTUAL_ENV|PYTHONPATH|PYTHONUNBUFFERED|PYTHONDONTWRITEBYTECODE"
    r"|PIP_\w+|POETRY_\w+|UV_\w+|PIPENV_\w+|CONDA_\w+|DEBIAN_FRONTEND|LD_LIBRARY_PATH|CUDA_HOME"
    r"|NVIDIA_VISIBLE_DEVICES|NVIDIA_DRIVER_CAPABILITIES|PYTHON_VERSION|PYTHON_SHA256|GPG_KEY)$"
)
_TORCH_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_CHANGED = ", changed (note below)"


@dataclass(frozen=True)
class Choice:
    key: str
    value: Any
    source: str  # where the value comes from: "Dockerfile:12", "default", …
    written: bool  # False: the default applies and the key is left out


@dataclass
class InitPlan:
    root: Path
    choices: list[Choice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def choose(self, key: str, value: Any, source: str, *, default: Any = None) -> None:
        self.choices.append(Choice(key, value, source, value != default and value is not None))

    def get(self, key: str) -> Any:
        return next((c.value for c in self.choices if c.key == key), None)

    @property
    def values(self) -> dict[str, Any]:
        return {c.key: c.value for c in self.choices if c.written}


def normalise_name(raw: str) -> str:
    """Any project or folder name → one that fits the config's ``name`` pattern."""
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._")
    name = name or "service"
    return name if re.match(NAME_PATTERN, name) else f"svc-{name}"


class _Planner:
    def __init__(self, root: Path, cmd: str | None) -> None:
        self.root = root
        self.plan = InitPlan(root)
        self.cmd_option = cmd
        self.pyproject = read_pyproject(root) or {}
        path = find_dockerfile(root)
        self.docker: DockerfileFacts | None = None
        self.conda: CondaEnv | None = None  # environment.yml, when it is the requirements
        try:
            self.docker = read_dockerfile_facts(path, root) if path else None
        except LintError as exc:  # init still works from the other facts
            self.plan.notes.append(f"Dockerfile not read: {exc}")
        if self.docker is not None:
            self.plan.notes += self.docker.notes
        self.space: Space | None = read_space(root)
        self.plan.notes += list(self.space.notes if self.space else ())
        self.serving: serving.Serving | None = None

    def run(self) -> InitPlan:
        self._name()
        reqs = self._requirements()
        self._torch(reqs)
        self._python()
        port = self._cmd(reqs)
        self._extras()
        self._port(port)
        self._health()
        self._user_env_volumes()
        self._serving_env()
        self._import_path()
        self._models()
        self._secrets()
        return self.plan

    def _name(self) -> None:
        project = self.pyproject.get("project", {}).get("name")
        poetry = self.pyproject.get("tool", {}).get("poetry", {}).get("name")
        raw, source = (
            (project, "pyproject.toml [project].name")
            if project
            else (poetry, "pyproject.toml [tool.poetry].name")
            if poetry
            else (self.root.name, f"the folder name {self.root.name!r}")
        )
        self.plan.choose("name", normalise_name(str(raw)), source)

    def _requirements(self) -> ProjectRequirements:
        auto = find_requirements(self.root)
        facts = self.docker
        given: list[str] = []
        where = ""
        if facts is not None:
            files = [f for f in facts.requirement_files if (self.root / f.value).is_file()]
            prod = [f for f in files if not is_dev_file(f.value)]
            root = self.root.resolve()
            auto_files = {
                p.relative_to(root).as_posix() for p in auto.files if p.is_relative_to(root)
            }
            if prod and {f.value for f in prod} != auto_files:
                given = list(dict.fromkeys(f.value for f in prod))
                where = ", ".join(dict.fromkeys(f.where for f in prod))
            elif not prod and not auto.prod and facts.inline_requirements:
                given = [f.value for f in facts.inline_requirements]
                where = ", ".join(dict.fromkeys(f.where for f in facts.inline_requirements))
        if given:
            self.plan.choose("requirements", given, where)
            reqs = find_requirements(self.root, given)
        else:
            self.plan.choose("requirements", None, f"found {auto.source}")
            reqs = auto
        self.plan.notes += list(reqs.notes)
        if (note := sdk_not_required(self.space, set(reqs.names()))) is not None:
            self.plan.notes.append(note)
        if reqs.source in CONDA_FILES:
            self.conda = read_environment(self.root, self.root / reqs.source)
        return reqs

    def _torch(self, reqs: ProjectRequirements) -> None:
        version, variant, source = None, None, ""
        if (chosen := torch_choice(torch_pins(reqs.prod))) is not None:
            version, variant, source = chosen
        elif self.docker is not None and self.docker.torch is not None:
            text = self.docker.torch.value
            spec = text.partition("==")[2].split()[0] if "==" in text else ""
            if spec:
                version, variant = spec.split("+")[0], variant_of_local(spec)
                source = f"{text} in {self.docker.torch.where}"
        if version is None and (chosen := torch_choice(pins_in_requirement_files(self.root))):
            version, variant, source = chosen
        if version is None or not _TORCH_VERSION.match(version):
            if version is not None:
                self.plan.notes.append(f"torch {version} is not a release version; not used")
            version, source = newest_known_torch(), "nothing pins torch: the newest torchslim knows"
        self.plan.choose("torch", version, source)
        self._variant(version, variant, source, reqs)

    def _variant(
        self, torch: str, variant: str | None, source: str, reqs: ProjectRequirements
    ) -> None:
        if variant is None:
            for path in reqs.requirement_files:
                parsed = read_requirements(path, build_context(self.root))
                for url in [parsed.index_url or "", *parsed.extra_index_urls]:
                    if (found := variant_of_index(url)) is not None:
                        variant, source = found, f"{url} in {path.name}"
        if variant is None and self.conda is not None and self.conda.variant is not None:
            variant, source = self.conda.variant.value, self.conda.variant.where
        if variant is None and self.docker is not None:
            if self.docker.variant is not None:
                variant, source = self.docker.variant.value, self.docker.variant.where
            elif self.docker.cuda is not None:
                variant = nearest_cuda_variant(torch, self.docker.cuda.value)
                source = f"CUDA {self.docker.cuda.value} base image in {self.docker.cuda.where}"
        shipped = shipped_variants(torch)
        if variant is not None and shipped and variant not in shipped:
            self.plan.notes.append(
                f"torch {torch} has no {variant} build ({source}); choose one of "
                f"{', '.join(shipped)} as `variant`"
            )
            variant = (
                nearest_cuda_variant(torch, f"{variant[2:-1]}.{variant[-1]}")
                if variant != "cpu"
                else None
            )
        if variant is None:
            self.plan.choose(
                "variant", "cpu", "default: no CUDA pin, index or base image", default="cpu"
            )
        else:
            self.plan.choose("variant", variant, source, default="cpu")

    def _python(self) -> None:
        want, source = None, ""
        if self.docker is not None and self.docker.python is not None:
            want, source = self.docker.python.value, f"base image in {self.docker.python.where}"
        elif self.space is not None and self.space.python is not None:
            want, source = self.space.python.value, f"python_version in {self.space.python.where}"
        elif (self.root / ".python-version").is_file():
            text = (self.root / ".python-version").read_text().strip()
            m = re.match(r"^(3\.\d+)", text)
            want, source = (m.group(1), ".python-version") if m else (None, "")
        elif requires := self.pyproject.get("project", {}).get("requires-python"):
            m = re.search(r"(3\.\d+)", str(requires))
            where = f"requires-python {requires!r} in pyproject.toml"
            want, source = (m.group(1), where) if m else (None, "")
        elif self.conda is not None and self.conda.python is not None:
            want, source = self.conda.python.value, self.conda.python.where
        if want is None:
            self.plan.choose("python", "3.11", "default", default="3.11")
            return
        supported = sorted(PYTHON_SUITES, key=lambda v: int(v.split(".")[1]))
        if want not in supported:
            newer = [v for v in supported if int(v.split(".")[1]) >= int(want.split(".")[1])]
            chosen = newer[0] if newer else supported[-1]
            self.plan.notes.append(
                f"Python {want} ({source}) has no Debian base; chose {chosen} "
                f"(supported: {', '.join(supported)})"
            )
            want = chosen
        self.plan.choose("python", want, source, default="3.11")

    def _cmd(self, reqs: ProjectRequirements) -> int:
        facts = self.docker
        port = facts.ports[0].value if facts and facts.ports else guess.DEFAULT_PORT
        app, cmd, source = ".", None, ""
        docker = self._docker_cmd() if not self.cmd_option else None
        if self.cmd_option:
            cmd, source = split_command(self.cmd_option, "--cmd"), "--cmd"
        elif docker is not None and docker.cmd and facts is not None and facts.cmd is not None:
            cmd, source = docker.cmd, facts.cmd.where
            if docker.init is not None:
                why = f"{facts.cmd.where} runs the command under {docker.init}"
                self.plan.choose("init", "auto", why, default="none")
        elif (proc := read_procfile(self.root)) is not None:
            cmd = split_command(guess.substitute_port(proc.value, port), proc.where)
            source = proc.where
            if "PORT" in proc.value:
                self.plan.notes.append(f"{proc.where}: $PORT is {port} in the image (no shell)")
        elif (spaced := self._space_cmd()) is not None:
            cmd, source = spaced
        if cmd is None:
            found = self._guess(reqs, port)
            if found is None and docker is not None and docker.cmd is None and docker.notes:
                raise ConfigError(docker.notes[-1])  # the wrapper it could not translate
            if found is None and (handler := serving.torchserve_handler(self.root)):
                raise ConfigError(f"{handler} is a TorchServe handler: {serving.torchserve_why()}")
            if found is None:
                raise ConfigError(
                    f"{self.root}: cannot tell how the service starts (no CMD/ENTRYPOINT in a "
                    "Dockerfile, no Procfile `web:` line, no main.py/app.py with an app object); "
                    "pass it: torchslim init --cmd 'python3 serve.py'"
                )
            cmd, source, app = found.value, f"guessed from {found.where}", found.app_folder
            app_source = f"the folder of {found.where.split(':')[0]}"
        else:
            app, app_source = self._app_of_copies()
        self.plan.choose("app", app, app_source if app != "." else "default", default=".")
        runnable, why = guess.runnable_cmd(cmd, self.pyproject)
        if why:
            self.plan.notes.append(f"{source}: {why}")
            cmd, source = runnable, f"{source}, changed (note below)"
        serving.unsupported(cmd, source)
        self.serving = serving.serving_defaults(cmd, source, self._serving_facts())
        if self.serving.cmd_note:
            self.plan.notes.append(f"{source.removesuffix(_CHANGED)}: {self.serving.cmd_note}")
            cmd, source = self.serving.cmd, source.removesuffix(_CHANGED) + _CHANGED
        self.plan.choose("cmd", cmd, source)
        return guess.port_of_cmd(cmd) or port

    def _space_cmd(self) -> tuple[list[str], str] | None:
        """A Gradio or Streamlit Space's command, from its README.md front matter."""
        space = self.space
        if space is None or space.sdk is None or space.app_file is None:
            return None
        sdk, file = space.sdk.value, space.app_file
        if sdk not in ("gradio", "streamlit"):
            return None
        if not (self.root / file.value).is_file():
            self.plan.notes.append(f"{file.where}: app_file {file.value} does not exist")
            return None
        cmd = ["python3", file.value] if sdk == "gradio" else ["streamlit", "run", file.value]
        return cmd, f"app_file in {file.where} (sdk: {sdk})"

    def _guess(self, reqs: ProjectRequirements, port: int) -> guess.Guess | None:
        """An app object first, then a `streamlit run` line in the README, a Streamlit,
        BentoML or Gradio entry, then a script with a __main__ guard."""
        found = guess.guess_cmd(self.root, set(reqs.names()), port)
        if found is not None and not found.script:
            return found
        if (line := streamlit_run_line(self.root)) is not None:
            return guess.Guess(["streamlit", "run", line.value], line.where, ".")
        framework = serving.guess_framework_cmd(self.root, guess.entry_candidates(self.root))
        if framework is not None:
            return guess.Guess(framework.cmd, framework.where, ".")
        return found

    def _serving_facts(self) -> serving.Facts:
        facts = self.docker
        env = {f.value[0]: f.value[1] for f in facts.env} if facts is not None else {}
        exposed = facts.ports[0] if facts is not None and facts.ports else None
        space = self.space
        docker_space = space is not None and space.sdk is not None and space.sdk.value == "docker"
        if exposed is None and docker_space and space is not None and space.app_port is not None:
            exposed = Found(space.app_port.value, f"app_port in {space.app_port.where}")
        return serving.Facts(self.root, env, exposed, space)

    def _extras(self) -> None:
        """Extras and dependency groups of pyproject.toml that hold a package the entry
        imports are selected (an extra first: a group only for what no extra holds)."""
        cmd = self.plan.get("cmd") or []
        env = {**self._serving_facts().env, **(self.plan.get("env") or {})}
        rel = serving.entry_file(self.root, cmd, env)
        if rel is None or not self.pyproject or self.plan.get("requirements") is not None:
            return
        held = optional_holding(self.pyproject, serving.imported_packages(self.root, rel, env))
        extras = [h for h in held if h[0] == "[project.optional-dependencies]"]
        in_extras = {h[2] for h in extras}
        groups = [h for h in held if h[0] == "[dependency-groups]" and h[2] not in in_extras]
        chosen = {
            "extras": self._one_each(extras, "extras"),
            "groups": self._one_each(groups, "groups"),
        }
        selected = {key: list(dict.fromkeys(h[1] for h in hits)) for key, hits in chosen.items()}
        if not any(selected.values()):
            return
        try:
            find_requirements(self.root, None, selected["extras"], groups=selected["groups"])
        except ConfigError:
            return  # the requirements come from elsewhere (a requirements file)
        for key, hits in chosen.items():
            if hits:
                why = "; ".join(f"{h[3]} imports {h[2]}, in {h[0]}.{h[1]}" for h in hits)
                self.plan.choose(key, selected[key], why, default=[])
                self.plan.notes.append(f"{key} = {selected[key]}: {why}")

    def _one_each(
        self, hits: list[tuple[str, str, str, str]], key: str
    ) -> list[tuple[str, str, str, str]]:
        """The hits whose package one extra (or group) alone holds; the others are named."""
        several = {d for d in {h[2] for h in hits} if sum(h[2] == d for h in hits) > 1}
        for dist in sorted(several):
            names = ", ".join(h[1] for h in hits if h[2] == dist)
            self.plan.notes.append(
                f"{dist} is in {key} {names} of pyproject.toml; name the one to install in `{key}`"
            )
        return [h for h in hits if h[2] not in several]

    def _docker_cmd(self) -> Entry | None:
        """The Dockerfile's command without the wrappers the image cannot run (notes say
        what was dropped, or what to write instead)."""
        facts = self.docker
        if facts is None or facts.cmd is None:
            return None
        workdir = facts.workdir.value if facts.workdir else ""
        env = {f.value[0]: f.value[1] for f in facts.env}
        entry = unwrap(facts.cmd.value, self.root, workdir=workdir, env=env, where=facts.cmd.where)
        self.plan.notes += entry.notes
        return entry

    def _app_of_copies(self) -> tuple[str, str]:
        """The app folder the Dockerfile COPYs, and the COPY lines that say so."""
        facts = self.docker
        if facts is None:
            return ".", "default"
        sources = [c.value[0] for c in facts.code_copies if (self.root / c.value[0]).is_dir()]
        sources = [s for s in sources if not holds_only_weights(self.root / s)]  # `model`'s
        workdir = facts.workdir.value.rstrip("/") if facts.workdir else ""
        app = "."
        if len(set(sources)) == 1 and sources[0] != ".":
            app = sources[0]
            dest = next(c.value[1] for c in facts.code_copies if c.value[0] == app)
            if dest.rstrip("/") in (".", "", workdir):  # the folder's contents at WORKDIR
                self.plan.choose("env", {"PYTHONPATH": f"/app/{app}"}, f"COPY {app} {dest}")
        files, wheres = {}, []
        for copy in facts.code_copies:
            src, dest = copy.value
            path = self.root / src
            if app == "." or not path.is_file() or src.startswith(app + "/"):
                continue
            files[src] = copied_file_path(src, dest, workdir)
            wheres.append(copy.where)
        if files:
            self.plan.choose("files", files, f"COPY of single files in {', '.join(wheres)}")
        lines = [c.where for c in facts.code_copies if c.value[0] == app]
        return app, f"COPY in {', '.join(dict.fromkeys(lines))}"

    def _port(self, port: int) -> None:
        facts = self.docker
        found = self.serving.port if self.serving is not None else None
        if facts is not None and facts.ports:
            self.plan.choose("port", facts.ports[0].value, facts.ports[0].where)
        elif found is not None:
            self.plan.choose("port", found.value, found.where)
        elif guess.runs_server(self.plan.get("cmd") or []):
            where = next(c.source for c in self.plan.choices if c.key == "cmd")
            self.plan.choose("port", port, f"the server's port in cmd ({where})")

    def _health(self) -> None:
        facts = self.docker
        if facts is not None and facts.health is not None:
            self.plan.choose("health", facts.health.value, f"HEALTHCHECK in {facts.health.where}")
        elif (found := guess.find_health_route(self.root, self.plan.get("app") or ".")) is not None:
            self.plan.choose("health", found[0], f"route in {found[1]}")
        elif self.serving is not None and self.serving.health is not None:
            self.plan.choose("health", self.serving.health.value, self.serving.health.where)
        if facts is not None and facts.healthcheck is not None:
            opts = {k: v for k, v in facts.healthcheck.value.items() if _duration_ok(v)}
            if opts:
                self.plan.choose("healthcheck", opts, f"HEALTHCHECK in {facts.healthcheck.where}")

    def _user_env_volumes(self) -> None:
        facts = self.docker
        if facts is None:
            return
        if facts.uid is not None and facts.uid.value >= 1:
            self.plan.choose("user", facts.uid.value, f"USER in {facts.uid.where}", default=1000)
        elif facts.user is not None:
            self.plan.notes.append(
                f"{facts.user.where}: USER {facts.user.value} is root or unknown; "
                "the image runs as uid 1000"
            )
        env = dict(self.plan.get("env") or {})
        workdir = facts.workdir.value.rstrip("/") if facts.workdir else ""
        for found in facts.env:
            name, value = found.value
            if DROPPED_ENV.match(name) or "$" in value:
                continue
            if workdir and workdir != "/app" and (value + "/").startswith(workdir + "/"):
                moved = "/app" + value[len(workdir) :]
                self.plan.notes.append(
                    f"{found.where}: {name}={value} is under WORKDIR {workdir}; the image's "
                    f"WORKDIR is /app, so it becomes {moved}"
                )
                value = moved
            env[name] = value
        if env:
            wheres = list(dict.fromkeys(f.where for f in facts.env if f.value[0] in env))
            self._set_env(env, [f"ENV in {w}" for w in wheres])
        writable = [v.value for v in facts.volumes if v.value.startswith("/")]
        if writable:
            self.plan.choose("writable", writable, f"VOLUME in {facts.volumes[0].where}")

    def _set_env(self, env: dict[str, str], sources: list[str]) -> None:
        """``env`` replaces the chosen env; its source adds ``sources`` to the earlier ones."""
        earlier = [c.source for c in self.plan.choices if c.key == "env"]
        self.plan.choices = [c for c in self.plan.choices if c.key != "env"]
        self.plan.choose("env", env, ", ".join([*earlier, *sources]))

    def _serving_env(self) -> None:
        """What the framework needs to listen on 0.0.0.0 and on its port (GRADIO_SERVER_NAME …)."""
        added = self.serving.env if self.serving is not None else {}
        env = dict(self.plan.get("env") or {})
        new = {k: v for k, v in added.items() if k not in env}
        if new:
            env.update({k: v.value for k, v in new.items()})
            self._set_env(env, [f"{k}: {v.where}" for k, v in new.items()])
        if self.serving is not None:
            self.plan.notes += self.serving.notes

    def _import_path(self) -> None:
        env = dict(self.plan.get("env") or {})
        top = guess.package_in_src(self.root, self.plan.get("cmd") or [], env)
        if top is not None:
            paths = [p for p in env.get("PYTHONPATH", "").split(":") if p]
            env["PYTHONPATH"] = ":".join(["/app/src", *paths])
            self._set_env(env, [f"{top} is in src/ (src layout)"])

    def _models(self) -> None:
        self.plan.notes += guess.hub_download_notes(self.root, self.plan.get("app") or ".")
        entries = {
            m.rel.rstrip("/"): f"{m.kind}, {human(m.size)}" for m in find_model_files(self.root)
        }
        if self.docker is not None:
            for copy in self.docker.model_copies:
                if (self.root / copy.value).exists():
                    entries.setdefault(copy.value, f"COPY in {copy.where}")
        if entries:
            self.plan.choose(
                "model",
                sorted(entries),
                "; ".join(f"{k} ({v})" for k, v in sorted(entries.items())),
            )

    def _secrets(self) -> None:
        values = self.plan.values
        selection = select_app_files(self.root, values.get("app", "."))
        if selection.secrets:
            rels = [s.rel for s in selection.secrets]
            why = "; ".join(f"{s.rel}: {s.rule.why}" for s in selection.secrets)
            self.plan.choose("exclude", rels, f"look like secrets ({why})", default=[])
            self.plan.notes.append(
                f"left out {', '.join(rels)}: to ship one deliberately, move it to `include`"
            )


def _duration_ok(value: object) -> bool:
    return isinstance(value, int) or bool(re.fullmatch(r"\d+(ms|s|m|h)", str(value)))


def plan_init(root: Path, *, cmd: str | None = None) -> InitPlan:
    """Every choice ``init`` makes for ``root``, with its source; writes nothing."""
    return _Planner(root.resolve(), cmd).run()


__all__ = ["Choice", "InitPlan", "normalise_name", "plan_init"]
