"""COCO-stuff's categories and file layout, in one place.

COCO-stuff (Caesar et al., 2018) labels every pixel with one of 182 ids: things 1-90 (the COCO
instance categories; 80 of the 90 ids are used) and stuff 92-182. Its `stuffthingmaps` PNGs store
`id - 1` (0..181) per pixel and 255 for unlabeled; its stuff JSON adds id 183 "other", which covers
every thing pixel. This module holds those facts and the one mapping between COCO-stuff ids and the
contiguous class indices the models use (docs/design.md, "Conventions").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNLABELED = 255
"""Value of an unlabeled pixel in a stuffthingmaps PNG."""

OTHER_STUFF_ID = 183
"""The stuff JSON's "other" category: the union of all thing pixels of an image."""

SPLITS = ("train2017", "val2017")


@dataclass(frozen=True)
class Category:
    id: int  # COCO-stuff id; the label PNG stores id - 1
    name: str
    supercategory: str
    isthing: bool

    @property
    def label_value(self) -> int:
        """Pixel value of this category in a stuffthingmaps PNG."""
        return self.id - 1


_THINGS = """
1 person person|2 bicycle vehicle|3 car vehicle|4 motorcycle vehicle|5 airplane vehicle|6 bus vehicle
7 train vehicle|8 truck vehicle|9 boat vehicle|10 traffic_light outdoor|11 fire_hydrant outdoor
13 stop_sign outdoor|14 parking_meter outdoor|15 bench outdoor|16 bird animal|17 cat animal|18 dog animal
19 horse animal|20 sheep animal|21 cow animal|22 elephant animal|23 bear animal|24 zebra animal
25 giraffe animal|27 backpack accessory|28 umbrella accessory|31 handbag accessory|32 tie accessory
33 suitcase accessory|34 frisbee sports|35 skis sports|36 snowboard sports|37 sports_ball sports
38 kite sports|39 baseball_bat sports|40 baseball_glove sports|41 skateboard sports|42 surfboard sports
43 tennis_racket sports|44 bottle kitchen|46 wine_glass kitchen|47 cup kitchen|48 fork kitchen
49 knife kitchen|50 spoon kitchen|51 bowl kitchen|52 banana food|53 apple food|54 sandwich food
55 orange food|56 broccoli food|57 carrot food|58 hot_dog food|59 pizza food|60 donut food|61 cake food
62 chair furniture|63 couch furniture|64 potted_plant furniture|65 bed furniture|67 dining_table furniture
70 toilet furniture|72 tv electronic|73 laptop electronic|74 mouse electronic|75 remote electronic
76 keyboard electronic|77 cell_phone electronic|78 microwave appliance|79 oven appliance
80 toaster appliance|81 sink appliance|82 refrigerator appliance|84 book indoor|85 clock indoor
86 vase indoor|87 scissors indoor|88 teddy_bear indoor|89 hair_drier indoor|90 toothbrush indoor
"""

_STUFF = """
92 banner textile|93 blanket textile|94 branch plant|95 bridge building|96 building-other building
97 bush plant|98 cabinet furniture-stuff|99 cage structural|100 cardboard raw-material|101 carpet floor
102 ceiling-other ceiling|103 ceiling-tile ceiling|104 cloth textile|105 clothes textile|106 clouds sky
107 counter furniture-stuff|108 cupboard furniture-stuff|109 curtain textile|110 desk-stuff furniture-stuff
111 dirt ground|112 door-stuff furniture-stuff|113 fence structural|114 floor-marble floor
115 floor-other floor|116 floor-stone floor|117 floor-tile floor|118 floor-wood floor|119 flower plant
120 fog water|121 food-other food-stuff|122 fruit food-stuff|123 furniture-other furniture-stuff
124 grass plant|125 gravel ground|126 ground-other ground|127 hill solid|128 house building|129 leaves plant
130 light furniture-stuff|131 mat textile|132 metal raw-material|133 mirror-stuff furniture-stuff
134 moss plant|135 mountain solid|136 mud ground|137 napkin textile|138 net structural|139 paper raw-material
140 pavement ground|141 pillow textile|142 plant-other plant|143 plastic raw-material|144 platform ground
145 playingfield ground|146 railing structural|147 railroad ground|148 river water|149 road ground
150 rock solid|151 roof building|152 rug textile|153 salad food-stuff|154 sand ground|155 sea water
156 shelf furniture-stuff|157 sky-other sky|158 skyscraper building|159 snow ground|160 solid-other solid
161 stairs furniture-stuff|162 stone solid|163 straw plant|164 structural-other structural
165 table furniture-stuff|166 tent building|167 textile-other textile|168 towel textile|169 tree plant
170 vegetable food-stuff|171 wall-brick wall|172 wall-concrete wall|173 wall-other wall|174 wall-panel wall
175 wall-stone wall|176 wall-tile wall|177 wall-wood wall|178 water-other water|179 waterdrops water
180 window-blind window|181 window-other window|182 wood solid
"""


def _parse(table: str, *, isthing: bool) -> tuple[Category, ...]:
    # Thing names contain spaces ("traffic light"); the table writes them with "_".
    rows = (entry.split() for line in table.strip().splitlines() for entry in line.split("|"))
    return tuple(
        Category(int(cid), name.replace("_", " "), supercategory, isthing) for cid, name, supercategory in rows
    )


THINGS: tuple[Category, ...] = _parse(_THINGS, isthing=True)
"""The 80 COCO thing categories (ids 1-90), as in `instances_*2017.json`."""

STUFF: tuple[Category, ...] = _parse(_STUFF, isthing=False)
"""The 91 COCO-stuff stuff categories (ids 92-182), as in `stuff_*2017.json` (which adds 183 "other")."""

OTHER_STUFF = Category(OTHER_STUFF_ID, "other", "other", isthing=False)

CATEGORIES: tuple[Category, ...] = THINGS + STUFF
"""Every category a label map can hold, in id order: 171 classes."""

INDOOR_STUFF_SUPERCATEGORIES = frozenset(
    {"textile", "furniture-stuff", "window", "floor", "ceiling", "wall", "raw-material", "food-stuff"}
)
"""COCO-stuff's indoor stuff supercategories (the outdoor ones: water, ground, solid, sky, plant,
structural, building)."""

_BY_ID = {category.id: category for category in CATEGORIES}
_BY_NAME = {category.name: category for category in CATEGORIES}


def category(key: int | str) -> Category:
    """The category with this COCO-stuff id or name; KeyError names the unknown key."""
    table = _BY_ID if isinstance(key, int) else _BY_NAME
    if key not in table:
        raise KeyError(f"{key!r} is not a COCO-stuff category id or name")
    return table[key]


def category_id(name: str) -> int:
    return category(name).id


NUM_CLASSES = len(CATEGORIES)
"""Number of contiguous class indices (one-hot channels) the models use."""

_INDEX_OF_VALUE = {cat.label_value: index for index, cat in enumerate(CATEGORIES)}


def label_value_to_index() -> dict[int, int]:
    """Map stuffthingmaps pixel values (id - 1) to contiguous class indices 0..NUM_CLASSES-1.

    This is the one place the mapping is defined; unlabeled (255) has no index.
    """
    return dict(_INDEX_OF_VALUE)


def is_valid_label_value(value: int) -> bool:
    """Whether a stuffthingmaps pixel value can occur in COCO-stuff: 0..181 or 255."""
    return 0 <= value <= 181 or value == UNLABELED


# ---------------------------------------------------------------------------------------------
# File layout, exactly as COCO-stuff ships it.


@dataclass(frozen=True)
class CocoStuffLayout:
    """Paths of a COCO-stuff tree rooted at `root`."""

    root: Path

    def image_dir(self, split: str) -> Path:
        return self.root / "images" / split

    def label_dir(self, split: str) -> Path:
        return self.root / "stuffthingmaps" / split

    def stuff_json(self, split: str) -> Path:
        return self.root / "annotations" / f"stuff_{split}.json"

    def instances_json(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{split}.json"

    def label_path(self, split: str, image_file_name: str) -> Path:
        """The stuffthingmaps PNG of an image: same stem, `.png`."""
        return self.label_dir(split) / (Path(image_file_name).stem + ".png")

    def annotation_files(self) -> list[Path]:
        return [p for split in SPLITS for p in (self.stuff_json(split), self.instances_json(split))]

    def missing(self) -> list[Path]:
        """Every required directory or annotation file that does not exist."""
        required = [d for split in SPLITS for d in (self.image_dir(split), self.label_dir(split))]
        return [p for p in required + self.annotation_files() if not p.exists()]
