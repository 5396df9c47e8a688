"""The number format models run in: int8 on a CPU, bf16 on a GPU that computes it natively.

Measured with ``bench/precision.py`` on the SQuAD 2.0 dev split (never trained on), against
fp32 in the same run (the issue's bars: recall@5 at most 0.5 points lower, reader F1 at most 1):
- on a 2-core AMD EPYC with AVX-512 VNNI and AVX512-BF16 (``precision-avx512vnni.json``):
  int8 through ONNX Runtime (``index.int8``) read five paragraphs in 79.2 ms against 174.0 in
  bf16 and 260.7 in fp32, and embedded 16,693 tokens/s against 7,779 and 4,194; HasAns F1
  65.16 against 65.88 and 65.74, recall@5 0.8763 against 0.8792 and 0.8786;
- on one with AVX2 only (``precision-avx2.json``), where bf16 is emulated and slower than
  fp32: int8 read 2.09 times and embedded 2.07 times faster than fp32, F1 0.16 points lower.

So ``auto`` is int8 on every CPU. On the AVX-512 machine the default eval set scored 0.787 in
int8 against 0.795 in bf16 (one item of 122) at a 102.6 ms median against 184.5, and bf16's
oneDNN kernel cache grew a 100k-chunk server to 1,958 MB (see ``PAD_MULTIPLE``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

Precision = Literal["fp32", "bf16", "int8"]
PrecisionSetting = Literal["auto", "fp32", "bf16", "int8"]

# The CPU flags (Linux /proc/cpuinfo) of the instructions that compute bf16 matrix products.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

# bf16 matrix products run on oneDNN, which compiles a kernel for every new input shape and
# keeps up to 1,024 of them: memray found 200 of the 266 MB that 60 questions left allocated on
# the 100k-chunk index to be these kernels. The reader's and support model's batches are
# padded to a multiple of PAD_MULTIPLE tokens so that fewer shapes occur (one process asked 150
# distinct questions there: 1,564 MB with padding to 8 against 1,686 MB without). Bounding the
# cache itself (ONEDNN_PRIMITIVE_CACHE_CAPACITY=256) helped that sequential run (1,505 MB) but
# not a server under 32 clients, whose peak rose from 1,656 / 1,649 to 1,883 / 1,857 MB in two
# runs of bench/serve.py, so oneDNN keeps its default.
PAD_MULTIPLE = 32


@functools.cache
def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: stay with fp32 rather than guess
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    return False


def resolve(setting: PrecisionSetting, device: str = "cpu") -> Precision:
    """The precision ``setting`` means on ``device``: ``auto`` is int8 on a CPU, bf16 on a
    GPU that computes it natively, else fp32."""
    match setting:
        case "auto" if device == "cpu":
            return "int8"
        case "auto":
            return "bf16" if native_bf16(device) else "fp32"
        case "int8" if device != "cpu":
            raise ValueError(
                f"int8 models run on the CPU (ONNX Runtime), not on {device}: set "
                "GROUNDQA_MODEL_PRECISION to auto, fp32 or bf16, or GROUNDQA_EMBEDDING_DEVICE=cpu"
            )
        case _:
            return setting


def cast(module: Any, precision: Precision) -> Any:
    """``module`` in ``precision`` (a torch module; converted in place and returned). int8 is
    not a cast: ``index.int8`` exports and quantizes the fp32 module."""
    match precision:
        case "bf16":
            import torch

            return module.to(torch.bfloat16)
        case "int8":
            raise ValueError("int8 models are built by index.int8.OnnxModule, not cast")
        case _:
            return module
