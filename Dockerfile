# The image of k8s/*.yaml: Ray's GPU image of the Ray version memorylab is tested with, plus memorylab.
#   docker build -t memorylab:0.1.0 .
#   docker build -t memorylab:0.1.0 --build-arg EXTRAS= .      (without vLLM: a smaller image)
# Keep RAY_VERSION equal to spec.rayVersion in k8s/*.yaml (KubeRay enables features such as token auth by
# it) and to the Ray that memorylab is tested with (tests/cluster/test_k8s_manifests.py checks all three).
ARG RAY_VERSION=2.60.0
ARG PYTHON=py311
FROM rayproject/ray:${RAY_VERSION}-${PYTHON}-gpu

ARG RAY_VERSION
ARG EXTRAS="[vllm]"
# Scenario files live here (k8s/rayjob.yaml names /home/ray/memorylab/scenarios/...).
WORKDIR /home/ray/memorylab
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users memorylab ./memorylab
COPY --chown=ray:users scenarios ./scenarios
# Ray is pinned to the base image's own version, so no dependency (vLLM's included) can move it. The CUDA
# build of torch comes from PyPI, unlike constraints.txt's CPU build for laptops and CI.
RUN pip install --no-cache-dir "ray[default,serve,tune]==${RAY_VERSION}" ".${EXTRAS}" \
 && memorylab validate scenarios/
