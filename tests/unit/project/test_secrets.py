"""The secret table: every rule triggers on its file, templates and look-alikes do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.project.secrets import SECRET_RULES, secret_rule

PEM_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
SERVICE_ACCOUNT = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}'

SECRETS = {
    "env-file": (".env.production", "DB_PASSWORD=x\n"),
    "ssh-key": ("keys/id_rsa", PEM_KEY),
    "pem-key": ("tls/server.pem", PEM_KEY),
    "key-file": ("tls/server.key", "anything\n"),
    "key-store": ("tls/bundle.p12", "\0"),
    "aws": (".aws/config", "[default]\n"),
    "ssh-dir": ("home/.ssh/known_hosts", "host\n"),
    "gnupg": (".gnupg/secring.gpg", "\0"),
    "git-dir": ("vendor/lib/.git/config", "[core]\n"),
    "netrc": (".netrc", "machine x login y password z\n"),
    "pypirc": (".pypirc", "[pypi]\npassword = pypi-abc\n"),
    "git-credentials": (".git-credentials", "https://u:t@github.com\n"),
    "docker-config": (".docker/config.json", '{"auths": {}}'),
    "kube-config": (".kube/config", "apiVersion: v1\n"),
    "npm-token": ("web/.npmrc", "//registry.npmjs.org/:_authToken=abc\n"),
    "cloud-key": ("gcp/service-account-prod.json", SERVICE_ACCOUNT),
    "keytab": ("krb/svc.keytab", "\0"),
    "htpasswd": (".htpasswd", "admin:$apr1$x\n"),
}


def test_every_rule_has_a_file_that_triggers_it(tmp_path: Path) -> None:
    assert {r.id for r in SECRET_RULES} == set(SECRETS)  # one example per rule, no more
    assert len({r.id for r in SECRET_RULES}) == len(SECRET_RULES)
    for rule_id, (rel, content) in SECRETS.items():
        write_tree(tmp_path, {rel: content})
        rule = secret_rule(rel, tmp_path / rel)
        assert rule is not None and rule.id == rule_id, rel
        assert rule.why and rule.dockerignore


@pytest.mark.parametrize(
    ("rel", "content"),
    [
        (".env.example", "DB_PASSWORD=\n"),
        (".env.sample", ""),
        ("config/example.env", ""),
        ("keys/id_rsa.pub", "ssh-rsa AAAA\n"),
        ("src/id_utils.py", "x = 1\n"),  # id_* only for ssh key names
        ("certs/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ("web/.npmrc", "registry=https://registry.npmjs.org/\n"),
        ("credentials.json", '{"username_field": "email"}'),
        ("environment.py", ""),
        (".github/workflows/ci.yml", ""),
    ],
)
def test_templates_and_look_alikes_are_not_secrets(tmp_path: Path, rel: str, content: str) -> None:
    write_tree(tmp_path, {rel: content})
    assert secret_rule(rel, tmp_path / rel) is None
