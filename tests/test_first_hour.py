"""A newcomer's first hour: the README's quick-start commands, in order, as a fresh clone runs them.

The commands are read from README.md, so the README cannot drift from what works; only their
budgets are shrunk to CI size (flags appended, which argparse lets win) and their folders moved
to a temp directory. Each must exit 0 and print only our lines: no traceback, no `None` or
`nan`, no Ray, ALE or other third-party log line (those go to the run's third_party.log).
"""

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from atari_distill.ui.console import THIRD_PARTY

pytestmark = pytest.mark.xdist_group("test_first_hour")  # its module-scoped fixture is built once

CI_SIZE = {"distill": ["--updates", "120", "--eval-every", "60", "--eval-episodes", "2", "--select-episodes", "1", "--holdout-steps", "500",
                       "--min-replay", "500"],
           "record": ["--steps", "1024"], "report": [], "evaluate": ["--episodes", "2", "--workers", "1"]}
FORBIDDEN_WORDS = {"None", "nan", "NaN", "Traceback"}


def quick_start_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        line = line.strip()
        if current or line.startswith("python launch.py"):
            current += " " + line.rstrip("\\").strip()
            if not line.endswith("\\"):
                commands.append(shlex.split(current)[2:])
                current = ""
    return commands


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def assert_only_our_lines(result: subprocess.CompletedProcess, args: list[str]) -> None:
    for stream in (result.stdout, result.stderr):
        words = set(re.findall(r"[A-Za-z]+", stream))
        assert not words & FORBIDDEN_WORDS, (args, words & FORBIDDEN_WORDS, stream[-2000:])
        third_party = [line for line in stream.splitlines() if THIRD_PARTY.match(line) or "WARNING" in line]
        assert not third_party, (args, third_party)


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Every quick-start command, at CI size, in the README's order."""
    home = tmp_path_factory.mktemp("first-hour")
    commands = quick_start_commands()
    assert [c[0] for c in commands] == ["distill", "report", "record", "distill"], commands
    results = []
    for command in commands:
        args = [a.replace("runs/", f"{home}/runs/").replace("datasets/", f"{home}/datasets/") for a in command]
        args += CI_SIZE[args[0]] if args[0] != "distill" or "--dataset" not in args else ["--updates", "60",
                                                                                          "--eval-episodes", "1"]
        results.append((args, run(args)))
    return home, results


def test_every_quick_start_command_succeeds_and_prints_only_our_lines(walked):
    home, results = walked
    for args, result in results:
        assert result.returncode == 0, (args, result.stderr[-3000:])
        assert_only_our_lines(result, args)
    demo = results[0][1].stdout
    assert re.search(r"ms_pacman: teacher [\d.]+ \+/- [\d.]+ \(2 episodes\), random policy [\d.]+ \+/- [\d.]+, "
                     r"majority-action baseline 0\.\d+", demo), demo
    assert re.search(r"ms_pacman: net3 \(61,369 params, kl, 120 updates\) [\d.]+ \+/- [\d.]+ \(2 episodes\); "
                     r"agreement [\d.]+ \(majority 0\.\d+\), sticky actions [\d.]+ \(majority 0\.\d+\); "
                     r"% of teacher withheld \(2 episodes: % of teacher needs at least 10", demo), demo
    assert "% of teacher (low 95%" not in demo, "two episodes support no percentage"


def test_quick_start_runs_are_complete_and_keep_third_party_lines_beside_them(walked):
    home, _ = walked
    for name in ("demo", "from-dataset"):
        run_dir = home / "runs" / name
        assert {"config.json", "metrics.jsonl", "summary.json", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
        assert list((run_dir / "checkpoints").glob("student-*.pt"))
        log = run_dir / "third_party.log"
        if log.exists():  # what Ray had to say went here, not to the console
            assert all(THIRD_PARTY.match(line) for line in log.read_text().splitlines() if line.strip())
    assert (home / "runs" / "demo-report" / "learning.png").is_file()
    assert (home / "datasets" / "ms_pacman" / "index.json").is_file()


@pytest.mark.parametrize("args", [
    ["evaluate", "--checkpoint", "zoo:space_invaders"],
    ["zoo"],
    ["presets"],
])
def test_other_first_commands_print_only_our_lines(args):
    result = run(args + CI_SIZE.get(args[0], []))
    assert result.returncode == 0, result.stderr
    assert_only_our_lines(result, args)
    assert result.stdout.strip()
