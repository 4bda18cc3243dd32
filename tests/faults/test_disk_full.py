"""A write that runs out of room (RLIMIT_FSIZE stands in for a full disk: the kernel refuses the
write with EFBIG as it would with ENOSPC) leaves the previous file whole and says so in one line."""

import json
import subprocess
import sys

from atari_distill.models.checkpoint import load_checkpoint, make_payload
from atari_distill.models.networks import QNetwork
from atari_distill.rundir.directory import RunDir
from atari_distill.rundir.summary import Summary
from tests.conftest import ROOT

LIMITED = """
import resource, signal, sys
sys.path.insert(0, {root!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
from atari_distill.rundir.directory import RunDir
from atari_distill.rundir.summary import Summary
from atari_distill.models.checkpoint import WriteError, make_payload
from atari_distill.models.networks import QNetwork
from atari_distill.rundir.summary import Summary
run = RunDir.open(sys.argv[1])
for write in (lambda: run.save_checkpoint(make_payload(QNetwork("nature", {{"pong": 6}}), "student", updates=200)),
              lambda: run.write_summary(Summary("distill", True, {{"padding": "x" * 2_000_000}}))):
    try:
        write()
    except WriteError as error:
        print(error)
"""


def test_a_full_disk_keeps_the_previous_checkpoint_and_summary(tmp_path):
    run = RunDir.create(tmp_path / "run", "{}")
    run.save_checkpoint(make_payload(QNetwork("net3", {"pong": 6}), "student", updates=100))
    run.write_summary(Summary("distill", False, {"updates": 100}, stopped_by="SIGINT"))

    done = subprocess.run([sys.executable, "-c", LIMITED.format(root=str(ROOT)), str(run.path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    errors = done.stdout.strip().splitlines()
    assert len(errors) == 2, done.stdout
    assert "student-00000200.pt" in errors[0] and "nothing was written" in errors[0] and "--resume" in errors[0]
    assert "summary.json" in errors[1] and "the previous version is intact" in errors[1]

    assert [p.name for p in run.checkpoint_paths()] == ["student-00000100.pt"]
    assert not list(run.path.rglob("*.tmp"))
    state, skipped = run.latest_checkpoint()
    assert state["updates"] == 100 and not skipped
    assert load_checkpoint(run.checkpoint_paths()[0])["updates"] == 100
    assert json.loads((run.path / "summary.json").read_text()) == {"complete": False, "updates": 100, "kind": "distill",
                                                                    "stopped_by": "SIGINT", "wall_s": None,
                                                                    "version": 2}
