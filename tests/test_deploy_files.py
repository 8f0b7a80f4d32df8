"""The deployment files parse and say what the README promises (no Docker engine runs here)."""

from __future__ import annotations

import os

import yaml

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
