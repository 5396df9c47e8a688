"""The number format models run in: fp32, or bf16 where the hardware computes it natively.

Measured with ``bench/precision.py`` on these CPUs (AMD EPYC with AVX512-BF16): bf16 made the
reader 1.82 times faster with SQuAD 2.0 F1 unchanged (65.85 against 65.74 in fp32), where
dynamic int8 lost 1.5 to 3.3 points. A CPU without native bf16 would emulate it, slower than
fp32, so ``auto`` picks bf16 only where the instructions exist.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

Precision = Literal["fp32", "bf16"]
PrecisionSetting = Literal["auto", "fp32", "bf16"]

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
    """The precision ``setting`` means on ``device``: ``auto`` is bf16 where it is native."""
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return setting


def cast(module: Any, precision: Precision) -> Any:
    """``module`` in ``precision`` (a torch module; converted in place and returned)."""
    if precision == "bf16":
        import torch

        return module.to(torch.bfloat16)
    return module
