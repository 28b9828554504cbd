"""The variant registry: the params schema names exactly its variants, and each property of a variant is what
a generator built for it does."""

from typing import get_args

import pytest
import torch

from egsynth.config import Params, VariantName
from egsynth.evaluation.report import PAPER_TABLE_1
from egsynth.models.msca import MSCA, DenseAttention, GlobalPooling, LabelAttention
from egsynth.models.variants import VARIANTS, Alignment, variant_spec
from tests.test_generator import TINY, TINY_CLASSES, build_generator, inputs

ALIGNMENT_MODULES = {
    Alignment.MSCA: MSCA,
    Alignment.POOLING: GlobalPooling,
    Alignment.LABELS: LabelAttention,
    Alignment.DENSE: DenseAttention,
}


@pytest.fixture(scope="module")
def built():
    """name -> (a tiny generator of the variant in eval mode, its output on one fixed input)."""
    c1, x2, c2 = inputs(TINY_CLASSES, 32)
    generators = {name: build_generator(name, TINY, num_classes=TINY_CLASSES).eval() for name in VARIANTS}
    with torch.no_grad():
        return {name: (generator, generator(c1, x2, c2)) for name, generator in generators.items()}


def names(where) -> set[str]:
    return {name for name, spec in VARIANTS.items() if where(spec)}


def test_the_params_schema_accepts_exactly_the_registry_names_in_its_order():
    assert get_args(VariantName) == tuple(VARIANTS)
    assert all(spec.name == name for name, spec in VARIANTS.items())
    assert Params(variants=list(VARIANTS)).variants == tuple(VARIANTS)


def test_the_papers_table_names_registry_variants_in_registry_order():
    assert list(PAPER_TABLE_1) == [name for name in VARIANTS if name in PAPER_TABLE_1]


@pytest.mark.parametrize("name", ["fancy", ["full"]])
def test_a_name_outside_the_registry_is_refused_with_the_known_ones(name):
    with pytest.raises(ValueError, match=r"unknown generator variant .*expected one of full, gap, "):
        variant_spec(name)


def test_a_generator_aligns_at_every_scale_with_the_module_of_its_alignment(built):
    for name, (generator, output) in built.items():
        alignment = VARIANTS[name].alignment
        if alignment is Alignment.NONE:
            assert not hasattr(generator, "aligners") and output.attention == [], name
            continue
        assert len(generator.aligners) == len(output.attention) == TINY.num_scales + 1, name
        assert all(type(aligner) is ALIGNMENT_MODULES[alignment] for aligner in generator.aligners), name


def test_exactly_the_msca_variants_record_spatial_attention_gate_and_channel_attention_of_msca(built):
    recording = {
        name
        for name, (generator, output) in built.items()
        if output.attention
        and all(isinstance(aligner, MSCA) for aligner in generator.aligners)
        and all(None not in (r.alpha, r.gate, r.beta) for r in output.attention)
    }
    assert recording == names(lambda spec: spec.msca) == {"full", "no_fm", "no_global"}
    for name in recording:
        for record in built[name][1].attention:  # α of Eq. 4: a distribution over exemplar positions per map
            torch.testing.assert_close(record.alpha.sum(dim=(-2, -1)), torch.ones(record.alpha.shape[:2]))


def test_exactly_the_variants_without_feature_masking_have_every_gate_at_one(built):
    gated = {name: output.attention for name, (_, output) in built.items() if output.attention}
    gated = {name: records for name, records in gated.items() if all(r.gate is not None for r in records)}
    assert set(gated) == names(lambda spec: spec.alignment in (Alignment.MSCA, Alignment.LABELS))
    ungated = {name for name, records in gated.items() if all(bool((r.gate == 1).all()) for r in records)}
    assert ungated == names(lambda spec: not spec.feature_masking) == {"no_fm"}


def test_the_vae_variant_alone_has_a_style_encoder_and_no_image_features(built):
    encoding = {name for name, (generator, output) in built.items() if hasattr(generator, "style_encoder")}
    assert encoding == names(lambda spec: spec.vae) == names(lambda spec: not spec.aligns) == {"spade_vae"}
    for name, (generator, output) in built.items():
        assert hasattr(generator, "image_encoder") != (name in encoding), name
        assert (output.mu is not None) == (name in encoding), name


def test_a_generator_asks_its_spec_by_the_name_it_saves():
    generator = build_generator("no_global", TINY, num_classes=TINY_CLASSES)
    assert generator.variant == "no_global" and generator.spec is VARIANTS["no_global"]
