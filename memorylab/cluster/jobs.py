"""memorylab as a Ray job on a running cluster: `ray job submit`, the Jobs SDK, or a KubeRay RayJob.

The entrypoint is the CLI itself, `memorylab run FILE`. Inside a job Ray sets RAY_ADDRESS to the cluster, so
connect() joins it: a job never starts a second, local Ray on the head node.

The project reaches the cluster in one of two ways:
- in the image (the Dockerfile): a RayJob or RayService needs no runtime_env at all;
- from a checkout, with `--working-dir .` and the `pip` entry below: Ray uploads the folder, then pip-installs
  it into a virtualenv for the job that also sees the node's own packages, so only what the node lacks is
  downloaded (nothing, on the memorylab image). The job's `memorylab` command comes from that virtualenv; the
  code comes from the uploaded folder, which Ray puts first on the PYTHONPATH of the driver and every worker.
"""

from __future__ import annotations

import json
from typing import Any

# Ray sets RAY_RUNTIME_ENV_CREATE_WORKING_DIR to the node's copy of the uploaded working_dir while it installs
# `pip`, and writes the list into a requirements file, where pip expands ${VAR}; so this line installs the
# uploaded project (pip runs in an empty folder of Ray's, so a bare "." would name nothing). Ray caches the
# virtualenv under a hash of this text, not of the folder: a later submission reuses the installed
# dependencies, while its code still comes fresh from its own working_dir.
INSTALL_WORKING_DIR = "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"
RUNTIME_ENV: dict[str, Any] = {"pip": [INSTALL_WORKING_DIR]}


def runtime_env(working_dir: str = ".") -> dict[str, Any]:
    """The runtime_env of a job that runs this checkout: `JobSubmissionClient.submit_job(runtime_env=...)`.

    No env_vars: connect() adds its own to every job (HF_HUB_OFFLINE ...), and Ray refuses to merge a job's
    runtime_env with the driver's when both name the same variable."""
    return {"working_dir": working_dir, "pip": list(RUNTIME_ENV["pip"])}


def runtime_env_json() -> str:
    """RUNTIME_ENV as `ray job submit --runtime-env-json` takes it (the README quotes it in single quotes, so
    the shell leaves ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR} for Ray)."""
    return json.dumps(RUNTIME_ENV)
