# Source this on the GPU machine (from the repo root) before bench/bench_gpu_graph.py: unpacks what it lacks from
# the carried folder .gpu-carry/ (built here by bench/make_gpu_carry.sh; git ignores it) into /tmp/site, once per
# machine, and puts it on PYTHONPATH. Also keeps NVLink multicast off, as the multi-GPU machines ask.
#   source bench/gpu_setup.sh
if [ ! -f /tmp/site/.reelscope-ready ]; then
  mkdir -p /tmp/site
  for packed in .gpu-carry/ray/ray.tar.xz .gpu-carry/*.tar.xz; do tar -C /tmp/site -xJf "$packed"; done
  touch /tmp/site/.reelscope-ready
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} RAY_USAGE_STATS_ENABLED=0
export NCCL_NVLS_ENABLE=0 TORCH_NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1
