#!/usr/bin/env bash
# Builds .gpu-carry/ (git ignores it): what the bare GPU machine lacks for bench/bench_gpu_graph.py, packed to fit
# the 64 MiB a device call may carry. Run here, from the repo root; `source bench/gpu_setup.sh` unpacks it there.
#   ray/ray.tar.xz   Ray 2.60 (../shared/gpu/prepare-ray-carry.sh)
#   deps.tar.xz      Serve's missing dependencies + decord, ultralytics, lap, thop, xgrammar: wheels unpacked and xz-packed
#                    together (29 MB as wheels, 21 MB so), installed by unpacking into /tmp/site
#   nvdec.tar.xz     PyNvVideoCodec 2.2.4 without its samples, bundled FFmpeg source and CUDA 12.1 module (26 -> 5.4 MB)
#   graph/social_30s_1080x1920.mp4   the benchmark clip (bench/clips.py, re-encoded at crf 32: 3.6 MB)
#   test-clips/      the clips of tests/gpu/test_nvdec.py (no ffmpeg there): REELSCOPE_GPU_CLIPS=$PWD/.gpu-carry/test-clips
set -euo pipefail
cd "$(dirname "$0")/.."
carry=.gpu-carry
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f $carry/ray/ray.tar.xz ] || [ ! -f $carry/deps.tar.xz ]; then
  # Serve's missing dependencies arrive as wheels with Ray and are packed into deps.tar.xz below: made apart,
  # deps.tar.xz would lack them (seen: a rebuild of deps alone packed no Serve dependency)
  rm -rf $carry/ray $carry/deps.tar.xz
  ../shared/gpu/prepare-ray-carry.sh $carry/ray
fi
if [ ! -f $carry/deps.tar.xz ]; then
  python3 -m pip download -q --no-deps "${plat[@]}" -d $carry/ray/whl decord==0.6.0 ultralytics==8.4.190 lap==0.5.13 ultralytics-thop==2.2.3 \
    xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2
  mkdir -p "$tmp/site"
  for w in $carry/ray/whl/*.whl; do unzip -q -o "$w" -d "$tmp/site"; done
  # apache-tvm-ffi's headers and sources are for building extensions, not for xgrammar at run time (its grammar
  # tests pass without them here): 4.7 MB less, which keeps the carry under 64 MiB
  rm -rf "$tmp"/site/tvm_ffi/{3rdparty,include,src,cython}
  tar -C "$tmp/site" -cf - . | xz -T0 -9 > $carry/deps.tar.xz
  rm -rf $carry/ray/whl
fi
if [ ! -f $carry/nvdec.tar.xz ]; then
  python3 -m pip download -q --no-deps "${plat[@]}" --platform manylinux_2_34_x86_64 -d "$tmp" pynvvideocodec==2.2.4
  mkdir -p "$tmp/nv" && unzip -q "$tmp"/pynvvideocodec-*.whl -d "$tmp/nv"
  tar -C "$tmp/nv" -cJf $carry/nvdec.tar.xz --exclude='*_121*' PyNvVideoCodec pynvvideocodec.
fi
clip=$carry/graph/social_30s_1080x1920.mp4
if [ ! -f $clip ]; then
  .venv/bin/python -c "from pathlib import Path; from bench.clips import social_clip; social_clip(Path('$tmp/clip.mp4'), 30, 1080, 1920)"
  mkdir -p $carry/graph
  ffmpeg -v error -y -i "$tmp/clip.mp4" -c:v libx264 -preset veryfast -crf 32 -g 60 -c:a copy $clip
fi
[ -d $carry/test-clips ] || .venv/bin/python -m tests.gpu.test_nvdec $carry/test-clips
du -sh $carry
