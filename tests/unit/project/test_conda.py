"""conda environment.yml: read as PyPI requirements, by find_requirements, init and the build."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.errors import ConfigError
from torchslim.project import find_requirements, plan_init, write_config
from torchslim.project.conda import conda_specifier, read_environment

ENVIRONMENT = """\
# made by hand, as ML repos do
name: pt
channels:
  - pytorch
  - nvidia
  - conda-forge
dependencies:
  - python=3.10
  - pytorch::pytorch=2.5.1   # the model needs 2.5
  - pytorch-cuda=12.1
  - torchvision-cpu
  - "numpy>=1.26,<2"
  - pandas==2.2.2
  - scikit-learn=1.5=py310h0_0
  - conda-forge::py-opencv=4.10
  - cudnn
  - ffmpeg
  - libjpeg-turbo
  - pip
  - pip:
      - fastapi==0.115.*
      - uvicorn[standard]>=0.30  # served with uvicorn
      - -r requirements-extra.txt
prefix: /opt/conda/envs/pt
"""

FASTAPI_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"ok": "yes"}
"""


@pytest.mark.parametrize(
    ("conda", "pep440"),
    [
        ("", ""),
        ("=1.2", "==1.2.*"),
        ("=1.2.*", "==1.2.*"),
        ("=1.2*", "==1.2.*"),
        ("==1.2.3", "==1.2.3"),
        ("=1.2.3=py310_0", "==1.2.3"),
        (">=1.2,<2", ">=1.2,<2"),
        (" 1.8", "==1.8.*"),
    ],
)
def test_conda_pins_become_pep440(conda: str, pep440: str) -> None:
    assert conda_specifier(conda) == pep440


def test_environment_yml_in_pypi_terms(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"environment.yml": ENVIRONMENT, "requirements-extra.txt": "pillow>=10\n"},
    )
    env = read_environment(root, root / "environment.yml")
    assert [(i.text, i.source) for i in env.items] == [
        ("torch==2.5.1.*", "environment.yml:9"),
        ("torchvision", "environment.yml:11"),
        ("numpy>=1.26,<2", "environment.yml:12"),
        ("pandas==2.2.2", "environment.yml:13"),
        ("scikit-learn==1.5", "environment.yml:14"),
        ("opencv-python-headless==4.10.*", "environment.yml:15"),
        ("fastapi==0.115.*", "environment.yml:21 (pip)"),
        ("uvicorn[standard]>=0.30", "environment.yml:22 (pip)"),
        ("pillow>=10", "requirements-extra.txt:1"),
    ]
    assert env.python is not None and env.python.value == "3.10"
    assert env.python.where == "environment.yml:8 (python=3.10)"
    # pytorch-cuda comes before torchvision-cpu: the first variant named wins
    assert env.variant is not None and env.variant.value == "cu121"
    assert env.variant.where == "pytorch-cuda=12.1 in environment.yml:10"
    unmapped = [n for n in env.notes if "no PyPI package" in n]
    assert unmapped == [
        "environment.yml: no PyPI package for the conda packages cudnn, ffmpeg, "
        "libjpeg-turbo; not installed (torch's wheels carry the CUDA libraries it needs)"
    ]
    assert root / "requirements-extra.txt" in env.files


def test_cpu_variant_and_flow_lists(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"environment.yaml": "dependencies: [python=3.11, pytorch-cpu==2.13.0, 'pip: [rich]']\n"},
    )
    env = read_environment(root, root / "environment.yaml")
    assert [i.text for i in env.items] == ["torch==2.13.0"]
    assert env.variant is not None and env.variant.value == "cpu"
    root2 = write_tree(
        tmp_path / "b",
        {"environment.yml": "dependencies:\n  - cpuonly\n  - pytorch\n  - pip:\n    - rich\n"},
    )
    env2 = read_environment(root2, root2 / "environment.yml")
    assert [i.text for i in env2.items] == ["torch", "rich"]
    assert env2.variant is not None and env2.variant.where == "cpuonly in environment.yml:2"


def test_a_torch_pin_with_no_wheel_is_refused_in_one_line(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"environment.yml": "dependencies:\n  - python=3.6\n  - pytorch-cpu=0.4.0\n"},
    )
    with pytest.raises(ConfigError) as exc:
        find_requirements(root)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("environment.yml:3: pytorch-cpu=0.4.0 has no wheel for CPython")
    assert "--torch" in msg
    pip_pin = write_tree(
        tmp_path / "pip", {"environment.yml": "dependencies:\n  - pip:\n    - torch==1.13.1\n"}
    )
    with pytest.raises(ConfigError, match=r"environment.yml:3: torch==1.13.1 has no wheel"):
        find_requirements(pip_pin)


def test_a_spec_it_cannot_read_names_its_line(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"environment.yml": "dependencies:\n  - numpy>=1|<0.5\n"})
    with pytest.raises(ConfigError, match=r"^environment.yml:2: 'numpy>=1\|<0.5' is not a conda"):
        read_environment(root, root / "environment.yml")


def test_the_only_environment_is_the_projects_requirements(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path, {"environment.yml": ENVIRONMENT, "requirements-extra.txt": "pillow\n"}
    )
    reqs = find_requirements(root)
    assert reqs.source == "environment.yml"
    assert "torch" in reqs.names() and "fastapi" in reqs.names()
    assert root / "environment.yml" in reqs.files
    assert any("no PyPI package for the conda packages cudnn" in n for n in reqs.notes)
    # named in the config, it is read too; beside a requirements.txt it is named as not used
    assert find_requirements(root, ["environment.yml"]).names() == reqs.names()
    (root / "requirements.txt").write_text("fastapi\n")
    other = find_requirements(root)
    assert other.source == "requirements.txt"
    assert any("also found, not used: environment.yml" in n for n in other.notes)


def test_init_takes_torch_variant_and_python_from_environment_yml(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "svc",
        {
            "environment.yml": ENVIRONMENT,
            "requirements-extra.txt": "pillow\n",
            "app.py": FASTAPI_APP,
        },
    )
    plan = plan_init(root)
    write_config(plan)
    text = (root / "torchslim.toml").read_text()
    data = tomllib.loads(text)
    assert data["torch"] == "2.5.1"
    assert 'torch = "2.5.1"  # torch==2.5.1.* in environment.yml:9' in text
    assert data["variant"] == "cu121"
    assert "pytorch-cuda=12.1 in environment.yml:10" in text
    assert any(
        "Python 3.10 (environment.yml:8 (python=3.10)) has no Debian base" in n for n in plan.notes
    )
    assert any("no PyPI package for the conda packages cudnn" in n for n in plan.notes)
