"""The `evaluate` command: one model (a run's student, a checkpoint, a teacher or an exported file) played
on the protocol's report seeds (the episodes a run with `--seed` states its scores on), in this process
or on Ray."""

from __future__ import annotations

from atari_distill.actors.env import resolve_env_mode
from atari_distill.evaluation.protocol import REPORT, EvalProtocol, ProtocolError
from atari_distill.evaluation.episodes import EvalResult, evaluate_parallel, evaluate_policy
from atari_distill.actors.games import GameSpec, game_spec
from atari_distill.cluster.runtime import connect
from atari_distill.pipelines.sections import RUNNERS, need
from atari_distill.pipelines.skeleton import hosted_by
from atari_distill.pipelines.sources import resolve_model


def run_evaluate(checkpoint: str, game: str | None, episodes: int, workers: int, epsilon: float, noop_max: int,
                 sticky_actions: bool, env_mode: str, address: str | None, seed: int, series: str | None = None,
                 echo=print, runner: str = "ray") -> tuple[GameSpec, EvalResult, str]:
    """The game played, its result and the env mode; `seed` picks the episodes a run with that seed plays.
    `checkpoint` is anything pipelines/sources.py resolves; the game defaults to the model's one head."""
    need(episodes >= 1, f"--episodes must be at least 1, got {episodes}")
    need(workers >= 1, f"--workers must be at least 1, got {workers}")
    need(0 <= epsilon <= 1, f"--epsilon must be in [0, 1], got {epsilon}")
    need(0 <= noop_max <= 1000, f"--noop-max must be in [0, 1000], got {noop_max}")
    try:
        protocol = EvalProtocol(episodes=episodes, epsilon=epsilon, noop_max=noop_max, sticky_actions=sticky_actions,
                                env_mode=env_mode, seed=seed)
    except ProtocolError as error:
        need(False, str(error))
    model = resolve_model(checkpoint, game, series, seed)
    need(len(model.games) == 1, f"{checkpoint!r} has a head for each of {', '.join(model.games)}; pick one with --game")
    spec, payload = game_spec(model.games[0]), model.payload
    kwargs = protocol.play(REPORT, payload)
    echo(f"[evaluate] {spec.title}: playing {episodes} episode(s) on {workers} worker(s)")
    need(runner in RUNNERS, f"--runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    need(runner == "ray" or not address, f"--runner local plays in this process and cannot use the cluster at "
                                         f"--address {address}; drop --address, or use --runner ray")
    if workers == 1 and not address:
        result = evaluate_policy(payload, spec.name, episodes, **kwargs)
    else:
        if runner == "ray":
            connect(address, cpus_needed=workers)
        with hosted_by(runner):
            result = evaluate_parallel(payload, spec.name, episodes, workers, **kwargs)
    return spec, result, resolve_env_mode(env_mode, payload)
