"""## Runs: a row per series with its network, updates and scores."""

from __future__ import annotations

from atari_distill.ui.plots import series_key
from atari_distill.ui.report.runs import BY_FRAMES, games_of, students
from atari_distill.ui.report.tables import RATIO_HEADER, geometric_ratios, ratios, table


def summary_section(runs: list[dict]) -> str:
    """A row per student (a sweep's each, an online run's own, a multi-task student with its geometric
    mean) and per DQN, with the updates that series itself made."""
    rows = []
    for run in runs:
        common = [run["kind"], run["summary"].get("complete")]
        if run["kind"] in BY_FRAMES:
            rows.append(_dqn_row(run, common))
        if run["kind"] not in BY_FRAMES and not any(st["per_game"] for st in students(run)):
            rows.append(_unscored_row(run, common))
            continue
        rows += [_student_row(student, common, run["summary"].get("wall_s")) for student in students(run)]
    return "## Runs\n\n" + table(["series", "kind", "complete", "game", "network", "parameters", "updates",
                                  "score", "95% CI", "teacher score", "random score", *RATIO_HEADER,
                                  "action agreement", "wall s"], rows)


def _dqn_row(run: dict, common: list) -> list:
    s = run["summary"]
    best = s.get("best_report_score") or (s.get("teacher_score") if run["kind"] == "online" else None) or {}
    game, preset = games_of(s, run["config"])[0], s.get("preset") or run["config"].get("preset")
    return [series_key(run["name"], "dqn"), *common, game, preset,
            s.get("teacher_params") or _params(preset, game), s.get("updates"), best.get("mean"), best.get("ci95"),
            None, (s.get("random_score") or {}).get("mean"), "n/a", "n/a", None, s.get("wall_s")]


def _unscored_row(run: dict, common: list) -> list:
    """A run stopped or still running: no final scores yet, but how far it got."""
    s = run["summary"]
    updates = max((m.get("updates", 0) for m in run["metrics"] if not m.get("kind", "").startswith("eval")),
                  default=None)
    return [run["name"], *common, ", ".join(g for g in games_of(s, run["config"]) if g),
            s.get("student") or run["config"].get("student"), s.get("student_params"), updates,
            "not scored", None, None, None, "n/a", "n/a", None, s.get("wall_s")]


def _student_row(student: dict, common: list, wall_s) -> list:
    games = list(student["per_game"])
    if len(games) == 1:
        r = student["per_game"][games[0]]
        return [student["key"], *common, games[0], student["preset"], student["params"], student["updates"],
                r["student_score"]["mean"], r["student_score"].get("ci95"),
                (r.get("teacher_score") or {}).get("mean"), (r.get("random_score") or {}).get("mean"),
                *ratios(r), r.get("action_agreement"), wall_s]
    g = student["geometric"] or {}
    return [student["key"], *common, f"{len(games)} games (geometric mean)", student["preset"],
            student["params"], student["updates"], "per game: see Multi-task", None, None, None,
            *geometric_ratios(g), g.get("mean_action_agreement"), wall_s]


def _params(preset: str | None, game: str) -> int | None:
    """A DQN's parameters from its preset, for teacher runs whose summary does not state them."""
    from atari_distill.actors.games import game_spec
    from atari_distill.models.networks import QNetwork, parameter_count

    try:
        return parameter_count(QNetwork(preset, {game: game_spec(game).num_actions}))
    except (KeyError, ValueError):
        return None
