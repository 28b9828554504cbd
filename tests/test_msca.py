"""MSCA (Eq. 4-8), its interpolation (Sec. 4) and the alignment alternatives (gap, no_att, full_attention)."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from egsynth.models.msca import MSCA, DenseAttention, GlobalPooling, LabelAttention, aggregate

N, M, K = 8, 6, 4


def features(batch: int, channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def scene(height: int, width: int, seed: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_x, F_c) of one exemplar."""
    return features(batch, N, height, width, seed), features(batch, M, height, width, seed + 1000)


def msca(k: int = K, seed: int = 0) -> MSCA:
    torch.manual_seed(seed)
    return MSCA(N, M, k)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self.numel = max(self.numel, leaf.numel())
        return out


# ---------------------------------------------------------------------------------------------
# MSCA


def test_msca_with_one_constant_map_is_global_average_pooling():
    module = msca(k=1)
    with torch.no_grad():
        module.spatial.weight.zero_()
        module.spatial.bias.zero_()
    f_x2, f_c2 = scene(7, 9, seed=1)
    f_c1 = features(2, M, 5, 6, seed=2)
    f_x1, record = module(f_x2, f_c2, f_c1, masking=False)
    expected = reduce(f_x2, "b n h w -> b n 1 1", "mean").expand(-1, -1, 5, 6)
    assert torch.allclose(f_x1, expected, atol=1e-6)
    assert torch.equal(record.beta, torch.ones(2, 1, 5, 6))


def test_msca_output_is_invariant_to_permuting_exemplar_pixels():
    module = msca()
    f_x2, f_c2 = scene(6, 10, seed=3)
    f_c1 = features(2, M, 8, 8, seed=4)
    permutation = torch.randperm(60, generator=torch.Generator().manual_seed(5))

    def shuffle(x):
        flat = rearrange(x, "b c h w -> b c (h w)")[..., permutation]
        return rearrange(flat, "b c (h w) -> b c h w", h=6)

    f_x1, _ = module(f_x2, f_c2, f_c1)
    f_x1_shuffled, _ = module(shuffle(f_x2), shuffle(f_c2), f_c1)
    assert torch.allclose(f_x1, f_x1_shuffled, atol=1e-6)


def test_attention_maps_are_distributions_and_gates_lie_strictly_in_zero_one():
    f_x2, f_c2 = scene(9, 7, seed=6)
    _, record = msca()(f_x2, f_c2, features(2, M, 5, 11, seed=7))
    assert torch.allclose(reduce(record.alpha, "b k h w -> b k", "sum"), torch.ones(2, K), atol=1e-6)  # Eq. 4
    assert torch.allclose(reduce(record.beta, "b k h w -> b h w", "sum"), torch.ones(2, 5, 11), atol=1e-6)  # Eq. 7
    assert record.gate.shape == (2, K) and bool(((record.gate > 0) & (record.gate < 1)).all())  # Eq. 6
    assert bool((record.alpha >= 0).all() and (record.beta >= 0).all())


def test_one_hot_channel_attention_copies_one_column_of_v(monkeypatch):
    module = msca()
    f_x2, f_c2 = scene(6, 6, seed=8)
    f_c1 = features(2, M, 4, 5, seed=9)
    choice = torch.randint(0, K, (2, 4, 5), generator=torch.Generator().manual_seed(10))  # k per target pixel
    beta = rearrange(F.one_hot(choice, K).float(), "b h w k -> b k h w")
    monkeypatch.setattr(module, "channel_attention", lambda f_c1, c1=None: beta)
    f_x1, record = module(f_x2, f_c2, f_c1, masking=False)
    v = aggregate(f_x2, record.alpha)  # [B, N, K]
    for b in range(2):
        for y in range(4):
            for x in range(5):
                assert torch.equal(f_x1[b, :, y, x], v[b, :, choice[b, y, x]])


def test_no_masking_equals_a_gate_of_exactly_one():
    module = msca()
    f_x2, f_c2 = scene(6, 8, seed=11)
    f_c1 = features(2, M, 7, 5, seed=12)
    f_x1, record = module(f_x2, f_c2, f_c1, masking=False)
    assert torch.equal(record.gate, torch.ones(2, K))
    expected = module.distribute(module.aggregate(f_x2, record.alpha), torch.ones(2, K), record.beta)
    assert torch.equal(f_x1, expected)
    masked, _ = module(f_x2, f_c2, f_c1, masking=True)
    assert not torch.allclose(masked, f_x1)


def test_gradients_reach_phi_psi_and_the_gate_mlp():
    module = msca()
    f_x2, f_c2 = scene(6, 6, seed=13)
    f_x1, _ = module(f_x2, f_c2, features(2, M, 6, 6, seed=14))
    (f_x1 * torch.randn_like(f_x1)).sum().backward()
    gate_linears = [layer for layer in module.gate if isinstance(layer, torch.nn.Linear)]
    for parameter in [module.spatial.weight, module.channel.weight] + [layer.weight for layer in gate_linears]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_msca_never_forms_an_exemplar_by_target_tensor_and_sizes_may_differ():
    target, exemplar = (48, 40), (40, 56)
    hw1, hw2 = target[0] * target[1], exemplar[0] * exemplar[1]
    bound = max(hw1, hw2) * max(N + M, K) * 1 * 4  # B = 1; [F_x2, F_c2] has N + M channels

    def run(module):
        f_x2, f_c2 = (f.requires_grad_() for f in scene(*exemplar, seed=15, batch=1))
        f_c1 = features(1, M, *target, seed=16).requires_grad_()
        with LargestTensor() as recorder:
            f_x1, _ = module(f_x2, f_c2, f_c1)
            f_x1.square().sum().backward()
        assert f_x1.shape == (1, N, *target)
        assert f_c1.grad is not None and f_x2.grad is not None
        return recorder.numel

    assert run(msca()) < bound < hw1 * hw2
    assert run(DenseAttention(N, M, max_side=None)) >= hw1 * hw2, "the recorder sees the dense correspondence"


def one_hot_labels(indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    return rearrange(F.one_hot(indices, num_classes).float(), "b h w c -> b c h w")


def test_label_inputs_share_one_class_preference_draw_between_phi_and_psi():
    torch.manual_seed(0)
    module = MSCA(N, M, K, num_classes=5, label_init=3.0)
    spatial_classes, channel_classes = module.spatial.weight[:, -5:, 0, 0], module.channel.weight[:, -5:, 0, 0]
    assert torch.equal(spatial_classes, channel_classes)
    assert 1.5 < float(spatial_classes.std()) < 4.5, "drawn at the asked scale, not the default conv init"
    torch.manual_seed(0)
    plain = MSCA(N, M, K, num_classes=5)
    assert not torch.equal(plain.spatial.weight[:, -5:, 0, 0], plain.channel.weight[:, -5:, 0, 0])
    with pytest.raises(AssertionError, match="label_init needs"):
        MSCA(N, M, K, label_init=1.0)


def test_one_hot_preferences_give_each_listed_class_a_map_that_attends_it_or_the_whole_exemplar():
    """Map k prefers the k-th listed class alone (weight 8, φ and ψ tied): where the exemplar shows that class
    the map attends its pixels, where it does not the map prefers no class (as the features alone), and a target
    pixel of a listed class reads its own map."""
    torch.manual_seed(0)
    num_classes = 5
    module = MSCA(N, M, K, num_classes=num_classes, label_init=8.0, preferred_classes=[3, 1, 4])
    spatial_classes, channel_classes = module.spatial.weight[:, -5:, 0, 0], module.channel.weight[:, -5:, 0, 0]
    expected = torch.zeros(K, num_classes)
    expected[0, 3] = expected[1, 1] = expected[2, 4] = 8.0
    assert torch.equal(spatial_classes, expected) and torch.equal(channel_classes, expected)

    f_x2, f_c2 = scene(6, 6, seed=41)
    exemplar_labels = torch.zeros(2, 6, 6, dtype=torch.long)
    exemplar_labels[:, :3] = 3  # classes 3 and 0 shown, 1 and 4 missing
    target_labels = torch.tensor([3, 1]).reshape(1, 1, 2).expand(2, 4, -1)  # columns of class 3 and 1
    c2, c1 = one_hot_labels(exemplar_labels, num_classes), one_hot_labels(target_labels, num_classes)
    _, record = module(f_x2, f_c2, features(2, M, 4, 2, seed=42), c2=c2, c1=c1)
    on_class_3 = (record.alpha[:, 0] * c2[:, 3]).sum(dim=(-2, -1))
    assert bool((on_class_3 > 0.99).all()), "map 0 attends the exemplar's class-3 pixels"
    on_class_3_missing = (record.alpha[:, 1] * c2[:, 3]).sum(dim=(-2, -1))
    assert bool(((on_class_3_missing - 0.5).abs() < 0.15).all()), "class 1 is missing: its map prefers no class"
    assert bool((record.beta[:, 0, :, 0] > 0.99).all() and (record.beta[:, 1, :, 1] > 0.99).all())
    with pytest.raises(AssertionError, match="a map per preferred class"):
        MSCA(N, M, K, num_classes=num_classes, label_init=8.0, preferred_classes=[0, 1, 2, 3, 4])


def test_msca_with_class_weights_on_the_diagonal_is_label_attention():
    """K = C, φ and ψ reading only the one-hots with w_kc = s·[k = c]: as s grows, map k attends exactly the
    exemplar's class-k pixels and a class-k target pixel reads map k, which is the `no_att` ablation (for
    classes present in the exemplar)."""
    num_classes = 4
    module = MSCA(N, M, num_classes, num_classes=num_classes)
    with torch.no_grad():
        for conv in (module.spatial, module.channel):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, -num_classes:, 0, 0] = 40.0 * torch.eye(num_classes)
    f_x2, f_c2 = scene(6, 6, seed=33)
    f_c1 = features(2, M, 4, 7, seed=34)
    exemplar_labels = torch.arange(36).reshape(1, 6, 6).expand(2, -1, -1) % num_classes  # every class present
    target_labels = torch.randint(0, num_classes, (2, 4, 7), generator=torch.Generator().manual_seed(35))
    c2, c1 = one_hot_labels(exemplar_labels, num_classes), one_hot_labels(target_labels, num_classes)
    f_x1, record = module(f_x2, f_c2, f_c1, masking=False, c2=c2, c1=c1)
    expected, _ = LabelAttention(N, M, num_classes)(f_x2, f_c2, f_c1, c2, c1, masking=False)
    assert torch.allclose(f_x1, expected, atol=1e-4)
    assert torch.allclose(record.beta, c1, atol=1e-6)
    with pytest.raises(AssertionError, match="one-hot labels"):
        module(f_x2, f_c2, f_c1)


def test_msca_with_labels_is_invariant_to_permuting_exemplar_pixels_with_their_labels():
    torch.manual_seed(0)
    num_classes = 3
    module = MSCA(N, M, K, num_classes=num_classes, label_init=2.0)
    f_x2, f_c2 = scene(6, 10, seed=36)
    c2 = one_hot_labels(torch.randint(0, num_classes, (2, 6, 10), generator=torch.Generator().manual_seed(37)), 3)
    f_c1 = features(2, M, 8, 8, seed=38)
    c1 = one_hot_labels(torch.randint(0, num_classes, (2, 8, 8), generator=torch.Generator().manual_seed(39)), 3)
    permutation = torch.randperm(60, generator=torch.Generator().manual_seed(40))

    def shuffle(x):
        return rearrange(rearrange(x, "b c h w -> b c (h w)")[..., permutation], "b c (h w) -> b c h w", h=6)

    f_x1, _ = module(f_x2, f_c2, f_c1, c2=c2, c1=c1)
    shuffled, _ = module(shuffle(f_x2), shuffle(f_c2), f_c1, c2=shuffle(c2), c1=c1)
    assert torch.allclose(f_x1, shuffled, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# interpolation (Sec. 4)


def test_interpolation_endpoints_equal_each_exemplar_alone_and_the_midpoint_differs():
    module = msca()
    f_x2, f_c2 = scene(6, 8, seed=17)
    f_x3, f_c3 = scene(9, 5, seed=18)  # a different size
    f_c1 = features(2, M, 7, 7, seed=19)
    alone_2, _ = module(f_x2, f_c2, f_c1)
    alone_3, _ = module(f_x3, f_c3, f_c1)
    at_1, _ = module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 1.0)
    at_0, _ = module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 0.0)
    halfway, _ = module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 0.5)
    assert torch.allclose(at_1, alone_2, atol=1e-6) and torch.allclose(at_0, alone_3, atol=1e-6)
    assert not torch.allclose(halfway, alone_2, atol=1e-3) and not torch.allclose(halfway, alone_3, atol=1e-3)
    assert torch.isfinite(halfway).all()


def test_interpolation_gives_scene_two_exactly_the_share_t_without_nan_gradients():
    """With gates at 1, V = t V2 + (1 - t) V3, so F_x1 mixes the two exemplars' outputs linearly."""
    module = msca()
    f_x2, f_c2 = (f.requires_grad_() for f in scene(6, 8, seed=20))
    f_x3, f_c3 = scene(4, 4, seed=21)
    f_c1 = features(2, M, 5, 5, seed=22)
    alone_2, _ = module(f_x2, f_c2, f_c1, masking=False)
    alone_3, _ = module(f_x3, f_c3, f_c1, masking=False)
    mixed, _ = module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 0.3, masking=False)
    assert torch.allclose(mixed, 0.3 * alone_2 + 0.7 * alone_3, atol=1e-5)
    at_0, _ = module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 0.0)
    at_0.sum().backward()
    assert torch.isfinite(f_x2.grad).all() and torch.isfinite(module.spatial.weight.grad).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        module.interpolate(f_x2, f_c2, f_x3, f_c3, f_c1, 1.5)


# ---------------------------------------------------------------------------------------------
# the alternatives


def test_global_pooling_gives_the_exemplar_mean_everywhere():
    f_x2, f_c2 = scene(7, 5, seed=23)
    f_x1, record = GlobalPooling()(f_x2, f_c2, features(2, M, 4, 9, seed=24))
    assert torch.allclose(f_x1, f_x2.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 4, 9), atol=1e-6)
    assert record.alpha is None and record.gate is None and record.beta is None


def test_label_attention_gives_each_target_pixel_the_mean_exemplar_feature_of_its_class():
    num_classes = 5
    f_x2, f_c2 = scene(6, 6, seed=25)
    f_c1 = features(2, M, 4, 7, seed=26)
    exemplar_labels = torch.randint(0, 3, (2, 6, 6), generator=torch.Generator().manual_seed(27))  # classes 0-2
    target_labels = torch.randint(0, 5, (2, 4, 7), generator=torch.Generator().manual_seed(28))  # classes 0-4
    c2 = rearrange(F.one_hot(exemplar_labels, num_classes).float(), "b h w c -> b c h w")
    c1 = rearrange(F.one_hot(target_labels, num_classes).float(), "b h w c -> b c h w")
    module = LabelAttention(N, M, num_classes)
    f_x1, record = module(f_x2, f_c2, f_c1, c2, c1, masking=False)
    assert torch.isfinite(f_x1).all() and torch.isfinite(record.alpha).all()
    for b in range(2):
        for y in range(4):
            for x in range(7):
                k = int(target_labels[b, y, x])
                mask = exemplar_labels[b] == k
                expected = f_x2[b][:, mask].mean(dim=1) if mask.any() else torch.zeros(N)
                assert torch.allclose(f_x1[b, :, y, x], expected, atol=1e-5), (b, y, x, k)
    _, record = module(f_x2, f_c2, f_c1, c2, c1)
    assert record.gate.shape == (2, num_classes) and bool(((record.gate > 0) & (record.gate < 1)).all())


def test_dense_attention_outputs_convex_combinations_of_exemplar_features():
    torch.manual_seed(0)
    module = DenseAttention(N, M, max_side=None)
    f_x2, f_c2 = scene(6, 7, seed=29)
    f_x1, record = module(f_x2, f_c2, features(2, M, 5, 4, seed=30))
    assert f_x1.shape == (2, N, 5, 4) and record.alpha is None
    low = reduce(f_x2, "b n h w -> b n 1 1", "min")
    high = reduce(f_x2, "b n h w -> b n 1 1", "max")
    assert bool(((f_x1 >= low - 1e-5) & (f_x1 <= high + 1e-5)).all())


def test_dense_attention_pools_large_maps_and_still_returns_the_target_size():
    torch.manual_seed(0)
    f_x2, f_c2 = scene(20, 12, seed=31)
    f_c1 = features(2, M, 17, 9, seed=32)
    small = DenseAttention(N, M, max_side=6)
    f_x1, _ = small(f_x2, f_c2, f_c1)
    assert f_x1.shape == (2, N, 17, 9)
    assert small._pool(f_x2).shape[-2:] == (5, 3) and max(small._pool(f_c1).shape[-2:]) <= 6
    roomy = DenseAttention(N, M, max_side=32)
    roomy.load_state_dict(small.state_dict())
    dense = DenseAttention(N, M, max_side=None)
    dense.load_state_dict(small.state_dict())
    assert torch.equal(roomy(f_x2, f_c2, f_c1)[0], dense(f_x2, f_c2, f_c1)[0]), "no pooling below max_side"
