import pytest
import torch

from egsynth.devices import default_device


@pytest.mark.parametrize("local_rank", [None, 0, 3])
def test_the_cpu_is_chosen_without_cuda(monkeypatch, local_rank):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device(local_rank) == torch.device("cpu")


def test_cuda_is_chosen_when_present_a_torchrun_process_taking_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    assert default_device(0) == torch.device("cuda", 0)
    assert default_device(3) == torch.device("cuda", 3)
