"""Just enough shell to see which commands a ``RUN`` line runs, and with which arguments."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from torchslim.lint.parser import Instruction

_SEPARATORS = re.compile(r"&&|\|\||;|\||\n|\$\(|`|\(|\)|\bthen\b|\bdo\b|\belse\b")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = frozenset({"sudo", "exec", "env", "time", "nohup", "xargs", "command"})


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]  # inline `FOO=bar cmd` assignments

    @property
    def name(self) -> str:
        return self.argv[0].rsplit("/", 1)[-1] if self.argv else ""

    def has(self, *options: str) -> bool:
        """Whether any of ``options`` is given (``--opt`` or ``--opt=value``)."""
        for arg in self.argv[1:]:
            for opt in options:
                if arg == opt or arg.startswith(opt + "="):
                    return True
        return False

    def positional(self, after: int = 1) -> list[str]:
        return [a for a in self.argv[after:] if not a.startswith("-")]


def _words(text: str) -> list[str]:
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars=False)
        lex.whitespace_split = True
        lex.commenters = "#"
        return list(lex)
    except ValueError:
        return text.split()


def commands(text: str) -> list[Command]:
    """Split a shell script into simple commands (``&&``, ``;``, pipes, subshells)."""
    out: list[Command] = []
    for chunk in _SEPARATORS.split(text):
        words = _words(chunk)
        env: dict[str, str] = {}
        while words and _ASSIGN.match(words[0]):
            k, _, v = words.pop(0).partition("=")
            env[k] = v
        while words and words[0].rsplit("/", 1)[-1] in _WRAPPERS:
            words.pop(0)
            while words and (words[0].startswith("-") or _ASSIGN.match(words[0])):
                if _ASSIGN.match(words[0]):
                    k, _, v = words[0].partition("=")
                    env[k] = v
                words.pop(0)
        if words:
            out.append(Command(words, env))
    return out


def run_commands(ins: Instruction) -> list[Command]:
    """The commands of a ``RUN`` (shell form, heredoc bodies, or exec form)."""
    if ins.exec_form is not None:
        argv = list(ins.exec_form)
        # ["sh", "-c", "script"] runs a script; anything else is one command.
        if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash") and argv[1] == "-c":
            return commands(argv[2])
        return [Command(argv, {})] if argv else []
    return commands(ins.text)


# -- installers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    tool: str  # pip, uv, uv-sync, conda, poetry, apt, apk, dnf
    command: Command
    args: list[str]  # the arguments after the install verb


_PIP = re.compile(r"^pip(3(\.\d+)?)?$")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")


def install_of(cmd: Command) -> Install | None:
    argv, name = cmd.argv, cmd.name
    if _PIP.match(name) and "install" in argv[1:2]:
        return Install("pip", cmd, argv[2:])
    if _PYTHON.match(name) and argv[1:4] == ["-m", "pip", "install"]:
        return Install("pip", cmd, argv[4:])
    if name == "uv" and argv[1:3] == ["pip", "install"]:
        return Install("uv", cmd, argv[3:])
    if name == "uv" and argv[1:2] in (["sync"], ["add"]):
        return Install("uv-sync", cmd, argv[2:])
    if name in ("conda", "mamba", "micromamba") and argv[1:2] in (["install"], ["create"]):
        return Install("conda", cmd, argv[2:])
    if name in ("conda", "mamba", "micromamba") and argv[1:3] in (
        ["env", "create"],
        ["env", "update"],
    ):
        return Install("conda", cmd, argv[3:])
    if name == "poetry" and argv[1:2] == ["install"]:
        return Install("poetry", cmd, argv[2:])
    if name in ("apt-get", "apt", "aptitude") and "install" in argv[1:]:
        idx = argv.index("install")
        return Install("apt", cmd, argv[idx + 1 :])
    if name == "apk" and argv[1:2] == ["add"]:
        return Install("apk", cmd, argv[2:])
    if name in ("yum", "dnf", "microdnf") and "install" in argv[1:]:
        return Install("dnf", cmd, argv[argv.index("install") + 1 :])
    return None


def packages(inst: Install) -> list[str]:
    """Package names (without version pins) an install names on its command line."""
    out: list[str] = []
    skip_next = False
    takes_value = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable",
                   "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                   "--target", "-t", "--prefix", "--root", "-n", "--name", "-p",
                   "--python", "-o", "--option", "--channel", "--group", "--only",
                   "--with", "--without", "--extra"}  # fmt: skip
    for arg in inst.args:
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("-"):
            if arg in takes_value:
                skip_next = True
            continue
        name = re.split(r"[<>=!~\[;@ ]", arg, maxsplit=1)[0]
        name = re.sub(r"[=:].*$", "", name)  # apt `pkg=1.2`, conda `pkg=1.2`
        if name and not name.startswith(("$", ".", "/")):
            out.append(name.lower())
    return out


def requirement_files(inst: Install) -> list[str]:
    files: list[str] = []
    args = inst.args
    for i, arg in enumerate(args):
        if arg in ("-r", "--requirement") and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith(("--requirement=", "-r")) and len(arg) > 2 and arg != "-r":
            files.append(arg.split("=", 1)[-1] if "=" in arg else arg[2:])
    return files
