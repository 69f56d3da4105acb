"""A tiny real image for verify tests: one static C binary that serves /health and smokes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.oci.archive import write_docker_archive
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import write_oci_layout
from torchslim.oci.mutate import append_layers, with_config

PORT = 8080

# `/app serve` answers 200 on /health and 404 elsewhere; `/app smoke` prints and exits 0;
# `/app fail` prints to stderr and exits 3 (as a smoke command, or as a service that dies).
SERVER_C = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void reply(int c, const char *status, const char *body) {
    char out[256];
    int n = snprintf(out, sizeof out, "HTTP/1.0 %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", status, strlen(body), body);
    (void)!write(c, out, n);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "serve";
    if (!strcmp(mode, "smoke")) { printf("smoke ok: %s\n", argc > 2 ? argv[2] : ""); return 0; }
    if (strcmp(mode, "serve")) { fprintf(stderr, "boom: %s\n", mode); return 3; }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(8080); a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) { perror("bind"); return 1; }
    fprintf(stderr, "listening on 8080\n");
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char req[1024] = {0};
        (void)!read(c, req, sizeof req - 1);
        if (!strncmp(req, "GET /health ", 12)) reply(c, "200 OK", "ok\n");
        else reply(c, "404 Not Found", "no\n");
        close(c);
    }
}
"""


def build_server(tmp: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp / "server.c"
    src.write_text(SERVER_C)
    root = tmp / "rootfs"
    root.mkdir()
    subprocess.run(["gcc", "-static", "-O2", "-o", str(root / "app"), str(src)], check=True)
    return root


def build_image(tmp: Path, cmd: list[str] | None = None) -> Image:
    root = build_server(tmp)
    store = BlobStore(tmp / "blobs")
    layer = write_layer_from_dir(root, store)
    image = append_layers(empty_image(), [(layer, store, "static test server")])
    return with_config(
        image,
        user=65534,
        entrypoint=["/app"],
        cmd=cmd or ["serve"],
        exposed_ports=[PORT],
        labels={"dev.torchslim.torch": "2.9.0+cpu"},
    )


def write_archive(image: Image, dest: Path, tag: str) -> Path:
    write_docker_archive(image, dest, repo_tags=[tag])
    return dest


def write_layout(image: Image, dest: Path, ref: str = "test") -> Path:
    write_oci_layout(image, dest, ref_name=ref)
    return dest
