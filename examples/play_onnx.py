"""Play one episode with an exported student, using onnxruntime, ale-py and numpy only (no atari-distill).

    python examples/play_onnx.py student.onnx [--game GAME] [--seed SEED] [--epsilon 0.05]

The file's metadata names its games, their actions and the exact ale-py environment settings it
was trained on; the environment below is built from them, so it emits the same uint8 (1, 4, 84, 84)
stacks the network saw in training.
"""

import argparse
import json

import numpy as np
import onnxruntime as ort
from ale_py.vector_env import AtariVectorEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--game", help="the head to play (default: the file's first game)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epsilon", type=float, default=0.05, help="random-action probability, as in evaluation")
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["atari_distill"])
    game = args.game or metadata["outputs"][0]
    meanings = metadata["action_meanings"][game]
    env = AtariVectorEnv(game, 1, **metadata["preprocessing"]["kwargs"][game])
    rng = np.random.default_rng(args.seed)

    obs, _ = env.reset(seed=args.seed)
    score, steps, done = 0.0, 0, False
    while not done:
        (q,) = session.run([metadata["output_names"][game]], {metadata["input"]["name"]: obs})
        action = int(q[0].argmax()) if rng.random() >= args.epsilon else int(rng.integers(len(meanings)))
        obs, reward, terminated, truncated, _ = env.step(np.array([action]))
        score += float(reward[0])
        steps += 1
        done = bool(terminated[0] or truncated[0])
    env.close()
    print(f"{game}: score {score:.0f} in {steps} steps ({metadata['preset']}, {metadata['precision']}, "
          f"last action {meanings[action]})")


if __name__ == "__main__":
    main()
