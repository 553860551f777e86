"""bfloat16 autocast on the CPU: detection, the amp setting, and the shared autocast code path.

``amp: bf16`` forces autocast, so these run the same code on every CPU (emulated where the CPU
lacks native bfloat16: slower, same numbers).
"""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import minimal_params
from visionlab.errors import ParamsError
from visionlab.params import TrainParams, parse_params
from visionlab.runtime.device import cpu_supports_bf16, use_amp, use_amp_on_cached_top
from visionlab.runtime.inference import gather_outputs
from visionlab.training.loop import fit

CPU = torch.device("cpu")


def test_cpu_bf16_is_detected_from_the_cpuinfo_flags(tmp_path):
    with_flag = tmp_path / "bf16"
    with_flag.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu sse2 avx2 avx512f\nbugs\t\t: avx512_bf16_fake\n")
    assert cpu_supports_bf16(with_flag) and cpu_supports_bf16(amx)
    assert not cpu_supports_bf16(without)
    assert not cpu_supports_bf16(tmp_path / "missing")


def test_amp_setting():
    assert use_amp(CPU, "off") is False
    assert use_amp(CPU, "bf16") is True
    assert use_amp(CPU, "auto") is cpu_supports_bf16()
    # The top blocks on cached activations train in float32 on a CPU unless bf16 is forced.
    assert use_amp_on_cached_top(CPU, "auto") is False
    assert use_amp_on_cached_top(CPU, "bf16") is True
    assert use_amp_on_cached_top(CPU, "off") is False
    with pytest.raises(ParamsError, match="train.amp"):
        parse_params(minimal_params(train={"amp": "fp16"}))


def _batches(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def test_training_under_cpu_autocast_runs_in_bfloat16_and_learns():
    net = _net()
    seen = []
    net[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    settings = TrainParams(epochs=4, lr=0.05, amp="bf16", early_stopping_patience=0)
    result = fit(net, _batches(128, 0), _batches(64, 1), settings, CPU)
    assert seen and set(seen) == {torch.bfloat16}  # the convolution really ran in bfloat16
    assert result.history[-1]["val_accuracy"] > 0.8
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights stay float32


def test_inference_under_cpu_autocast_matches_float32():
    net = _net().eval()
    batches = _batches(64, 2)
    exact, labels = gather_outputs(net, batches, CPU, amp=False)
    approx, same_labels = gather_outputs(net, batches, CPU, amp=True)
    assert approx.dtype == torch.float32 and torch.equal(labels, same_labels)
    assert not torch.equal(exact, approx)  # autocast was on
    assert torch.allclose(exact, approx, atol=0.05, rtol=0.05)  # bfloat16: 8 bits of mantissa
