"""The exemplar label parser (paper Sec. 4: exemplars are parsed into label maps c~ by a COCO-stuff
segmentation network): its data, training, inference, evaluation (mIoU) and sharded parsing."""

from egsynth.parsing.data import SceneDataset, read_image, read_label_map
from egsynth.parsing.metrics import class_iou, confusion_matrix, evaluate_parser, miou_from_confusion, pixel_accuracy
from egsynth.parsing.parser import (
    ARCHITECTURES,
    Parser,
    ParserError,
    build_parser,
    load_checkpoint,
    load_parser,
    make_parser,
    predict_labels,
    save_parser,
    train_parser,
)
from egsynth.parsing.shards import INDEX_COLUMNS, INDEX_NAME, parse_shard, parsed_name, plan_shards

__all__ = [
    "ARCHITECTURES",
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "Parser",
    "ParserError",
    "SceneDataset",
    "build_parser",
    "class_iou",
    "confusion_matrix",
    "evaluate_parser",
    "load_checkpoint",
    "load_parser",
    "make_parser",
    "miou_from_confusion",
    "parse_shard",
    "parsed_name",
    "pixel_accuracy",
    "plan_shards",
    "predict_labels",
    "read_image",
    "read_label_map",
    "save_parser",
    "train_parser",
]
