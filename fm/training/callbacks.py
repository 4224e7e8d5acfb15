"""Throughput, MFU and gradient-norm logging from the first step.

FLOPs per token (one token = one patch of one channel), forward pass, for d = d_model, L = patch_len,
Q = quantiles, P = patches per window, C = channels, h = SwiGLU hidden width, n = layers:

    embed            2 * (2L) * d                       (patch values + observed mask -> d)
    per block        8 d^2 + 4 P d                      time attention: qkv + out proj, scores + mix over P
                   + 8 d^2 + 4 C d                      channel attention (when enabled), over C channels
                   + 6 d h                              SwiGLU: gate/up (d -> 2h) and down (h -> d)
    head             2 * d * L * Q

Training FLOPs = 3 x forward (backward ~ 2 x forward). Activation recomputation is *not* counted (this is
"model FLOPs", so MFU stays comparable across checkpointing choices). MFU = achieved FLOP/s divided by
the peak of all devices; the peak comes from ``peak_tflops`` or, on CUDA, a table of dense bf16 peaks.
"""

from __future__ import annotations

import time

import lightning as L
import torch

# Dense bf16 peak TFLOP/s per device (vendor figures, no sparsity).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def flops_per_token(arch, patches: int, channels: int) -> float:
    d, L, q, h = arch.d_model, arch.patch_len, len(arch.quantiles), arch.mlp_hidden
    block = 8 * d * d + 4 * patches * d + 6 * d * h
    if arch.channel_attention:
        block += 8 * d * d + 4 * channels * d
    return 2 * (2 * L) * d + arch.n_layers * block + 2 * d * L * q


def detect_peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


class ThroughputMonitor(L.Callback):
    def __init__(self, peak_tflops: float | None = None):
        """
        Args:
            peak_tflops: Peak TFLOP/s of one device for MFU; None = detect on known GPUs, no MFU on CPU.
        """
        self.peak_tflops = peak_tflops
        self._t0 = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.peak_tflops is None:
            self.peak_tflops = detect_peak_tflops()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:  # the global norm before clipping (DTensor shards under FSDP2 reduce across ranks)
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dt = max(time.perf_counter() - self._t0, 1e-9)
        engine = getattr(trainer.strategy, "deepspeed_engine", None)
        if engine is not None:  # ZeRO keeps gradients in its own partitioned buffers; its step computed the norm
            norm = engine.get_global_grad_norm()
            if norm is not None:
                pl_module.log("train/grad_norm", float(norm), on_step=True, on_epoch=False)
        b, c, t = batch["values"].shape
        patches = t // pl_module.arch.patch_len
        real_channels = int(batch["channel_mask"].sum())
        world = trainer.world_size
        tokens = real_channels * patches * world
        samples = b * world
        metrics = {"perf/tokens_per_s": tokens / dt, "perf/samples_per_s": samples / dt, "perf/step_s": dt}
        if self.peak_tflops:
            flops = 3 * flops_per_token(pl_module.arch, patches, c) * tokens
            metrics["perf/mfu"] = flops / dt / (self.peak_tflops * 1e12 * world)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=b)
