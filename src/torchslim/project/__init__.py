"""Reading what a project already has: requirements and locks, the Dockerfile, ignore
files, model files; and ``torchslim init``, which writes the config from the same facts.

The build and ``generate`` call:

* :func:`find_requirements` — prod and dev requirements with their sources;
* :func:`check_torch_pin` — a torch pin that contradicts the config, in one line;
* :func:`select_app_files` — the app files, with secrets refused (:class:`Selection`);
* :func:`ignore_lines` / :func:`merge_dockerignore` — the same list for ``.dockerignore``;
* :func:`expand_model_entries` / :func:`expand_files` — ``model`` and ``files`` entries;
* :func:`plan_init` / :func:`write_config` — ``torchslim init``.
"""

from __future__ import annotations

from torchslim.project.dockerfile_facts import (
    DockerfileFacts,
    find_dockerfile,
    read_dockerfile_facts,
    read_procfile,
)
from torchslim.project.ignore import (
    DEFAULT_IGNORE,
    AppFile,
    Selection,
    ignore_lines,
    merge_dockerignore,
    select_app_files,
)
from torchslim.project.init import Choice, InitPlan, plan_init
from torchslim.project.initwrite import write_config
from torchslim.project.items import Artifact, ProjectRequirements, RequirementItem
from torchslim.project.models import (
    ModelCandidate,
    expand_files,
    expand_model_entries,
    find_model_files,
)
from torchslim.project.secrets import SECRET_RULES, SecretFileError
from torchslim.project.sources import find_requirements
from torchslim.project.torchpin import check_torch_pin, torch_pins

__all__ = [
    "DEFAULT_IGNORE",
    "SECRET_RULES",
    "AppFile",
    "Artifact",
    "Choice",
    "DockerfileFacts",
    "InitPlan",
    "ModelCandidate",
    "ProjectRequirements",
    "RequirementItem",
    "SecretFileError",
    "Selection",
    "check_torch_pin",
    "expand_files",
    "expand_model_entries",
    "find_dockerfile",
    "find_model_files",
    "find_requirements",
    "ignore_lines",
    "merge_dockerignore",
    "plan_init",
    "read_dockerfile_facts",
    "read_procfile",
    "select_app_files",
    "torch_pins",
    "write_config",
]
