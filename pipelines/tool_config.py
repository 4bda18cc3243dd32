"""The settings of the commands that use a model rather than train one (evaluate, export, watch),
written once as config sections: the CLI's flags and the Python API's keywords are both generated
from them, and a default shared with the run kinds (episodes, epsilon, workers) is the run kinds'.
"""

from __future__ import annotations

from dataclasses import dataclass

from atari_distill.pipelines.config_tree import TreeConfig, like, setting
from atari_distill.pipelines.sections import ActingSettings, EvalSettings, RunSettings

MODEL_HELP = ("a run directory (its newest student), a checkpoint .pt, zoo:GAME, a CleanRL or SB3 teacher file "
              "(with --game), or an exported .onnx")
SERIES_HELP = "with a run directory: the checkpoint series to use (a sweep's student-net3-kl); defaults to its only student"


@dataclass
class EvaluateConfig(TreeConfig):
    KIND = "evaluate"
    HELP = "play a model and report its score"

    checkpoint: str = setting("", MODEL_HELP + ", or 'random' for the random teacher", required=True)
    game: str | None = setting(None, "game to play (picks the head of a multi-task student); defaults to the model's "
                                     "game when it has one head")
    series: str | None = setting(None, SERIES_HELP)
    episodes: int = like(EvalSettings, "episodes", "episodes to play")
    epsilon: float = like(EvalSettings, "epsilon", "random-action probability")
    noop_max: int = like(ActingSettings, "noop_max")
    sticky_actions: bool = like(ActingSettings, "sticky_actions")
    env_mode: str = like(ActingSettings, "env_mode", "native, sb3, cleanrl, or auto: the teacher's")
    workers: int = like(EvalSettings, "workers", "evaluators sharing the episodes; 1 plays in this process "
                                                 "without Ray")
    runner: str = like(RunSettings, "runner", "ray: the evaluators are Ray tasks; local: threads of this process, "
                                              "no Ray")
    address: str | None = like(RunSettings, "address")
    seed: int = setting(0, "the run seed whose report episodes to play, as every run's final scores and the zoo "
                           "cards do")


@dataclass
class ExportConfig(TreeConfig):
    KIND = "export"
    HELP = "write a student or teacher as ONNX or torch.export, parity-checked"

    checkpoint: str = setting("", MODEL_HELP.replace(", or an exported .onnx", ""), required=True)
    out: str = setting("", "NAME.onnx (onnxruntime; with --int8, quantised) or NAME.pt2 (torch.export); default: "
                           "RUN/exports/NAME.onnx, in the run the model came from")
    game: str | None = setting(None, "export only this game's head; every head by default (an imported CleanRL or "
                                     "SB3 teacher needs it)")
    series: str | None = setting(None, SERIES_HELP)
    int8: bool = setting(False, "static int8 quantisation (onnxruntime, calibrated on held-out frames); output "
                                "layers stay float32")
    parity_frames: int = setting(1024, "held-out frames per game the export is checked on")
    min_agreement: float | None = setting(None, "greedy agreement with the source below which nothing is written "
                                                "(default: 0.99; with --int8, 0.9 against the float model)")
    seed: int = setting(0, "the run seed whose held-out episodes the check plays")
    force: bool = setting(False, "replace --out if it exists")


@dataclass
class WatchConfig(TreeConfig):
    KIND = "watch"
    HELP = "a video of a student and its teacher playing the same episode start"

    student: str = setting("", MODEL_HELP, required=True)
    teacher: str | None = setting(None, "the model beside it (same forms); defaults to the teacher of a --student "
                                        "run directory")
    game: str | None = setting(None, "the head to play; defaults to the student's one game")
    out: str | None = setting(None, "NAME.mp4 or NAME.gif, with a still NAME.png beside it; defaults to "
                                    "RUN_DIR/watch.mp4 (and watch.png, which the report shows)")
    series: str | None = setting(None, SERIES_HELP)
    seed: int | None = setting(None, "the run seed whose first report episode both play (default: a --student "
                                     "run's seed, else 0)")
    max_steps: int = setting(2000, "cut the episodes here (about 2 minutes of video; at most 27,000, a whole "
                                   "episode)")


TOOLS = {tool.KIND: tool for tool in (EvaluateConfig, ExportConfig, WatchConfig)}
