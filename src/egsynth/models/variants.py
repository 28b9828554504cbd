"""The generator variants compared in Sec. 4, in one registry: code asks a variant's properties, never its name.

A variant is known by its name everywhere outside the code (the params' `variants`, the stages
`train@NAME`, the `variant` a saved `generator.pt` records), so the name is the registry's key;
everything the code decides by variant is a property of its `VariantSpec`:

- `full`: MSCA (Eq. 4-8) at every scale, trained by Eq. 11-12;
- `gap` (Table 1's "ours GAP"): global average pooling of F_x2 instead of MSCA;
- `no_att` ("ours MSCA w/o att"): the one-hot label maps of exemplar and target as α and β;
- `no_fm` ("ours MSCA w/o fm"): MSCA without feature masking, the gate of Eq. 6 fixed to 1;
- `no_global` ("ours MSCA w/o global"): the `full` network trained without the global
  self-reconstruction of Eq. 12 and without enlarged patches;
- `spade_vae` ("SPADE-VAE", Sec. 4 "Comparative Methods"): SPADE's VAE mode, no alignment: a style
  encoder maps x2 to z, trained by self-reconstruction with SPADE's KL term;
- `full_attention` (not in the paper): dense cross-attention correspondence, CoCosNet-style, instead
  of MSCA, for the cost/quality trade-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class Alignment(Enum):
    """How F_x1^(i) is formed from the exemplar at each scale (step 2 of Fig. 2)."""

    MSCA = "msca"  # masked spatial-channel attention, Eq. 4-8
    POOLING = "pooling"  # global average pooling of F_x2
    LABELS = "labels"  # the one-hot label maps as spatial and channel attention
    DENSE = "dense"  # dense cross-attention correspondence
    NONE = "none"  # no exemplar features: a VAE style code instead


@dataclass(frozen=True)
class VariantSpec:
    name: str  # the key: params, stage names and saved generators name the variant by it
    alignment: Alignment
    feature_masking: bool = True  # the gate of Eq. 6-7 is learned; False: fixed to 1 (MSCA and LABELS have a gate)
    global_task: bool = True  # phase 2 adds global self-reconstruction (Eq. 12) and enlarged patches (Sec. 3.4)

    @property
    def msca(self) -> bool:
        """Alignment by MSCA: attention maps to show and measure (the finest α, gate, β), and style
        interpolation by mixing attention (Sec. 4, "Interpolation")."""
        return self.alignment is Alignment.MSCA

    @property
    def aligns(self) -> bool:
        """Aligned features F_x1^(i) per target location, which spatial interpolation (Fig. 7) mixes."""
        return self.alignment is not Alignment.NONE

    @property
    def vae(self) -> bool:
        """SPADE's VAE mode: a style encoder of x2 instead of alignment, the KL term, and training by
        self-reconstruction only (every exemplar is its own target)."""
        return self.alignment is Alignment.NONE


VARIANTS: Mapping[str, VariantSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            VariantSpec("full", Alignment.MSCA),
            VariantSpec("gap", Alignment.POOLING),
            VariantSpec("no_att", Alignment.LABELS),
            VariantSpec("no_fm", Alignment.MSCA, feature_masking=False),
            VariantSpec("no_global", Alignment.MSCA, global_task=False),
            VariantSpec("spade_vae", Alignment.NONE),
            VariantSpec("full_attention", Alignment.DENSE),
        )
    }
)
"""Every variant by name, in order: the full model, the paper's ablations in the order of its
"Ablation Study" (Sec. 4), its SPADE-VAE baseline, then ours beyond the paper."""


def variant_spec(name: str) -> VariantSpec:
    """The registry's entry for `name`; a ValueError naming the known variants for any other name."""
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):  # TypeError: not even a string (a damaged saved file)
        raise ValueError(f"unknown generator variant {name!r}; expected one of {', '.join(VARIANTS)}") from None
