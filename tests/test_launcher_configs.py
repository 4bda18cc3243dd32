"""The cluster-launcher examples are valid for the Ray we pin, and carry the token and pinning they promise."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

LAUNCHER = Path(__file__).resolve().parent.parent / "cluster" / "launcher"
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "onprem.yaml"])
def test_launcher_config_matches_rays_schema_and_sets_token_auth(name):
    config = yaml.safe_load((LAUNCHER / name).read_text())
    jsonschema.validate(config, SCHEMA)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[commands] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in head and "--dashboard-host 0.0.0.0" not in head
    assert "RAY_task_events_max_num_task_in_gcs=10000 " in head  # the GCS's memory stays bounded (bench/soak.py)


def test_the_cloud_config_has_gpu_learner_nodes_carrying_the_learner_resource():
    config = yaml.safe_load((LAUNCHER / "aws-gpu.yaml").read_text())
    learners = config["available_node_types"]["gpu_learners"]
    assert learners["resources"] == {"learner_node": 1} and learners["node_config"]["InstanceType"].startswith("g")
