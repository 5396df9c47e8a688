"""The number format models run in: bf16 where the hardware computes it natively, else int8.

Measured with ``bench/precision.py``:
- on an AMD EPYC with AVX512-BF16, bf16 made the reader 1.82 times faster with SQuAD 2.0 F1
  unchanged (65.85 against 65.74 in fp32), where PyTorch's dynamic int8 lost 1.5 to 3.3 points;
- on an AMD EPYC without it (AVX2), bf16 is emulated, slower than fp32, and int8 through ONNX
  Runtime (``index.int8``) read 2.09 times faster than fp32 (median) for 0.16 F1 points, and
  embedded 2.07 times faster with dense recall@5 0.06 points lower (0.8780).

So ``auto`` is bf16 where the instructions exist and int8 on other CPUs. int8 against bf16 on
a CPU with both was not measured.
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
    """The precision ``setting`` means on ``device``: ``auto`` is bf16 where it is native,
    else int8 on a CPU and fp32 elsewhere."""
    match setting:
        case "auto" if native_bf16(device):
            return "bf16"
        case "auto":
            return "int8" if device == "cpu" else "fp32"
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
