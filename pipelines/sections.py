"""The sections run configs are composed of, each with its defaults, help and checks written once.

A section checks what it can alone; a check that spans sections (an actor per shard, a replay
that holds two chunks) is the run config's (pipelines/config.py). Where a run kind may rename
a section's flags, the check names the flag through `flag` (online's `--student-lr`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from atari_distill.actors.env import ENV_MODES, MAX_ENVS_PER_ACTOR, env_config_for
from atari_distill.evaluation.protocol import MAX_SEED, MIN_CLAIM_EPISODES
from atari_distill.cluster.errors import ConfigError
from atari_distill.learner.losses import LOSSES, LossError, hyperparameters, make_loss
from atari_distill.models.networks import PRESETS, UnknownPresetError, canonical_preset
from atari_distill.pipelines.config_tree import setting
from atari_distill.replay.memory_plan import STEPS_PER_HOUR

PAPER_REPLAY_RATIO = round(10_000 * 32 / STEPS_PER_HOUR, 3)  # 5.926

FlagName = Callable[[str], str]  # a section's field -> the option that sets it in this run kind


RUNNERS = ("ray", "local")


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


GAME_HELP = "game (any ROM ale-py ships: pong, Pong, ALE/Pong-v5)"
TEACHER_HELP = ("teacher: zoo:GAME (a trained teacher that ships in zoo/; launch.py zoo lists them), a checkpoint "
                "path, or 'random' (seeded weights)")


@dataclass
class ActingSettings:
    """The teacher actors: which game and teacher, how many, and the environments they step."""

    game: str | None = setting(None, GAME_HELP + "; if omitted, a zoo:GAME teacher's game, else pong")
    teacher: str | None = setting(None, TEACHER_HELP + "; if omitted, random")
    actors: int = setting(1, "teacher actors (Ray actors, one CPU each)")
    envs_per_actor: int = setting(4, "environments each actor steps in one AtariVectorEnv")
    chunk_steps: int = setting(64, "steps per environment in one chunk sent to the replay")
    epsilon: float = setting(0.05, "probability the teacher acts uniformly at random while labelling")
    actor_gpus: float = setting(0.0, "GPU share per teacher actor (0.25: four actors per GPU); 0 runs teachers on CPU")
    env_groups: int = setting(0, "pipelined env groups per actor (one group steps while the teacher labels the "
                                 "other); 0: 2 with a GPU teacher, else 1 (on CPU 2 helps only when cores are idle)")
    noop_max: int = setting(30, "maximum no-op actions at episode start")
    sticky_actions: bool = setting(False, "repeat the previous action with probability 0.25 (Machado et al.)")
    env_mode: str = setting("auto", "environment mode: native, sb3, cleanrl (FIRE on reset), or auto: the one "
                                    "an imported teacher was trained in, else native")

    def validate(self) -> None:
        from atari_distill.actors.games import UnknownGameError, canonical_name

        try:
            self.game = canonical_name(self.game or zoo_game(self.teacher) or "pong")
        except UnknownGameError as error:
            raise ConfigError(f"--game: {error}") from None
        self.teacher = self.teacher or "random"
        need(self.actors >= 1, f"--actors must be at least 1, got {self.actors}")
        need(1 <= self.envs_per_actor <= MAX_ENVS_PER_ACTOR,
             f"--envs-per-actor must be in [1, {MAX_ENVS_PER_ACTOR}], got {self.envs_per_actor}")
        need(1 <= self.chunk_steps <= 4096, f"--chunk-steps must be in [1, 4096], got {self.chunk_steps}")
        need(0.0 <= self.epsilon <= 1.0, f"--epsilon must be in [0, 1], got {self.epsilon}")
        need(0 <= self.env_groups <= 64, f"--env-groups must be in [0, 64] (0: automatic), got {self.env_groups}")
        need(0.0 <= self.actor_gpus <= 1.0,
             f"--actor-gpus must be in [0, 1] (a share of one GPU), got {self.actor_gpus}")
        need(0 <= self.noop_max <= 1000, f"--noop-max must be in [0, 1000], got {self.noop_max}")
        need(self.env_mode == "auto" or self.env_mode in ENV_MODES,
             f"--env-mode must be auto or one of {', '.join(ENV_MODES)}, got {self.env_mode!r}")
        check_teacher("--teacher", self.teacher)

    def actor_options(self) -> tuple[dict, str]:
        """Ray options and rollout device for a teacher actor; refuses a GPU share on a cluster without GPUs."""
        if self.actor_gpus > 0:
            from atari_distill.cluster.runtime import has_gpu

            need(has_gpu(), f"--actor-gpus {self.actor_gpus} needs a GPU, but Ray sees none; drop --actor-gpus")
            return {"num_cpus": 1, "num_gpus": self.actor_gpus}, "cuda"
        return {"num_cpus": 1}, "cpu"

    def groups(self, device: str) -> int:
        return self.env_groups or (2 if device == "cuda" else 1)

    def env_config(self, teacher: dict):
        return env_config_for(self.env_mode, teacher, self.noop_max, self.sticky_actions)

    @property
    def chunk_size(self) -> int:
        return self.chunk_steps * self.envs_per_actor


@dataclass
class ReplaySettings:
    """One game's replay: its size, its shards, and the ratio that holds actors and learner together."""

    capacity_hours: float = setting(10.0, "replay capacity per game in hours of play (1 hour = 54,000 steps; memory "
                                          "is committed as it fills)")
    replay_shards: int = setting(1, "replay shard actors per game; actor i streams to shard i mod K")
    replay_ratio: float = setting(PAPER_REPLAY_RATIO, "sampled steps per inserted step, held by backpressure on both "
                                                      "sides; the paper's 10,000 minibatches of 32 per hour of play "
                                                      "is 5.93 (a DQN's 8: one batch of 32 every 4 steps); 0 turns "
                                                      "the limit off (not for a DQN)")
    min_replay: int = setting(1000, "steps the replay must hold before training starts")
    prefetch: int = setting(4, "sample requests the learner keeps in flight")

    @property
    def capacity_steps(self) -> int:
        return int(round(self.capacity_hours * STEPS_PER_HOUR))

    def validate(self, flag: FlagName, chunk_size: int) -> None:
        need(1 <= self.replay_shards <= 1024, f"{flag('replay_shards')} must be in [1, 1024], got {self.replay_shards}")
        need(0.0 <= self.replay_ratio <= 1e6,
             f"{flag('replay_ratio')} must be in [0, 1e6] (0 turns it off), got {self.replay_ratio}")
        shard_steps = self.capacity_steps // self.replay_shards
        need(shard_steps >= 2 * chunk_size,
             f"{flag('capacity_hours')} {self.capacity_hours} gives each of {self.replay_shards} shard(s) "
             f"{shard_steps} steps, fewer than two chunks ({2 * chunk_size}); raise {flag('capacity_hours')} or lower "
             f"--replay-shards, --chunk-steps or --envs-per-actor")
        need(1 <= self.min_replay <= self.capacity_steps,
             f"{flag('min_replay')} must be in [1, capacity {self.capacity_steps}], got {self.min_replay}")
        need(1 <= self.prefetch <= 64, f"{flag('prefetch')} must be in [1, 64], got {self.prefetch}")


@dataclass
class _StudentSettings:
    FLAGS = {"preset": "student"}

    preset: str = setting("net1", f"student preset: {', '.join(PRESETS)}; a comma-separated list (with --loss lists) "
                                  f"sweeps every pair, each on its own learner, from one actor/replay set")
    loss: str = setting("kl", f"distillation loss: {', '.join(LOSSES)}; comma-separated to sweep")
    lr: float = setting(1e-3, "student RMSProp learning rate (1e-3: on a real Ms. Pac-Man teacher, net3 agreed 0.74 "
                              "after 500 updates at 1e-3 and 0.45 at 2.5e-4; see bench/RESULTS.md)")
    batch_size: int = setting(32, "student minibatch size")

    def pairs(self) -> list[tuple[str, str]]:
        """Every (preset, loss) to train, in flag order."""
        return [(s, l) for s in self.preset.split(",") for l in self.loss.split(",")]

    def label_losses(self) -> tuple:
        """Every loss this run's labels train: a teacher labels in float16 only where all keep their targets."""
        return tuple(loss_for(self, name) for name in self.loss.split(","))

    def loss_settings(self) -> dict:
        return {spec.name: getattr(self, spec.name) for spec in hyperparameters()}

    def validate(self, flag: FlagName, sweep: bool) -> None:
        presets = [preset_flag("--student", s) for s in self.preset.split(",")]
        losses = self.loss.split(",")
        self.preset = ",".join(presets)
        for name in losses:
            loss_for(self, name)
        need(sweep or len(self.pairs()) == 1, f"--student {self.preset!r} / --loss {self.loss!r}: this run trains "
                                              f"one student; give one preset and one loss")
        need(len(set(presets)) == len(presets) and len(set(losses)) == len(losses),
             f"--student {self.preset!r} / --loss {self.loss!r} lists a value twice")
        need(len(self.pairs()) <= 64, f"the sweep has {len(self.pairs())} students; at most 64 per run")
        need(self.lr > 0, f"{flag('lr')} must be positive, got {self.lr}")
        need(1 <= self.batch_size <= 65_536, f"{flag('batch_size')} must be in [1, 65536], got {self.batch_size}")


StudentSettings = dataclasses.make_dataclass(  # the student's settings and every loss's hyperparameters (--tau)
    "StudentSettings", [(spec.name, spec.type, setting(spec.default, spec.metadata["help"]))
                        for spec in hyperparameters()], bases=(_StudentSettings,))


def loss_for(settings, name: str):
    """The loss `name` built from these settings; a setting out of range is refused naming its flag."""
    need(name in LOSSES, f"--loss: unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    try:
        return make_loss(name, **{spec.name: getattr(settings, spec.name) for spec in hyperparameters()})
    except LossError as error:
        raise ConfigError(f"--{str(error).replace('_', '-')}") from None


BEHAVIOURS = ("teacher", "student", "mixed")


@dataclass
class BehaviourSettings:
    """Who chooses the actions the teacher labels: the teacher (Rusu et al.), the student (its states,
    as DAgger and Czarnecki et al. 2019 ask), or per episode the teacher with share beta, which
    halves every --beta-half-life updates (DAgger's decaying beta_i). The teacher labels every step."""

    behaviour: str = setting("teacher", "who acts in the actors' environments: teacher, student (its current weights, "
                                        "pushed every --behaviour-every updates), or mixed (per episode, the teacher "
                                        "with share beta, halving every --beta-half-life updates)")
    behaviour_every: int = setting(250, "with --behaviour student or mixed: updates between pushes of the student's "
                                        "weights to the actors")
    beta_half_life: int = setting(2000, "with --behaviour mixed: updates over which the teacher's share of episodes "
                                        "halves (1 at the start)")

    def beta(self, updates: int) -> float:
        """The teacher's share of new episodes after `updates` (1: all the teacher's, 0: all the student's)."""
        return {"teacher": 1.0, "student": 0.0}.get(self.behaviour, 0.5 ** (updates / self.beta_half_life))

    def student_drives(self) -> bool:
        return self.behaviour != "teacher"

    def validate(self) -> None:
        need(self.behaviour in BEHAVIOURS, f"--behaviour must be one of {', '.join(BEHAVIOURS)}, got {self.behaviour!r}")
        need(self.behaviour_every >= 1, f"--behaviour-every must be at least 1, got {self.behaviour_every}")
        need(self.beta_half_life >= 1, f"--beta-half-life must be at least 1, got {self.beta_half_life}")


HANDOFFS = ("qdagger", "kickstart", "none")


@dataclass
class RLSettings:
    """A student that also learns from the reward (QDagger, Agarwal et al. 2022; Kickstarting, Schmitt et
    al. 2018): its loss is lambda * distillation + --rl-weight * the project's n-step double-DQN TD loss on
    the same transitions, against a target copy of the student. lambda starts at 1 and hands off to the
    reward: with qdagger it is 1 minus the student's normalised selection-seed score at each --eval-every
    point ((student - random) / (teacher - random), clipped to [0, 1]), so it reaches 0 once the student
    plays as well as its teacher; with kickstart it halves every --handoff-half-life updates."""

    rl_weight: float = setting(0.0, "weight of the student's own TD loss on the reward (0: pure distillation); with "
                                    "it the student can pass its teacher")
    handoff: str = setting("qdagger", "with --rl-weight: how the distillation weight falls from 1: qdagger (1 minus "
                                      "the student's normalised selection score, at each --eval-every), kickstart "
                                      "(halving every --handoff-half-life updates) or none (stays 1)")
    handoff_half_life: int = setting(5000, "with --handoff kickstart: updates over which the distillation weight halves")
    rl_n_step: int = setting(3, "with --rl-weight: steps in the return before bootstrapping")
    rl_gamma: float = setting(0.99, "with --rl-weight: discount")
    rl_target_every: int = setting(2000, "with --rl-weight: updates between copies of the student into its target "
                                         "network")
    rl_life_loss_terminal: bool = setting(False, "with --rl-weight: treat a lost life as terminal in the TD targets "
                                                 "(the game plays on), as a DQN teacher of Breakout was trained")

    def active(self) -> bool:
        return self.rl_weight > 0

    def distill_weight(self, progress: float | None = None, updates: int = 0) -> float:
        """lambda, the distillation term's weight: from the student's normalised selection-seed score
        `progress` (qdagger) or its update count (kickstart)."""
        if not self.active() or self.handoff == "none":
            return 1.0
        if self.handoff == "kickstart":
            return 0.5 ** (updates / self.handoff_half_life)
        return 1.0 if progress is None else min(1.0, max(0.0, 1.0 - progress))

    def validate(self, eval_every: int, updates: int) -> None:
        need(0.0 <= self.rl_weight <= 1000.0, f"--rl-weight must be in [0, 1000] (0: pure distillation), "
                                              f"got {self.rl_weight}")
        need(self.handoff in HANDOFFS, f"--handoff must be one of {', '.join(HANDOFFS)}, got {self.handoff!r}")
        need(self.handoff_half_life >= 1, f"--handoff-half-life must be at least 1, got {self.handoff_half_life}")
        need(1 <= self.rl_n_step <= 100, f"--rl-n-step must be in [1, 100], got {self.rl_n_step}")
        need(0.0 < self.rl_gamma <= 1.0, f"--rl-gamma must be in (0, 1], got {self.rl_gamma}")
        need(self.rl_target_every >= 1, f"--rl-target-every must be at least 1, got {self.rl_target_every}")
        defaults = {spec.name: spec.default for spec in dataclasses.fields(self)}
        unused = [name for name in defaults if name != "rl_weight" and getattr(self, name) != defaults[name]]
        need(self.active() or not unused, f"--{unused[0].replace('_', '-') if unused else ''} does nothing without "
                                          f"--rl-weight; add --rl-weight 1 or drop it")
        need(self.handoff == "kickstart" or self.handoff_half_life == defaults["handoff_half_life"],
             f"--handoff-half-life is for --handoff kickstart, not {self.handoff}; drop it or add --handoff kickstart")
        need(not self.active() or self.handoff != "qdagger" or 0 < eval_every < updates,
             f"--rl-weight {self.rl_weight} with --handoff qdagger hands off at the student's evaluations, but "
             f"--eval-every {eval_every} draws none before update {updates:,}; use --eval-every "
             f"{max(1, updates // 4):,}, or --handoff kickstart")


@dataclass
class EvalSettings:
    """Playing a policy for its score, and the held-out frames its agreement with the teacher is measured on.

    Reported scores and choices play disjoint seeds (evaluation/protocol.py): what selects a checkpoint
    or draws a curve never sets the number a summary states."""

    FLAGS = {"episodes": "eval_episodes", "selection_episodes": "select_episodes", "epsilon": "eval_epsilon",
             "workers": "eval_workers"}

    episodes: int = setting(30, f"episodes for every reported score (teacher, student, random policy), on report "
                                f"seeds; below {MIN_CLAIM_EPISODES} a run states scores but no % of teacher")
    selection_episodes: int = setting(8, "episodes for each choice: a DQN checkpoint's score for the registry's best, "
                                         "each --eval-every point of a learning curve; on selection seeds")
    epsilon: float = setting(0.05, "epsilon during evaluation (the DQN convention)")
    workers: int = setting(2, "evaluator actors (one CPU each) sharing the evaluation episodes")
    holdout_steps: int = setting(2000, "held-out teacher-labelled frames for action agreement, sampled across whole "
                                       "episodes (and as many again with sticky actions)")

    def validate(self) -> None:
        need(self.episodes >= 1, f"--eval-episodes must be at least 1, got {self.episodes}")
        need(self.selection_episodes >= 1, f"--select-episodes must be at least 1, got {self.selection_episodes}")
        need(0.0 <= self.epsilon <= 1.0, f"--eval-epsilon must be in [0, 1], got {self.epsilon}")
        need(1 <= self.workers <= 256, f"--eval-workers must be in [1, 256], got {self.workers}")
        need(self.holdout_steps >= 1, f"--holdout-steps must be at least 1, got {self.holdout_steps}")


@dataclass
class DQNSettings:
    """The DQN a teacher run trains (Double DQN, n-step, Adam) and its exploration schedule."""

    preset: str = setting("nature", f"DQN network preset: {', '.join(p for p in PRESETS if not p.startswith('multi'))}")
    lr: float = setting(1e-4, "Adam learning rate")
    adam_eps: float = setting(1.5e-4, "Adam epsilon")
    gamma: float = setting(0.99, "discount")
    n_step: int = setting(3, "steps in the return before bootstrapping")
    double: bool = setting(True, "Double DQN: the online network picks the bootstrap action")
    life_loss_terminal: bool = setting(False, "treat a lost life as terminal in the DQN's targets (the game plays on; "
                                              "the Nature DQN's practice, for games with lives such as Breakout)")
    batch_size: int = setting(32, "minibatch size")
    target_every: int = setting(2000, "updates between copies of the online network into the target network")
    epsilon_start: float = setting(1.0, "exploration epsilon at frame 0")
    epsilon_end: float = setting(0.01, "exploration epsilon after --epsilon-frames")
    epsilon_frames: int = setting(1_000_000, "frames over which epsilon falls linearly")

    def epsilon_at(self, frames: int) -> float:
        done = min(1.0, frames / self.epsilon_frames) if self.epsilon_frames else 1.0
        return self.epsilon_start + done * (self.epsilon_end - self.epsilon_start)

    def validate(self) -> None:
        self.preset = preset_flag("--preset", self.preset)
        need(self.lr > 0 and self.adam_eps > 0, f"--lr and --adam-eps must be positive, got {self.lr}, {self.adam_eps}")
        need(0.0 < self.gamma <= 1.0, f"--gamma must be in (0, 1], got {self.gamma}")
        need(1 <= self.n_step <= 100, f"--n-step must be in [1, 100], got {self.n_step}")
        need(1 <= self.batch_size <= 65_536, f"--batch-size must be in [1, 65536], got {self.batch_size}")
        need(self.target_every >= 1, f"--target-every must be at least 1, got {self.target_every}")
        for name in ("epsilon_start", "epsilon_end"):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        need(self.epsilon_frames >= 0, f"--epsilon-frames must be at least 0, got {self.epsilon_frames}")


@dataclass
class RunSettings:
    """Where a run writes, how often it reports and checkpoints, where it computes, and its seed."""

    seed: int = setting(0, "seed for teacher weights, environments and the learner")
    address: str | None = setting(None, "Ray cluster address (auto, HOST:PORT, ray://HOST:PORT); omit for a local "
                                        "runtime")
    runner: str = setting("ray", "ray: every component a Ray actor, on this machine or the --address cluster; "
                                 "local: all in this process, no Ray (one machine, one learner; a debugger steps "
                                 "through it)")
    device: str = setting("auto", "learner device: auto, cpu, cuda, cuda:N")
    log_every: int = setting(50, "updates between metrics lines (a DQN also pushes its weights to its actors then)")
    checkpoint_every: int = setting(100, "updates between checkpoints (what --resume continues from)")
    out: str = setting("runs/distill", "directory to create for the run")

    def validate(self) -> None:
        need(0 <= self.seed < MAX_SEED, f"--seed must be in [0, {MAX_SEED:,}) (every seed range must fit ALE's 32 bits), "
                                        f"got {self.seed}")
        need(self.runner in RUNNERS, f"--runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        need(self.runner == "ray" or not self.address,
             f"--runner local runs in this process and cannot use the cluster at --address {self.address}; drop "
             f"--address, or use --runner ray")
        need(self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


def zoo_game(source: str | None) -> str | None:
    from atari_distill.zoo.catalog import ZooError
    from atari_distill.zoo.catalog import zoo_game as game_of

    try:
        return game_of(source)
    except ZooError as error:
        raise ConfigError(str(error)) from None


def check_teacher(flag: str, source: str) -> None:
    """'random', a zoo teacher that exists, or a file."""
    from atari_distill.zoo.catalog import ZooError, teacher_path

    if source == "random":
        return
    try:
        path = teacher_path(source)
    except ZooError as error:
        raise ConfigError(f"{flag} {source!r}: {error}") from None
    need(Path(path).is_file(), f"{flag} {source!r} is neither 'random', zoo:GAME nor an existing checkpoint file")


def preset_flag(flag: str, name: str) -> str:
    try:
        return canonical_preset(name)
    except UnknownPresetError as error:
        raise ConfigError(f"{flag}: {error}") from None
