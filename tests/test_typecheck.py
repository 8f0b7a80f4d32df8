"""mypy checks jobqueue/ and handlers/ as pyproject.toml's [tool.mypy] says (Protocols, every `# type: ignore`)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_finds_no_type_errors_in_jobqueue_and_handlers(tmp_path):
    """A call that does not fit a Protocol, or an ignore comment that silences nothing, fails here with mypy's list."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (f"mypy (configured in pyproject.toml) found type errors:\n{result.stdout}"
                                    f"{result.stderr}")
