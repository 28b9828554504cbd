import pytest

from egsynth.data import cocostuff

# Spot checks against COCO-stuff's published category list (cocostuff labels.txt / stuff_val2017.json).
KNOWN = {
    1: ("person", "person"),
    9: ("boat", "vehicle"),
    20: ("sheep", "animal"),
    21: ("cow", "animal"),
    64: ("potted plant", "furniture"),
    90: ("toothbrush", "indoor"),
    92: ("banner", "textile"),
    106: ("clouds", "sky"),
    120: ("fog", "water"),
    124: ("grass", "plant"),
    127: ("hill", "solid"),
    135: ("mountain", "solid"),
    145: ("playingfield", "ground"),
    148: ("river", "water"),
    155: ("sea", "water"),
    157: ("sky-other", "sky"),
    165: ("table", "furniture-stuff"),
    169: ("tree", "plant"),
    171: ("wall-brick", "wall"),
    181: ("window-other", "window"),
    182: ("wood", "solid"),
}
UNUSED_THING_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def test_category_ids_names_and_supercategories_are_cocostuffs():
    for category_id, (name, supercategory) in KNOWN.items():
        category = cocostuff.category(category_id)
        assert (category.name, category.supercategory) == (name, supercategory)
        assert cocostuff.category_id(name) == category_id


def test_things_use_80_of_the_ids_1_to_90_and_stuff_is_92_to_182():
    assert {c.id for c in cocostuff.THINGS} == set(range(1, 91)) - UNUSED_THING_IDS
    assert [c.id for c in cocostuff.STUFF] == list(range(92, 183))
    assert all(c.isthing for c in cocostuff.THINGS) and not any(c.isthing for c in cocostuff.STUFF)
    assert len({c.name for c in cocostuff.CATEGORIES}) == cocostuff.NUM_CLASSES == 171


def test_indoor_supercategories_cover_walls_floors_ceilings_but_no_outdoor_stuff():
    indoor = {c.name for c in cocostuff.STUFF if c.supercategory in cocostuff.INDOOR_STUFF_SUPERCATEGORIES}
    assert {"wall-brick", "floor-wood", "ceiling-other", "window-other", "table", "carpet", "curtain"} <= indoor
    assert not indoor & {"sky-other", "clouds", "grass", "sea", "river", "mountain", "road", "snow", "tree", "house"}


def test_label_values_map_to_contiguous_indices_and_unlabeled_has_none():
    mapping = cocostuff.label_value_to_index()
    assert sorted(mapping.values()) == list(range(cocostuff.NUM_CLASSES))
    assert mapping[0] == 0 and mapping[181] == cocostuff.NUM_CLASSES - 1  # person, wood
    assert cocostuff.UNLABELED not in mapping
    assert cocostuff.is_valid_label_value(181) and cocostuff.is_valid_label_value(255)
    assert not cocostuff.is_valid_label_value(182) and not cocostuff.is_valid_label_value(254)


def test_unknown_category_names_the_key():
    with pytest.raises(KeyError, match="'skyy' is not a COCO-stuff category"):
        cocostuff.category("skyy")
