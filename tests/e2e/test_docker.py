"""docker/: no docker engine runs here, so the files are checked for what can break them —
syntax, paths, the extras and commands they name — without building or starting anything."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from typing import Any

import yaml

from tests.e2e.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_well_formed() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    unknown = [word for word, _ in instructions if word not in INSTRUCTIONS]
    assert not unknown, f"unknown Dockerfile instructions: {unknown}"
    stages = {
        m.group(1) for w, a in instructions if w == "FROM" if (m := re.search(r" AS (\w+)", a))
    }
    for word, args in instructions:
        if word in ("ENTRYPOINT", "CMD") and args.startswith("["):
            assert isinstance(json.loads(args), list)  # exec form must be valid JSON
        if word == "COPY":
            parts = shlex.split(args)
            if parts[0].startswith("--from="):
                assert parts[0].split("=", 1)[1] in stages
                continue
            for source in parts[:-1]:
                assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing"


def test_dockerfile_installs_extras_that_exist() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for word, args in dockerfile_instructions():
        if word == "RUN" and "pip install" in args:
            named = re.search(r"\.\[([a-z,]+)\]", args)
            assert named is not None
            for extra in named.group(1).split(","):
                assert extra in extras, f"the Dockerfile installs the missing extra {extra!r}"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_services_fit_together() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "api", "worker", "migrate"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert (REPO_ROOT / "docker" / services["migrate"]["build"]["context"]).resolve() == REPO_ROOT
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["worker"]["deploy"]["replicas"] >= 1  # scale with --scale worker=N
    for service in ("api", "worker", "migrate"):
        env = services[service]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["REDIS_URL"].startswith("redis://")


def test_compose_commands_exist_and_the_app_imports() -> None:
    services = compose()["services"]
    for service in ("api", "worker", "migrate"):
        command = services[service]["command"]
        words = [w for w in command if not w.startswith("-")]
        subcommand = words[:2] if words[0] == "db" else words[:1]
        proc = subprocess.run(
            [sys.executable, "-m", "spane_py.cli", *subcommand, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        assert proc.returncode == 0, f"`spane {' '.join(subcommand)}`: {proc.stderr}"
        for option in (w for w in command if w.startswith("--")):
            assert option in proc.stdout, f"`spane {' '.join(subcommand)}` has no {option}"
        for word in command:
            if ":" in word and "." in word.split(":")[0]:
                module, attr = word.split(":")
                assert callable(getattr(importlib.import_module(module), attr))
