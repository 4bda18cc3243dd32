"""Every bench/ script runs end to end at tiny sizes, so none can rot between the runs that fill
bench/RESULTS.md. Each writes its JSON; the checks read the figures it measured (never timings
against a threshold: rates only have to be positive and consistent)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atari_distill.zoo import catalog

ROOT = Path(__file__).resolve().parent.parent


def positive_rows(result, keys):
    return result["rows"] and all(row[key] > 0 for row in result["rows"] for key in keys)


TINY = {
    "actors_bench.py": (["--seconds", "3", "--max-actors", "1", "--groups", "1"],  # >= one 256-step chunk when loaded
                        lambda r: positive_rows(r, ["bare_steps_per_s", "labelled_steps_per_s"])
                        and all(row["labelled_steps_per_s"] <= 1.5 * row["bare_steps_per_s"] for row in r["rows"])),
    "throughput.py": (["--seconds", "1"], lambda r: len(r["rows"]) == 7 and all(row["value"] > 0 for row in r["rows"])),
    "replay_bench.py": (["--capacity", "2000", "--shards", "1", "--seconds", "1", "--learner-updates", "5",
                         "--games", "2"],
                        lambda r: 0.9 < r["local"]["measured_over_formula"] < 1.5 and r["ray"] and r["learner"]
                        and len(r["request_shapes"]["batches_per_s"]) == 4
                        and min(r["request_shapes"]["through_slots"].values()) >= 0.9  # one may fall back under load
                        and all(row["of_bare_loop"] > 0 for row in r["learner"])),
    "learner_scaling.py": (["--replicas", "1", "--sweep", "1", "--updates", "10", "--student", "net3", "--steps",
                            "1024"], lambda r: {row["mode"] for row in r["rows"]} == {"data-parallel", "sweep"}
                           and positive_rows(r, ["updates_per_s"])),
    "multitask_bench.py": (["--games", "pong,breakout", "--capacity-hours", "0.02", "--updates", "60",
                            "--log-every", "20", "--ceiling-seconds", "0.5"],
                           lambda r: [g["game"] for g in r["games"]] == ["pong", "breakout"] and r["updates"] == 60
                           and all(g["labelled_steps_per_s"] > 0 and g["stored_steps"] > 0 for g in r["games"])
                           and r["cores_busy_by_role"]["RolloutActor"] > 0 and r["cores_busy_by_role"]["Learner"] > 0
                           and r["labelled_over_bare_emulator"] > 0 and r["learner_over_bare_loop"] > 0),
    "fidelity.py": (["--games", "ms_pacman", "--steps", "2048", "--updates", "40", "--eval-every", "20",
                     "--eval-episodes", "1", "--select-episodes", "1", "--sections", "compression",
                     "--holdout-steps", "200", "--runner", "local"],
                    lambda r: [row["student"] for row in r["rows"]] == ["net1", "net2", "net3"]
                    and all(row["updates"] == 40 for row in r["rows"])),
    "ten_games.py": (["--games", "breakout,seaquest", "--steps", "1024", "--updates", "40", "--eval-every", "20",
                      "--eval-episodes", "1", "--select-episodes", "1", "--trunks", "net3", "--schedules", "balanced",
                      "--singles", "net3", "--capacity-hours", "0.05", "--holdout-steps", "200", "--runner", "local"],
                     lambda r: [(row["section"], row["game"]) for row in r["rows"]] == [
                         ("single/net3", "breakout"), ("single/net3", "seaquest"), ("net3/balanced", "breakout"),
                         ("net3/balanced", "seaquest")]
                     and all(sum(row["game_batches"] for row in r["rows"] if row["section"] == section) == 40
                             for section in ("net3/balanced", "single/net3"))),
    "behaviour.py": (["--games", "pong", "--variants", "student/kl", "--updates", "40", "--behaviour-every", "10",
                      "--eval-episodes", "1", "--holdout-steps", "200", "--runner", "local"],
                     lambda r: [(row["section"], row["loss"], row["updates"]) for row in r["rows"]] == [
                         ("student", "kl", 40)] and r["rows"][0]["student_acted_share"] is not None),
    "teacher_pipeline.py": (["--frames", "12000", "--seconds", "1", "--log-every", "25"],
                            lambda r: r["bare_emulator_frames_per_s"] > 0 and r["bare_updates_per_s"] > 0
                            and 0 < r["pipeline_over_ceiling"] < 1.5 and 0 <= r["learner_wait_fraction"] <= 1
                            and r["learner_device"] == "cpu"),
    "soak.py": (["--minutes", "0.3", "--interval", "3", "--warmup", "0", "--kinds", "distill"],
                lambda r: [run["kind"] for run in r["runs"]] == ["distill"] and {"driver", "object store"} <= {
                    row["process"] for row in r["runs"][0]["growth"]} and any(
                    row["process"].startswith("ReplayShard") for row in r["runs"][0]["growth"])),
    "inference.py": (["--presets", "net3", "--iters", "20", "--threads", "1"],
                     lambda r: [row["runtime"] for row in r["rows"]] == ["torch-eager", "torch-export",
                                                                         "onnxruntime-fp32", "onnxruntime-int8"]
                     and positive_rows(r, ["batch1_median_us", "batch32_frames_per_s", "file_bytes"])
                     and r["rows"][3]["file_bytes"] < r["rows"][2]["file_bytes"]),
    "outgrow.py": (["--games", "pong", "--variants", "kl+rl", "--updates", "60", "--eval-every", "30", "--eval-episodes",
                    "2", "--select-episodes", "1", "--holdout-steps", "200", "--runner", "local"],
                   lambda r: [(row["section"], row["best_updates"]) for row in r["rows"]] == [("student/kl+rl", 30)]
                   and all(r["rows"][0][key] is not None for key in ("labelled_frames", "final_distill_weight", "best_score"))),
    "runners.py": (["--runners", "local", "--updates", "20", "--eval-every", "0", "--eval-episodes", "1", "--select-episodes", "1",
                    "--holdout-steps", "200", "--min-replay", "256", "--log-every", "10", "--checkpoint-every", "20"],
                   lambda r: [row["runner"] for row in r["rows"]] == ["local"]  # the same code under either flag
                   and all(row["updates"] == 20 and row["wall_s"] > 0 and row["seed"] == 0 for row in r["rows"])),
    "time_to_score.py": ([], lambda r: sorted(row["game"] for row in r["rows"]) == catalog.games() and all(
        row["within_90pct_of_best"]["frames"] <= row["run_frames"] for row in r["rows"])),
}


def test_every_bench_script_is_run_here():
    assert sorted(TINY) == sorted(p.name for p in (ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_runs_at_tiny_size(script, tmp_path):
    """Each in a process of its own, as it is run: several measure their process's memory, and one in
    this process measured the tests' (tried 2026-12-07; it saved 2 of 11 minutes)."""
    args, check = TINY[script]
    folder = {"fidelity.py": "fidelity.json", "ten_games.py": "ten_games.json", "behaviour.py": "behaviour.json",
              "outgrow.py": "outgrow.json"}.get(script)  # these write a folder
    out = tmp_path / (script[:-3] if folder else "result.json")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    written = json.loads((out / folder if folder else out).read_text())
    dumped = json.dumps(written)
    assert check(written), dumped if len(dumped) < 3000 else dumped[:1000] + " ... " + dumped[-2000:]


def test_the_fidelity_table_takes_a_student_that_scores_below_zero():
    """Pong's scores run from -21 to 21: a student below zero is a negative raw % of teacher, but its
    normalised % shows it far above random; the table states both with their bounds."""
    import importlib.util

    from atari_distill.evaluation.statistics import compare, geometric_means

    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "bench" / "fidelity.py")
    fidelity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fidelity)
    teacher, random = {"mean": 17.0, "ci95": 0.6, "episodes": 30}, {"mean": -20.4, "ci95": 0.3, "episodes": 30}
    row = {"section": "compression", "game": "pong", "student": "net3", "loss": "kl", "params": 61174,
           "score": -2.8, "ci95": 5.1, "teacher_score": 17.0, "teacher_ci95": 0.6, "random_score": -20.4,
           **compare({"mean": -2.8, "ci95": 5.1, "episodes": 30}, teacher, random),
           "agreement": 0.569, "agreement_sticky": 0.51, "majority_baseline": 0.227, "updates": 6000,
           "samples": 192000, "updates_to_90pct": None, "wall_s": 202.0, "device": "cpu"}
    few = {**row, "student": "net1", **compare({"mean": 6.1, "ci95": 3.0, "episodes": 4}, teacher, random)}
    table = fidelity.markdown({"rows": [row, few], "geometric_means": {"compression/net3/kl": geometric_means(
        {"pong": row})}})
    assert "| -16% (-46%) | 47% (33%) |" in table and "| withheld | withheld |" in table and "not reached" in table
    assert "raw n/a, normalised 47%" in table
