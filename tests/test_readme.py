"""The README's Python example runs as written, at a tiny size: its calls and keywords are the real
API's, so the README cannot rot. Only the budgets shrink, and it runs on the local runner (the CLI's
first-hour walk does the same for the quick-start commands on Ray, tests/test_first_hour.py)."""

import re

from tests.conftest import ROOT

import atari_distill

TINY = {"record": dict(steps=300, envs_per_actor=2, chunk_steps=32, echo=None, runner="local"),
        "distill": dict(updates=20, eval_every=10, eval_episodes=1, select_episodes=1, eval_workers=1,
                        holdout_steps=200, min_replay=200, log_every=10, checkpoint_every=10, device="cpu",
                        echo=None, runner="local")}


class TinyAtariDistill:
    """atari_distill with each run's budget cut to CI size; every other name is the real one."""

    def __getattr__(self, name):
        real = getattr(atari_distill, name)
        if name not in TINY:
            return real
        return lambda **settings: real(**{**settings, **TINY[name]})


def python_example() -> str:
    section = (ROOT / "README.md").read_text().split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the From Python section has one example"
    return blocks[0]


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = python_example()
    assert "import atari_distill as ad\n" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("import atari_distill as ad\n", ""), "README.md", "exec"), {"ad": TinyAtariDistill()})
    printed = capsys.readouterr().out
    assert "student " in printed and "pong " in printed and "True [10]" in printed, printed
    assert (tmp_path / "runs" / "pong-net2" / "summary.json").is_file()
