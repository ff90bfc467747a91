"""The examples run, print what the README says, and are the README's code, verbatim."""

from __future__ import annotations

import sys

import pytest

from tests.e2e.conftest import REPO_ROOT, run_process

EXAMPLES = REPO_ROOT / "examples"


def run_example(name: str, env: dict[str, str]) -> str:
    # Examples use the default key prefix: each runs on its own embedded Redis (their
    # zero-setup promise), never on a shared server where it would leave keys behind.
    env = {k: v for k, v in env.items() if k != "REDIS_URL"}
    proc = run_process([sys.executable, str(EXAMPLES / name)], env=env, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quickstart_runs(cli_env: dict[str, str]) -> None:
    lines = run_example("quickstart.py", cli_env).splitlines()
    assert lines[0] == "execution completed"
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in lines[1:]}
    assert set(rows) == {
        "validate",
        "create_account",
        "fraud_check",
        "decide",
        "welcome_pro",
        "welcome_free",
    }
    assert rows["create_account"][:2] == ["succeeded", "attempts=2"]  # retried once
    assert rows["welcome_pro"] == ["succeeded", "attempts=1", "'Welcome to Pro, account 42!'"]
    assert rows["welcome_free"][0] == "skipped"


def test_json_workflow_runs(cli_env: dict[str, str]) -> None:
    out = run_example("json_workflow.py", cli_env)
    assert out.splitlines() == [
        "v1 price 80: completed, ran ['quote', 'check', 'buy']",
        "  buy at 80 EUR",
        "v1 price 120: completed, ran ['quote', 'check', 'wait']",
        "  wait at 120 EUR",
        "versions: 1 -> 2 (again: 2)",
        "v2 price 120: buy at 120 EUR",
    ]


@pytest.mark.parametrize("name", ["quickstart.py", "json_workflow.py"])
def test_readme_shows_the_example_verbatim(name: str) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    code = (EXAMPLES / name).read_text(encoding="utf-8")
    assert f"```python\n{code}```\n" in readme, f"README.md does not show examples/{name} as is"
