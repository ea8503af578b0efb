"""What this machine's CPU offers the model's kernels, for the tests whose expectations depend on it.

oneDNN lays bf16 weights out for its kernels (model/packed.py) only on a CPU with AVX-512 (BW, VL
and DQ) or AVX-NE-CONVERT; elsewhere (an AVX2-only CPU, such as an AMD Zen 1 or 2) it refuses
("bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq") and the
model's layers stay plain. Every CPU with native bf16 has them, so where the engine runs bf16 at all
it packs; the tests force bf16 on any CPU (its numbers, not its speed) and check the packed path
where the CPU has it and the plain fallback where it has not.
"""

from __future__ import annotations

from emotion_app.model.devices import cpu_flags

FLAGS = cpu_flags()
if FLAGS:
    ONEDNN_PACKS_BF16 = "avx_ne_convert" in FLAGS or {"avx512bw", "avx512vl", "avx512dq"} <= FLAGS
else:  # no /proc/cpuinfo (macOS, Windows): torch's own probe, whose AVX512 level includes BW, VL and DQ
    import torch

    ONEDNN_PACKS_BF16 = torch.backends.cpu.get_cpu_capability() == "AVX512"
