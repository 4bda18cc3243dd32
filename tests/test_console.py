"""The console filter: our lines through to the terminal, third-party messages (every line of them) to a log."""

import os

from atari_distill.ui.console import ConsoleFilter

RAY_ERROR = """2026-11-24 18:11:03,147\tERROR worker.py:439 -- Unhandled error: ray::Learner.wait_for_replay()
  File "/work/main/learner/batches.py", line 41, in wait_for_replay
           ^^^^^^^^^^^^^^^^^^^
ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.
\tclass_name: ReplayShard
The actor is dead because it was killed by `ray.kill`.
"""
OURS = """[distill] stopped by SIGINT before the first update
error: --updates must be at least 1, got 0
  total 3.58 GiB; Ray reports 13.35 GiB free
"""
CORE = "[2026-11-24 17:36:44,355 E 11749 11749] core_worker.cc:2465: Actor with class name: 'RolloutActor'\n"


def test_third_party_messages_are_kept_and_ours_pass_through(tmp_path):
    console = ConsoleFilter()
    reader, console.terminal = os.pipe()
    lines = (OURS.splitlines(True)[:1] + RAY_ERROR.splitlines(True) + OURS.splitlines(True)[1:2] + [CORE]
             + ["A.L.E: Arcade Learning Environment (version 0.12.1)\n", "[Powered by Stella]\n"]
             + OURS.splitlines(True)[2:])
    for line in lines:
        console._route(line.encode())
    os.close(console.terminal)
    shown = os.read(reader, 65536).decode()
    assert shown == OURS  # an indented line of ours after one of ours is still ours
    assert b"".join(console.captured).decode() == RAY_ERROR + CORE + "A.L.E: Arcade Learning Environment " \
        "(version 0.12.1)\n[Powered by Stella]\n"
    (tmp_path / "config.json").write_text("{}")
    assert console.save(str(tmp_path)) == tmp_path / "third_party.log"
    assert (tmp_path / "third_party.log").read_text().startswith("2026-11-24 18:11:03,147\tERROR")


def test_the_last_line_reaches_the_terminal_when_the_reader_thread_never_ran(tmp_path):
    """CI lost an error line once: the reader thread was not scheduled before the command exited."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from atari_distill.ui.console import ConsoleFilter
        ConsoleFilter._pump = lambda self: None  # as if the busy machine never ran the reader
        with ConsoleFilter():
            sys.stderr.write("error: the line that ended the command\\n")
            sys.stderr.write("[2026-11-24 17:36:44,355 E 11749 11749] core_worker.cc:2465: noise\\n")
            sys.stderr.write("no newline at the end")
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "error: the line that ended the command\nno newline at the end"
