"""The plankton-jobs command group: version, help, lazy imports, lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobs.cli import COMMANDS, main
from plankton_store.ml._models import __version__
from tests.conftest import REPO_ROOT


def test_version_and_help_list_every_job():
    runner = CliRunner()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and __version__ in version.output
    help_text = runner.invoke(main, ["--help"])
    assert help_text.exit_code == 0
    for name in COMMANDS:
        assert name in help_text.output
        sub = runner.invoke(main, [name, "--help"])
        assert sub.exit_code == 0, f"{name} --help failed: {sub.output}"


def test_unknown_command_fails_clearly():
    result = CliRunner().invoke(main, ["no-such-job"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_non_cnn_jobs_do_not_import_tensorflow():
    code = (
        "import sys, importlib\n"
        "from jobs.cli import COMMANDS\n"
        "for target in COMMANDS.values():\n"
        "    importlib.import_module(target.split(':')[0])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported at job import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)


RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff not installed (it comes with .[test])")
def test_ruff_clean():
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(RUFF), *args], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
