#!/usr/bin/python3
"""Train a torchvision detector on a COCO-layout dataset and export it to ONNX: the kind of
script a torchvision user already has, run unchanged by edgeloop's command trainer
(`dataset_format: coco`, docs/torchvision.md). It reads only what such a script reads: the
images and the COCO instances JSON (no pycocotools: it is not in Debian, and the JSON is plain).

  train_detector.py OUT.onnx

Environment (the command trainer sets these): DATASET_DIR (images/train/, annotations/
instances_train.json), SEED, TRAIN_PARAMS (JSON: iterations, batch, lr, arch; all optional).
Progress goes to stdout as JSON lines ({"message", "fraction", "metrics": {"loss"}}); a loss
that is not finite fails the run. Starts from random weights (weights=None: nothing downloaded);
a parent edgeloop package is not a torchvision checkpoint, so PARENT_MODEL is not read.
"""
import json
import math
import os
import sys

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

sys.dont_write_bytecode = True  # no __pycache__ left in the checkout the trainer runs from
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_detector import build, export  # noqa: E402


def progress(message, fraction=None, **metrics):
    line = {"message": message}
    if fraction is not None:
        line["fraction"] = fraction
    if metrics:
        line["metrics"] = metrics
    print(json.dumps(line), flush=True)


def coco_examples(root, split="train"):
    """(image tensor 0..1, target) per image with at least one box; category ids -> 1..N in id order."""
    with open(os.path.join(root, "annotations", f"instances_{split}.json")) as f:
        coco = json.load(f)
    cats = sorted(c["id"] for c in coco["categories"])
    label_of = {cid: i + 1 for i, cid in enumerate(cats)}
    boxes = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0):
            continue
        x, y, w, h = a["bbox"]
        if w <= 0 or h <= 0:
            continue
        boxes.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], label_of[a["category_id"]]))
    out = []
    for img in coco["images"]:
        found = boxes.get(img["id"])
        if not found:
            continue
        with Image.open(os.path.join(root, "images", split, img["file_name"])) as im:
            x = pil_to_tensor(im.convert("RGB")).float() / 255
        target = {"boxes": torch.tensor([b for b, _ in found], dtype=torch.float32), "labels": torch.tensor([c for _, c in found], dtype=torch.int64)}
        out.append((x, target))
    return out, len(cats)


def main(argv):
    if len(argv) != 1:
        raise SystemExit("usage: train_detector.py OUT.onnx")
    root = os.environ["DATASET_DIR"]
    params = json.loads(os.environ.get("TRAIN_PARAMS") or "{}")
    iterations = int(params.get("iterations", 2))
    batch = int(params.get("batch", 2))
    torch.set_num_threads(int(params.get("threads", 2)))
    torch.manual_seed(int(os.environ.get("SEED", "0")))
    examples, classes = coco_examples(root)
    if not examples:
        raise SystemExit(f"{root}: no training image has a box")
    progress(f"read {len(examples)} images with boxes, {classes} classes from {root}", 0.0)
    model = build(params.get("arch", "ssdlite"), classes, int(os.environ.get("SEED", "0")))
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=float(params.get("lr", 0.01)), momentum=0.9)
    for it in range(iterations):
        picked = [examples[(it * batch + k) % len(examples)] for k in range(batch)]
        losses = model([x for x, _ in picked], [t for _, t in picked])
        loss = sum(losses.values())
        if not math.isfinite(loss.item()):
            raise SystemExit(f"iteration {it + 1}: loss is {loss.item()}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress(f"iteration {it + 1}/{iterations}: loss {loss.item():.4f}", 0.1 + 0.7 * (it + 1) / iterations, loss=loss.item(), **{k: v.item() for k, v in losses.items()})
    model.eval()
    export(model, argv[0], ["boxes", "scores", "labels"])
    progress(f"exported {argv[0]}", 0.9)


if __name__ == "__main__":
    main(sys.argv[1:])
