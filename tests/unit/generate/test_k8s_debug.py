"""``torchslim k8s`` says how to get into the shell-less image: the debug image's one-liners."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from torchslim.config import load_config
from torchslim.generate.k8s import debug_image, render_k8s

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello-torch"


def test_k8s_prints_kubectl_debug_and_podman_lines_as_comments() -> None:
    cfg = load_config(EXAMPLE)
    text = render_k8s(cfg, image="registry.example/app:v1.2")
    img = "registry.example/app:v1.2-debug"
    assert f"kubectl debug -it POD --image={img} --target={cfg.name} -- sh" in text
    assert f"podman run -it --rm --pid container:ID --cap-add SYS_PTRACE {img} sh" in text
    assert "Kubernetes >= 1.25" in text and "SYS_PTRACE" in text
    assert "py-spy dump --pid 1" in text
    docs = list(yaml.safe_load_all(text))  # comments only: the documents are unchanged
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]


@pytest.mark.parametrize(
    ("image", "debug"),
    [
        ("reg/app:v1", "reg/app:v1-debug"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1-debug"),
        ("reg/app:v1@sha256:ab", "reg/app:v1-debug"),
        ("reg/app:v1-debug", "reg/app:v1-debug"),
        ("localhost:5000/app", "localhost:5000/app:TAG-debug"),
        ("reg/app@sha256:ab", "reg/app:TAG-debug"),
    ],
)
def test_debug_image_is_the_service_tag_with_debug(image: str, debug: str) -> None:
    assert debug_image(image) == debug
