# Source this on the GPU machine (from the repo root) before bench/bench_gpu_graph.py: installs what it lacks
# from the carried folder .gpu-carry/ (see ../shared/gpu/README.md; git ignores the folder) into /tmp/site,
# once per machine, and puts it on PYTHONPATH. Also keeps NVLink multicast off, as the multi-GPU machines ask.
#   source bench/gpu_setup.sh
if [ ! -f /tmp/site/.reelscope-ready ]; then
  mkdir -p /tmp/site
  tar -C /tmp/site -xJf .gpu-carry/ray/ray.tar.xz
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu-carry/ray/whl/*.whl .gpu-carry/graph/whl/*.whl
  touch /tmp/site/.reelscope-ready
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} RAY_USAGE_STATS_ENABLED=0
export NCCL_NVLS_ENABLE=0 TORCH_NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1
