"""--distribution=mirrored: per-replica loss scaling in the custom step. Two replicas (logical CPUs)
must apply the mean of the replicas' gradients, each replica weighting its own tasks (GB/LB)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("weighting", ["lb", "gb"])
def test_mirrored_step_applies_the_mean_of_replica_gradients(weighting):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scripts", "mirrored_step.py"), weighting],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["replicas"] == "2"
    # a loss summed (not averaged) over replicas would double the step: relative difference ~1
    assert float(lines["max_rel_diff"]) < 1e-4, result.stdout
