"""The suite's own machinery: its xdist groups keep a group's tests on one worker, so the tests that
start Ray nodes of their own run one at a time and a module's fixture is built once (pytest 9 with
xdist 3.8 silently ignored the groups, and two node-loss tests at once took three times as long)."""

import subprocess
import sys


def test_an_xdist_group_keeps_its_tests_on_one_worker(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(
            "import pytest\npytestmark = pytest.mark.xdist_group('g')\n"
            + "".join(f"def test_{name}{i}():\n    pass\n" for i in range(3)))
    (tmp_path / "test_c.py").write_text("".join(f"def test_c{i}():\n    pass\n" for i in range(3)))
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "-c", "/dev/null", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {line.split()[0] for line in done.stdout.splitlines() if "PASSED" in line and "@g" in line}
    assert len([line for line in done.stdout.splitlines() if "PASSED" in line and "@g" in line]) == 6, done.stdout
    assert len(workers) == 1, done.stdout
