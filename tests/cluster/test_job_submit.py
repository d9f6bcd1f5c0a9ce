"""The README's `ray job submit --working-dir . -- memorylab run ...`, through the Jobs SDK, against a real
`ray start --head` on loopback (its own ports and temp dir, token auth on): the job installs this checkout
with the documented runtime_env, joins that cluster, runs a shortened quickstart and writes its report."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from memorylab.cluster.jobs import runtime_env
from tests.cluster.ray_head import ray_head

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
# A world and a model small enough that the job is mostly Ray start-up: it checks the path, not the figures.
SHORT = ["world.num_people=8", "world.forget=2", "world.holdout=2", "world.canaries=1", "world.canary_candidates=9",
         "world.canary_repeats=2", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64",
         "model.tiny.num_heads=2", "model.tiny.num_layers=1", "model.tiny.vocab_size=512",
         "model.tiny.max_position_embeddings=512", "train.steps=3", "train.batch_size=4", "train.warmup_steps=1",
         "train.checkpoint_every=3", "eval.verbmem_max_new_tokens=4", "eval.knowmem_max_new_tokens=4",
         "resources.trainer.num_cpus=0.5", "resources.model.num_cpus=0.5"]
JOB_TIMEOUT_S = 300


def test_a_submitted_job_runs_a_scenario_on_the_cluster(tmp_path, monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    monkeypatch.chdir(ROOT)  # --working-dir . of the README
    out = tmp_path / "run"
    entrypoint = shlex.join(["memorylab", "run", "scenarios/quickstart.yaml", "--out", str(out),
                             *(arg for s in SHORT for arg in ("--set", s))])
    with ray_head(num_cpus=2) as head:
        client = JobSubmissionClient(head.dashboard_url, headers=head.headers)
        job = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env("."))
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not (status := client.get_job_status(job)).is_terminal() and time.monotonic() < deadline:
            time.sleep(2)
        logs = client.get_job_logs(job)
        info = client.get_job_info(job)
        if not status.is_terminal():
            client.stop_job(job)
        installed = list(head.temp_dir.glob("session_*/runtime_resources/pip/*/virtualenv/bin/memorylab"))
    assert status == JobStatus.SUCCEEDED, f"{status}: {info.message}\n{logs[-4000:]}"

    # The driver joined the head it was submitted to (a local Ray of its own would not register there), and
    # the runtime_env's pip entry installed the uploaded project, command included, into the job's virtualenv.
    assert info.driver_info is not None, logs[-4000:]
    assert installed, "the runtime_env installed no `memorylab` command"
    assert logs.strip().endswith(str(out / "report.json")), logs[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "memorization" and set(report["models"]) == {"target", "retrain"}
    assert report["config"]["train"]["steps"] == 3 and report["scenario_file"] == "scenarios/quickstart.yaml"
    assert (out / "report.md").exists() and (out / "models" / "target" / "final" / "config.json").exists()
