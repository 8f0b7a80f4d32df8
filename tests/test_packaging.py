"""`pip install` of a built wheel in a fresh virtual environment: one top-level package carrying the web layer
and the dashboard, a working `jobqueue` command, the container's entry command serving and a file submitted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from jobqueue import __version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("pyproject.toml", "setup.cfg", "README.md", "jobqueue", "handlers", "static", "templates")


def pyproject() -> dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def test_every_package_of_the_checkout_is_listed() -> None:
    """The package list is written by hand (three live outside jobqueue/): a new subpackage must join it."""
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("jobqueue", "jobqueue"), ("handlers", "jobqueue.handlers")):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                rel = os.path.relpath(folder, os.path.join(ROOT, top))
                found.add(name if rel == "." else f"{name}.{rel.replace(os.sep, '.')}")
    assert found | {"jobqueue.static", "jobqueue.templates"} == listed


def test_the_client_and_its_command_never_load_the_web_layer() -> None:
    probe = ("import sys, jobqueue.cli, jobqueue.client; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('handlers', 'server') "
             "or m.startswith('jobqueue.handlers')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def dockerfile_entry() -> list[str]:
    """The image's ENTRYPOINT, as the exec form's list."""
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        match = re.search(r"^ENTRYPOINT (\[.*\])$", handle.read(), re.MULTILINE)
    assert match, "the Dockerfile has an exec-form ENTRYPOINT"
    return json.loads(match.group(1))


async def run(*command: str, cwd: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


def copy_sources(src: Any) -> str:
    """What `pip install .` reads, without caches."""
    src.mkdir()
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    return str(src)


async def build_wheel(tmp_path: Any) -> str:
    """Build from a copy of the checkout, so no build/ or .egg-info lands in the working tree."""
    src = copy_sources(tmp_path / "src")
    code, _, err = await run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                             "--disable-pip-version-check", "-w", str(tmp_path / "dist"), src, cwd=str(tmp_path),
                             timeout=120)
    assert code == 0, err
    (wheel,) = os.listdir(tmp_path / "dist")
    return str(tmp_path / "dist" / wheel)


def check_wheel(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"jobqueue-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"jobqueue", info}  # no tests, bench or handlers at the top
    for wanted in ("jobqueue/handlers/app.py", "jobqueue/static/app.js", "jobqueue/static/style.css",
                   "jobqueue/templates/index.html", "jobqueue/cli/__init__.py", "jobqueue/client/aio.py",
                   "jobqueue/__main__.py", "jobqueue/store/sqlite/store.py"):
        assert wanted in names
    assert re.search(r"^jobqueue = jobqueue\.cli:main$", entry_points, re.MULTILINE)
    assert "Requires-Dist: tornado<6.7,>=6.6.1" in metadata
    assert re.search(r'^Requires-Dist: motor.*; extra == "mongodb"$', metadata, re.MULTILINE)


def fresh_venv(tmp_path: Any) -> tuple[str, dict[str, str]]:
    """A new virtual environment that sees this one's third-party packages (through a .pth), not the checkout."""
    venv = str(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    purelib = subprocess.run([f"{venv}/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "dependencies-of-the-test-venv.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME") and
           (not k.startswith("JOBQUEUE_") or k == "JOBQUEUE_TEST_SESSION")}
    env["PATH"] = f"{venv}/bin:{env.get('PATH', '')}"
    return venv, env


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
async def test_a_built_wheel_installs_serves_and_submits(target: Any, tmp_path: Any) -> None:
    wheel = await build_wheel(tmp_path)
    check_wheel(wheel)
    venv, env = fresh_venv(tmp_path)
    home = str(tmp_path)  # not the checkout: nothing may be imported from there
    code, _, err = await run(sys.executable, "-m", "pip", "--python", f"{venv}/bin/python", "install", "--quiet",
                             "--no-deps", "--no-index", "--disable-pip-version-check", wheel, cwd=home, env=env)
    assert code == 0, err
    assert await run(f"{venv}/bin/jobqueue", "--version", cwd=home, env=env) == (0, f"jobqueue {__version__}\n", "")
    assert (await run(f"{venv}/bin/python", "-m", "jobqueue", "--version", cwd=home, env=env))[1] == \
        f"jobqueue {__version__}\n"
    code, out, _ = await run(f"{venv}/bin/python", "-c", "import jobqueue; print(jobqueue.__file__)\nimport handlers",
                             cwd=home, env=env)
    assert out.startswith(f"{venv}/lib/") and code == 1  # the installed package, and no top-level `handlers`

    entry = dockerfile_entry()
    server = await asyncio.create_subprocess_exec(
        f"{venv}/bin/{entry[0]}", *entry[1:], "--host=127.0.0.1", "--port=0",
        f"--database=sqlite:///{tmp_path}/jobqueue.db", "--allow-private-addresses",
        cwd=home, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        line = await asyncio.wait_for(server.stdout.readline(), 20)  # type: ignore[union-attr]
        match = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{int(match.group(1))}"
        http = AsyncHTTPClient(force_instance=True)
        page = await http.fetch(url + "/")
        script = await http.fetch(url + "/static/app.js")
        http.close()
        assert b"<html" in page.body.lower() and script.code == 200  # templates and static came with the package
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(target.url(f"/page/w{i}") + "\n" for i in range(10)))
        code, out, err = await run(f"{venv}/bin/jobqueue", "submit", str(urls), "--wait", "--tag", "wheel",
                                   cwd=home, env={**env, "JOBQUEUE_URL": url})
        assert code == 0, err
        assert re.search(r"finished: 10 jobs, 10 completed, 0 failed, 0 cancelled in ", out), out
        code, out, _ = await run(f"{venv}/bin/jobqueue", "status", "--server", url, cwd=home, env=env)
        assert code == 0 and "completed 10" in out
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 20) == 0, shlex.join(entry)
