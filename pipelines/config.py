"""One typed, validated config per run; the CLI flags are generated from its fields.

Each field's metadata carries its help text, so a flag, its default and its documentation
live in one place. `validate` turns every impossible value into a ConfigError whose one
line names the flag and what to do instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from actors.env import ENV_MODES, FRAME_SKIP, env_config_for
from cluster.errors import ConfigError
from learner.losses import LOSSES, LossError, hyperparameters, make_loss
from models.networks import PRESETS, UnknownPresetError, canonical_preset
from replay.memory_plan import STEPS_PER_HOUR

PAPER_REPLAY_RATIO = round(10_000 * 32 / STEPS_PER_HOUR, 3)  # 5.926


def _flag(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class ActingConfig:
    """What every command that runs teacher actors shares."""

    game: str | None = _flag(None, "game (any ROM ale-py ships: pong, Pong, ALE/Pong-v5); "
                                   "with --dataset, the dataset's game; else pong")
    teacher: str | None = _flag(None, "teacher: zoo:GAME (a trained teacher that ships in zoo/; launch.py zoo lists "
                                      "them), a checkpoint path, or 'random' (seeded weights); with --dataset, the "
                                      "teacher that recorded it; else random")
    actors: int = _flag(1, "teacher actors (Ray actors, one CPU each)")
    envs_per_actor: int = _flag(4, "environments each actor steps in one AtariVectorEnv")
    chunk_steps: int = _flag(64, "steps per environment in one chunk sent to the replay")
    epsilon: float = _flag(0.05, "probability the teacher acts uniformly at random while labelling")
    actor_gpus: float = _flag(0.0, "GPU share per teacher actor (0.25: four actors per GPU); 0 runs teachers on CPU")
    env_groups: int = _flag(0, "pipelined env groups per actor (one group steps while the teacher labels the "
                               "other); 0: 2 with a GPU teacher, else 1 (on CPU 2 helps only when cores are idle)")
    noop_max: int = _flag(30, "maximum no-op actions at episode start")
    sticky_actions: bool = _flag(False, "repeat the previous action with probability 0.25 (Machado et al.)")
    env_mode: str = _flag("auto", "environment mode: native, sb3, cleanrl (FIRE on reset), or auto: the one "
                                  "an imported teacher was trained in, else native")
    seed: int = _flag(0, "seed for teacher weights, environments and the learner")
    address: str | None = _flag(None, "Ray cluster address (auto, HOST:PORT, ray://HOST:PORT); omit for a local runtime")

    def validate(self):
        from actors.games import UnknownGameError, canonical_name

        try:
            self.game = canonical_name(self.game or zoo_game(self.teacher) or "pong")
        except UnknownGameError as error:
            raise ConfigError(f"--game: {error}") from None
        self.teacher = self.teacher or "random"
        need(self.actors >= 1, f"--actors must be at least 1, got {self.actors}")
        need(1 <= self.envs_per_actor <= 1024, f"--envs-per-actor must be in [1, 1024], got {self.envs_per_actor}")
        need(1 <= self.chunk_steps <= 4096, f"--chunk-steps must be in [1, 4096], got {self.chunk_steps}")
        need(0.0 <= self.epsilon <= 1.0, f"--epsilon must be in [0, 1], got {self.epsilon}")
        need(0 <= self.env_groups <= 64, f"--env-groups must be in [0, 64] (0: automatic), got {self.env_groups}")
        need(0.0 <= self.actor_gpus <= 1.0, f"--actor-gpus must be in [0, 1] (a share of one GPU), got {self.actor_gpus}")
        need(0 <= self.noop_max <= 1000, f"--noop-max must be in [0, 1000], got {self.noop_max}")
        need(self.env_mode == "auto" or self.env_mode in ENV_MODES,
             f"--env-mode must be auto or one of {', '.join(ENV_MODES)}, got {self.env_mode!r}")
        check_teacher("--teacher", self.teacher)
        return self

    def actor_options(self) -> dict:
        """Ray options and rollout device for a teacher actor; refuses a GPU share on a cluster without GPUs."""
        if self.actor_gpus > 0:
            from cluster.runtime import has_gpu

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

    def steps_within(self, frames: int) -> int:
        """The steps a --frames budget stores: each shard's share, in whole chunks (replay/shard.py)."""
        from replay.shard import split_budget

        shares = split_budget(frames // FRAME_SKIP, self.actors, self.replay_shards)
        return sum(share // self.chunk_size * self.chunk_size for share in shares)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict):
        """A stored config.json, checked for shape and types before anything uses it; a flag the
        file lacks (added since the run began) takes its default."""
        damaged = "the run directory's config.json is damaged; start a new run"
        if not values:
            raise ConfigError(f"config.json holds no flags; {damaged}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(fields)
        if unknown:
            raise ConfigError(f"config has unknown keys {sorted(unknown)}; it was written by another version")
        for name, value in values.items():
            allowed = _TYPES[str(fields[name].type)]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ConfigError(f"config.json gives {name} = {json.dumps(value)[:40]}, not of type {fields[name].type}; "
                                  f"{damaged}")
        return cls(**values)


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "str | None": (str, type(None))}


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_teachers(cfg) -> None:
    """Reads every teacher file once before Ray starts, so a teacher for another game or action
    count is answered at once rather than after the cluster is up."""
    from actors.games import game_spec
    from actors.teachers import load_teacher

    pairs = cfg.game_teachers() if hasattr(cfg, "game_teachers") else [(cfg.game, getattr(cfg, "teacher", None))]
    for game, source in pairs:
        if source not in (None, "random"):
            load_teacher(source, game_spec(game))


def zoo_game(source: str | None) -> str | None:
    from zoo.catalog import ZooError
    from zoo.catalog import zoo_game as game_of

    try:
        return game_of(source)
    except ZooError as error:
        raise ConfigError(str(error)) from None


def check_teacher(flag: str, source: str) -> None:
    """'random', a zoo teacher that exists, or a file."""
    from zoo.catalog import ZooError, teacher_path

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


LossSettings = dataclasses.make_dataclass(  # --tau and any other loss's hyperparameters, from learner/losses.py
    "LossSettings", [(spec.name, spec.type, _flag(spec.default, spec.metadata["help"])) for spec in hyperparameters()],
    namespace={"loss_settings": lambda self: {spec.name: getattr(self, spec.name) for spec in hyperparameters()}})


def loss_for(cfg, name: str):
    """The loss `name` built from the run's settings; a setting out of range is refused naming its flag."""
    need(name in LOSSES, f"--loss: unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    try:
        return make_loss(name, **{spec.name: getattr(cfg, spec.name) for spec in hyperparameters()})
    except LossError as error:
        raise ConfigError(f"--{str(error).replace('_', '-')}") from None


@dataclass
class DistillConfig(LossSettings, ActingConfig):
    student: str = _flag("net1", f"student preset: {', '.join(PRESETS)}; a comma-separated list (with --loss "
                                      f"lists) sweeps every pair, each on its own learner, from one actor/replay set")
    loss: str = _flag("kl", f"distillation loss: {', '.join(LOSSES)}; comma-separated to sweep")
    updates: int = _flag(300, "student updates (minibatches) to train")
    batch_size: int = _flag(32, "minibatch size")
    lr: float = _flag(1e-3, "RMSProp learning rate (1e-3: on a real Ms. Pac-Man teacher, net3 agreed 0.74 after 500 "
                                "updates at 1e-3 and 0.45 at 2.5e-4; see bench/RESULTS.md)")
    capacity_hours: float = _flag(10.0, "replay capacity per game in hours of play (1 hour = 54,000 steps; "
                                        "memory is committed as it fills)")
    replay_shards: int = _flag(1, "replay shard actors per game; actor i streams to shard i mod K")
    replay_ratio: float = _flag(PAPER_REPLAY_RATIO, "sampled steps per inserted step, held by backpressure on "
                                                    "both sides; the paper's 10,000 minibatches of 32 per hour of "
                                                    "play is 5.93; 0 turns the limit off")
    min_replay: int = _flag(1000, "steps the replay must hold before training starts")
    prefetch: int = _flag(4, "sample requests the learner keeps in flight")
    dataset: str | None = _flag(None, "distill from a recorded dataset (launch.py record) instead of live actors")
    skip_damaged: bool = _flag(False, "with --dataset, leave out damaged chunks instead of stopping")
    eval_episodes: int = _flag(2, "episodes for each student and teacher evaluation")
    eval_every: int = _flag(0, "updates between student evaluations while training (score and held-out agreement: "
                               "a learning curve in metrics, TensorBoard and the report); 0: only the final one")
    eval_epsilon: float = _flag(0.05, "epsilon during evaluation (the DQN convention)")
    eval_workers: int = _flag(2, "evaluator actors (one CPU each) sharing the evaluation episodes")
    holdout_steps: int = _flag(2000, "held-out teacher-labelled frames for action agreement")
    log_every: int = _flag(50, "updates between metrics lines")
    checkpoint_every: int = _flag(100, "updates between checkpoints")
    device: str = _flag("auto", "learner device: auto, cpu, cuda, cuda:N")
    learner_gpus: int = _flag(1, "data-parallel learner replicas per student, a GPU each (torch.distributed: NCCL "
                                 "on GPUs, gloo on CPU); each update averages G batches")
    learner_resource: str | None = _flag(None, "a custom Ray resource learners need one unit of, to pin them (and "
                                               "the replay) to nodes started with --resources '{\"NAME\": 1}'")
    out: str = _flag("runs/distill", "run directory to create")

    @property
    def capacity_steps(self) -> int:
        return int(round(self.capacity_hours * STEPS_PER_HOUR))

    def game_teachers(self) -> list[tuple[str, str]]:
        return [(self.game, self.teacher)]

    def schedule_weights(self) -> dict[str, float] | None:
        return None

    def sweep(self) -> list[tuple[str, str]]:
        """Every (student, loss) pair to train, in flag order."""
        return [(s, l) for s in self.student.split(",") for l in self.loss.split(",")]

    def validate(self) -> "DistillConfig":
        if self.dataset is not None:
            self._adopt_dataset()
        super().validate()
        students, losses = [preset_flag("--student", s) for s in self.student.split(",")], self.loss.split(",")
        self.student = ",".join(students)
        for name in losses:
            loss_for(self, name)
        need(len(set(students)) == len(students) and len(set(losses)) == len(losses),
             f"--student {self.student!r} / --loss {self.loss!r} lists a value twice")
        need(len(self.sweep()) <= 64, f"the sweep has {len(self.sweep())} students; at most 64 per run")
        need(1 <= self.learner_gpus <= 64, f"--learner-gpus must be in [1, 64], got {self.learner_gpus}")
        need(self.learner_resource is None or (self.learner_resource and self.learner_resource not in ("CPU", "memory")),
             f"--learner-resource must name a custom resource (or GPU), got {self.learner_resource!r}")
        need(self.updates >= 1, f"--updates must be at least 1, got {self.updates}")
        need(1 <= self.batch_size <= 65_536, f"--batch-size must be in [1, 65536], got {self.batch_size}")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(0.0 <= self.eval_epsilon <= 1.0, f"--eval-epsilon must be in [0, 1], got {self.eval_epsilon}")
        need(1 <= self.replay_shards <= 1024, f"--replay-shards must be in [1, 1024], got {self.replay_shards}")
        if self.dataset is None:
            need(self.actors >= self.replay_shards,
                 f"--replay-shards {self.replay_shards} exceeds --actors {self.actors}: each actor streams to one "
                 f"shard, so some would stay empty; raise --actors or lower --replay-shards")
        need(0.0 <= self.replay_ratio <= 1e6, f"--replay-ratio must be in [0, 1e6] (0 turns it off), got {self.replay_ratio}")
        shard_steps = self.capacity_steps // self.replay_shards
        need(shard_steps >= 2 * self.chunk_size,
             f"--capacity-hours {self.capacity_hours} gives each of {self.replay_shards} shard(s) {shard_steps} steps, "
             f"fewer than two chunks ({2 * self.chunk_size}); raise --capacity-hours or lower "
             f"--replay-shards, --chunk-steps or --envs-per-actor")
        need(1 <= self.min_replay <= self.capacity_steps,
             f"--min-replay must be in [1, capacity {self.capacity_steps}], got {self.min_replay}")
        need(1 <= self.prefetch <= 64, f"--prefetch must be in [1, 64], got {self.prefetch}")
        need(self.eval_episodes >= 1, f"--eval-episodes must be at least 1, got {self.eval_episodes}")
        need(self.eval_every >= 0, f"--eval-every must be at least 0 (0: only the final evaluation), got {self.eval_every}")
        need(1 <= self.eval_workers <= 256, f"--eval-workers must be in [1, 256], got {self.eval_workers}")
        need(self.holdout_steps >= 1, f"--holdout-steps must be at least 1, got {self.holdout_steps}")
        need(self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    def _adopt_dataset(self) -> None:
        """A dataset fixes the game and teacher; asking for another game is refused."""
        from actors.games import UnknownGameError, canonical_name
        from replay.dataset import DatasetError, read_index

        try:
            index = read_index(self.dataset)
        except DatasetError as error:
            raise ConfigError(f"--dataset: {error}") from None
        if self.game is not None:
            try:
                asked = canonical_name(self.game)
            except UnknownGameError as error:
                raise ConfigError(f"--game: {error}") from None
            need(asked == index["game"], f"--dataset {self.dataset!r} holds {index['game']}, not {asked}; "
                                         f"drop --game or record a {asked} dataset")
        self.game = index["game"]
        need(index["steps"] >= self.min_replay,
             f"--dataset {self.dataset!r} holds {index['steps']:,} steps, fewer than --min-replay {self.min_replay:,}, "
             f"so training would never start; lower --min-replay to at most {index['steps']:,} or record more steps")
        self.chunk_steps = index.get("chunk_steps", self.chunk_steps)  # the recording's chunks reach the replay
        self.envs_per_actor = index.get("envs_per_actor", self.envs_per_actor)
        recorded = index["teacher"]
        if self.teacher is None:
            self.teacher = recorded["source"]
            try:
                check_teacher("--teacher", self.teacher)
            except ConfigError:
                raise ConfigError(f"--dataset was recorded by teacher {self.teacher!r}, which is not on this machine; "
                                  f"pass --teacher PATH (the same weights) for the final evaluation") from None


@dataclass
class MultitaskConfig(DistillConfig):
    """Several games into one student with a head per game; every per-game flag applies to each game."""

    SINGLE_GAME_FLAGS = ("game", "teacher", "dataset", "skip_damaged")

    games: str = _flag("pong,breakout,space_invaders", "comma-separated games, each with its own teacher, "
                                                       "actors and replay shards")
    teachers: str = _flag("random", "one teacher per game (comma-separated, in --games order), one for all, 'zoo' "
                                    "(each game's zoo teacher), or a directory holding a file per game named after "
                                    "it (pong.pt, breakout.zip, ...)")
    weights: str = _flag("", "schedule weights per game, comma-separated in --games order; empty: equal shares")
    student: str = _flag("auto", f"student preset: {', '.join(PRESETS)}; auto: the paper's multi-3 for up to three "
                                  f"games, multi-10 for more")
    out: str = _flag("runs/multitask", "run directory to create")

    def game_list(self) -> list[str]:
        return [g for g in self.games.split(",") if g]

    def validate(self) -> "MultitaskConfig":
        from actors.games import UnknownGameError, canonical_name

        need(self.dataset is None, "--dataset is for single-game runs; record and distill each game on its own")
        need(self.game is None and self.teacher is None,
             "multitask takes --games and --teachers, not --game and --teacher")
        try:
            games = [canonical_name(g.strip()) for g in self.games.split(",") if g.strip()]
        except UnknownGameError as error:
            raise ConfigError(f"--games: {error}") from None
        need(len(games) >= 2, f"--games needs at least two games, got {self.games!r}; use distill for one")
        need(len(set(games)) == len(games), f"--games lists a game twice: {self.games!r}")
        self.games = ",".join(games)
        if self.student == "auto":
            self.student = "multi-3" if len(games) <= 3 else "multi-10"
        self._teacher_sources()
        self.schedule_weights()
        super().validate()
        self.game = self.teacher = None
        return self

    def _teacher_sources(self) -> list[str]:
        from actors.games import UnknownGameError, canonical_name

        games = self.game_list()
        if self.teachers == "zoo":  # a keyword, even where a folder of that name exists (the project's own zoo/)
            return self._checked([f"zoo:{g}" for g in games])
        if Path(self.teachers).is_dir():
            found = {}
            for path in sorted(Path(self.teachers).iterdir()):
                try:
                    found.setdefault(canonical_name(path.name.split(".")[0]), str(path))
                except UnknownGameError:
                    continue
            missing = [g for g in games if g not in found]
            need(not missing, f"--teachers {self.teachers!r} has no file for {', '.join(missing)}; "
                              f"name each file after its game (pong.pt, breakout.zip, ...)")
            return [found[g] for g in games]
        sources = [t.strip() for t in self.teachers.split(",")]
        if len(sources) == 1:
            sources = sources * len(games)
        need(len(sources) == len(games), f"--teachers lists {len(sources)} teachers for {len(games)} games; "
                                         f"give one per game, one for all, or a directory")
        return self._checked(sources)

    @staticmethod
    def _checked(sources: list[str]) -> list[str]:
        for source in sources:
            check_teacher("--teachers", source)
        return sources

    def game_teachers(self) -> list[tuple[str, str]]:
        return list(zip(self.game_list(), self._teacher_sources()))

    def schedule_weights(self) -> dict[str, float] | None:
        games = self.game_list()
        if not self.weights:
            return {g: 1.0 for g in games}
        try:
            values = [float(w) for w in self.weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights must be numbers, got {self.weights!r}") from None
        need(len(values) == len(games) and all(v > 0 for v in values),
             f"--weights needs one positive weight per game ({len(games)}), got {self.weights!r}")
        return dict(zip(games, values))


@dataclass
class TeacherConfig(ActingConfig):
    """A DQN trained from scratch; the recipe and its sources are in README.md ("Training a teacher")."""

    SKIPPED_FLAGS = ("teacher", "epsilon")  # the DQN is the teacher; epsilon follows the schedule below

    frames: int = _flag(10_000_000, "emulator frames to train for (4 per agent step at frame skip 4)")
    preset: str = _flag("nature", f"DQN network preset: {', '.join(PRESETS)}")
    lr: float = _flag(1e-4, "Adam learning rate")
    adam_eps: float = _flag(1.5e-4, "Adam epsilon")
    gamma: float = _flag(0.99, "discount")
    n_step: int = _flag(3, "steps in the return before bootstrapping")
    double: bool = _flag(True, "Double DQN: the online network picks the bootstrap action")
    life_loss_terminal: bool = _flag(False, "treat a lost life as terminal in the DQN's targets (the game plays on; "
                                            "the Nature DQN's practice, for games with lives such as Breakout)")
    batch_size: int = _flag(32, "minibatch size")
    target_every: int = _flag(2000, "updates between copies of the online network into the target network")
    replay_ratio: float = _flag(8.0, "sampled transitions per inserted step (8: one batch of 32 every 4 steps)")
    capacity_hours: float = _flag(2.0, "replay capacity in hours of play (1 hour = 54,000 steps)")
    replay_shards: int = _flag(1, "replay shard actors; actor i streams to shard i mod K")
    min_replay: int = _flag(20_000, "steps stored before learning starts")
    prefetch: int = _flag(4, "sample requests the learner keeps in flight")
    epsilon_start: float = _flag(1.0, "exploration epsilon at frame 0")
    epsilon_end: float = _flag(0.01, "exploration epsilon after --epsilon-frames")
    epsilon_frames: int = _flag(1_000_000, "frames over which epsilon falls linearly")
    eval_every: int = _flag(250_000, "frames between teacher checkpoints, each scored by an evaluator")
    eval_episodes: int = _flag(8, "episodes per evaluation")
    eval_epsilon: float = _flag(0.05, "epsilon during evaluation (the DQN convention)")
    log_every: int = _flag(250, "updates between metrics lines and weight pushes to the actors")
    checkpoint_every: int = _flag(10_000, "updates between learner checkpoints (what --resume continues from)")
    device: str = _flag("auto", "learner device: auto, cpu, cuda, cuda:N")
    out: str = _flag("runs/teacher", "run directory to create")

    @property
    def capacity_steps(self) -> int:
        return int(round(self.capacity_hours * STEPS_PER_HOUR))

    def epsilon_at(self, frames: int) -> float:
        done = min(1.0, frames / self.epsilon_frames) if self.epsilon_frames else 1.0
        return self.epsilon_start + done * (self.epsilon_end - self.epsilon_start)

    def validate(self) -> "TeacherConfig":
        need(self.teacher in (None, "random"), "the DQN trains its own teacher: drop --teacher")
        super().validate()
        need(self.frames >= 4, f"--frames must be at least 4 (one agent step), got {self.frames}")
        self.preset = preset_flag("--preset", self.preset)
        need(self.lr > 0 and self.adam_eps > 0, f"--lr and --adam-eps must be positive, got {self.lr}, {self.adam_eps}")
        need(0.0 < self.gamma <= 1.0, f"--gamma must be in (0, 1], got {self.gamma}")
        need(1 <= self.n_step <= 100, f"--n-step must be in [1, 100], got {self.n_step}")
        need(1 <= self.batch_size <= 65_536, f"--batch-size must be in [1, 65536], got {self.batch_size}")
        need(self.target_every >= 1, f"--target-every must be at least 1, got {self.target_every}")
        need(0.0 < self.replay_ratio <= 1e6, f"--replay-ratio must be in (0, 1e6], got {self.replay_ratio}; "
                                             f"a DQN needs the limit to keep updates per frame fixed")
        need(1 <= self.replay_shards <= 1024 and self.replay_shards <= self.actors,
             f"--replay-shards must be in [1, --actors {self.actors}], got {self.replay_shards}")
        shard_steps = self.capacity_steps // self.replay_shards
        need(shard_steps >= 2 * self.chunk_size,
             f"--capacity-hours {self.capacity_hours} gives each shard {shard_steps} steps, fewer than two chunks "
             f"({2 * self.chunk_size}); raise --capacity-hours or lower --chunk-steps or --envs-per-actor")
        need(1 <= self.min_replay <= self.capacity_steps,
             f"--min-replay must be in [1, capacity {self.capacity_steps}], got {self.min_replay}")
        need(1 <= self.prefetch <= 64, f"--prefetch must be in [1, 64], got {self.prefetch}")
        for name in ("epsilon_start", "epsilon_end", "eval_epsilon"):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        need(self.epsilon_frames >= 0, f"--epsilon-frames must be at least 0, got {self.epsilon_frames}")
        need(self.eval_every >= 4, f"--eval-every must be at least 4 frames, got {self.eval_every}")
        stored = self.steps_within(self.frames)
        if stored < self.min_replay:
            low, enough = self.frames, FRAME_SKIP * (self.min_replay + self.actors * self.chunk_size)
            while enough - low > FRAME_SKIP:  # the fewest frames that store enough whole chunks
                middle = (low + enough) // 2 // FRAME_SKIP * FRAME_SKIP
                low, enough = (middle, enough) if self.steps_within(middle) < self.min_replay else (low, middle)
            raise ConfigError(f"--frames {self.frames:,} ends before the first DQN update: the whole chunks it "
                              f"allows hold {stored:,} steps, fewer than --min-replay {self.min_replay:,}; raise "
                              f"--frames to {enough:,} or lower --min-replay to {max(stored, 1):,}")
        need(self.eval_every < self.frames,
             f"--eval-every {self.eval_every:,} frames is not below --frames {self.frames:,}, so no checkpoint would be "
             f"scored; lower --eval-every below --frames")
        need(self.eval_episodes >= 1, f"--eval-episodes must be at least 1, got {self.eval_episodes}")
        need(self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self


@dataclass
class OnlineConfig(LossSettings, TeacherConfig):
    """A DQN in training, and a student distilled all along from its best checkpoint so far."""

    student: str = _flag("net1", f"student preset: {', '.join(PRESETS)}")
    loss: str = _flag("kl", f"distillation loss: {', '.join(LOSSES)}")
    student_lr: float = _flag(1e-3, "student RMSProp learning rate")
    student_batch_size: int = _flag(32, "student minibatch size")
    distill_actors: int = _flag(1, "teacher actors labelling with the best checkpoint so far")
    distill_replay_ratio: float = _flag(PAPER_REPLAY_RATIO, "student samples per labelled step (0: no limit)")
    distill_capacity_hours: float = _flag(1.0, "distillation replay capacity in hours of play")
    distill_min_replay: int = _flag(1000, "labelled steps stored before the student trains")
    holdout_steps: int = _flag(2000, "held-out frames labelled by the best teacher, for the final action agreement")
    out: str = _flag("runs/online", "run directory to create")

    @property
    def distill_capacity_steps(self) -> int:
        return int(round(self.distill_capacity_hours * STEPS_PER_HOUR))

    def validate(self) -> "OnlineConfig":
        super().validate()
        self.student = preset_flag("--student", self.student)
        loss_for(self, self.loss)
        need(self.student_lr > 0, f"--student-lr must be positive, got {self.student_lr}")
        need(1 <= self.student_batch_size <= 65_536, f"--student-batch-size must be in [1, 65536], got {self.student_batch_size}")
        need(self.distill_actors >= 1, f"--distill-actors must be at least 1, got {self.distill_actors}")
        need(0.0 <= self.distill_replay_ratio <= 1e6, f"--distill-replay-ratio must be in [0, 1e6], got {self.distill_replay_ratio}")
        need(self.distill_capacity_steps >= 2 * self.chunk_size,
             f"--distill-capacity-hours {self.distill_capacity_hours} holds fewer than two chunks; raise it")
        need(1 <= self.distill_min_replay <= self.distill_capacity_steps,
             f"--distill-min-replay must be in [1, capacity {self.distill_capacity_steps}], got {self.distill_min_replay}")
        need(self.holdout_steps >= 1, f"--holdout-steps must be at least 1, got {self.holdout_steps}")
        return self


@dataclass
class RecordConfig(ActingConfig):
    steps: int = _flag(10_000, "most labelled steps to record (whole chunks of --envs-per-actor x --chunk-steps)")
    out: str = _flag("datasets/record", "dataset directory to create")
    file_mb: int = _flag(256, "size at which a chunk file is closed and the next begun")

    def validate(self) -> "RecordConfig":
        super().validate()
        need(self.steps >= self.chunk_size,
             f"--steps {self.steps} is less than one chunk ({self.chunk_size} = --envs-per-actor {self.envs_per_actor} "
             f"x --chunk-steps {self.chunk_steps}); raise --steps or lower --chunk-steps")
        need(1 <= self.file_mb <= 65_536, f"--file-mb must be in [1, 65536], got {self.file_mb}")
        return self


def add_flags(parser: argparse.ArgumentParser, config_class, skip: tuple[str, ...] = ()) -> None:
    for spec in dataclasses.fields(config_class):
        if spec.name in skip:
            continue
        flag = "--" + spec.name.replace("_", "-")
        help_text = f"{spec.metadata['help']} (default: {spec.default})"
        # SUPPRESS: a flag left out is absent from the namespace, so `--resume` can tell what was asked for
        if spec.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(spec.type), str)
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_text, metavar=spec.name.upper())


def from_args(config_class, args: argparse.Namespace):
    """Fields without a flag keep their defaults."""
    return config_class(**{f.name: getattr(args, f.name, f.default) for f in dataclasses.fields(config_class)})


# what a run is; changing one would make its checkpoints another run's
FIXED_ON_RESUME = ("game", "games", "teacher", "teachers", "dataset", "student", "loss", "preset", "out", "seed",
                   "replay_shards", "learner_gpus")


def resume_changes(config_class, stored: dict, args: argparse.Namespace, override: str | None) -> dict:
    """The flags given with --resume that differ from the run's config, each listed in --override.

    Anything else is refused with a line naming the flag, both values and the fix."""
    names = {f.name for f in dataclasses.fields(config_class)}
    allowed = [k.strip().replace("-", "_") for k in (override or "").split(",") if k.strip()]
    unknown = [k for k in allowed if k not in names]
    need(not unknown, f"--override: unknown config key(s) {unknown}; use flag names without dashes "
                      f"(updates, log-every, ...)")
    changes = {k: getattr(args, k) for k in sorted(names) if hasattr(args, k) and getattr(args, k) != stored.get(k)}
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        need(key not in FIXED_ON_RESUME, f"--resume: {flag} {value} differs from the run's {stored.get(key)!r} and "
                                         f"cannot change on resume; start a new run with --out")
        need(key in allowed, f"--resume: {flag} {value} differs from the run's config ({stored.get(key)!r}); to "
                             f"change it add --override {key.replace('_', '-')}, or drop the flag")
    return changes
