#!/usr/bin/env python3
"""Bootstrap and run jobqueue with nothing but Python.

  python3 dev.py serve [options]    the service (options: `serve --help`)
  python3 dev.py test [args]        ruff and the whole test suite, as CI runs it (args go to pytest)
  python3 dev.py test --fast [args] the quick inner loop: skips the tests marked slow (browser,
                                    multi-process and network-namespace ones); CI runs everything
  python3 dev.py bench [args]       the benchmark (`bench --help`; `--quick` for a short run)
  python3 dev.py bench render       rendering in Chromium: renders/s, first render, browser memory, and
                                    memory over recycles (not in the default bench run: `bench render --help`)
  python3 dev.py docs               rewrite the generated parts of docs/ (the options table) from the code
  python3 dev.py requirements       the dependencies, one a line (`--test` adds the test ones)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PYTHON = os.path.join(VENV, "bin", "python")
STAMP = os.path.join(VENV, ".jobqueue-requirements")


def requirements(with_tests: bool) -> list[str]:
    """The dependencies named in pyproject.toml (the one place they are listed), MongoDB's and rendering's included."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    extras = project["optional-dependencies"]
    lines = project["dependencies"] + extras["mongodb"] + extras["render"]
    if with_tests:
        lines += extras["test"]
    return list(dict.fromkeys(line.strip() for line in lines if line.strip()))


def ensure_venv(with_tests: bool) -> None:
    """Create .venv and install the requirements once; later runs only compare a hash."""
    if not os.path.exists(PYTHON):
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = requirements(with_tests)
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    done = open(STAMP).read().split() if os.path.exists(STAMP) else []
    full = hashlib.sha256("\n".join(requirements(True)).encode()).hexdigest()
    if digest in done or full in done:  # the test set includes the runtime set
        return
    print(f"dev.py: installing {len(wanted)} packages into .venv", flush=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted], check=True)
    with open(STAMP, "a") as handle:
        handle.write(digest + "\n")


def main(argv: list[str]) -> int:
    """Dispatch `serve`, `test` (ruff and the suite; `--fast` skips the slow tests), `bench`, `docs` or
    `requirements`."""
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command == "serve":
        ensure_venv(with_tests=False)
        os.execv(PYTHON, [PYTHON, os.path.join(ROOT, "server.py"), *rest])
    if command == "bench":
        ensure_venv(with_tests=False)
        return subprocess.run([PYTHON, os.path.join(ROOT, "bench", "run.py"), *rest], cwd=ROOT).returncode
    if command == "docs":  # jobqueue/generated_docs.py lists the parts; tests/test_generated_docs.py checks them
        ensure_venv(with_tests=False)
        return subprocess.run([PYTHON, "-m", "jobqueue.generated_docs", ROOT], cwd=ROOT).returncode
    if command == "requirements":
        print("\n".join(requirements(with_tests="--test" in rest)))
        return 0
    if command == "test":
        ensure_venv(with_tests=True)
        if "--fast" in rest:  # tests/conftest.py marks the slow ones
            rest = ["-m", "not slow", *(arg for arg in rest if arg != "--fast")]
        if not any(arg.startswith(("-n", "--numprocesses")) or arg == "no:xdist" for arg in rest):
            # whole files to each worker (a file's tests share fixtures and order); at least 2 even on 1 core,
            # since the tests mostly wait on the servers, browsers and processes they start
            rest = ["-n", str(min(4, max(2, os.cpu_count() or 2))), "--dist", "loadfile", *rest]
        lint = subprocess.run([PYTHON, "-m", "ruff", "check", ROOT], cwd=ROOT)
        tests = subprocess.run([PYTHON, "-m", "pytest", *rest], cwd=ROOT)
        return tests.returncode or lint.returncode
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
