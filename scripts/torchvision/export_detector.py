#!/usr/bin/python3
"""Build a torchvision detector with random weights (nothing pretrained, nothing downloaded) and
export it to ONNX the way torchvision's own ONNX tests do: one image input [3, H, W] with dynamic
H and W, outputs boxes [K, 4] (xyxy, input pixels), scores [K] and labels [K] (int64, 0 is the
background class) with a dynamic K.

  export_detector.py OUT.onnx --arch ssdlite|fasterrcnn --classes N
      [--output-names boxes,scores,labels] [--seed S] [--empty OUT2.onnx]
      [--dynamic-channels OUT3.onnx]
      [--check IN.f32 --check-dims 3,H,W --check-out OUT.json]

--classes counts the real classes; the model gets N + 1 (torchvision's class 0 is background).
--dynamic-channels also exports it with the channel axis dynamic too (dynamic_axes [0, 1, 2],
as torchvision's own ONNX tests export). --empty also exports the same model with its score threshold at 1, so it never finds anything
(K = 0). --check runs the exported model's PyTorch original on a raw float32 tensor and writes its
outputs as JSON, so a test can compare ONNX Runtime's answer with PyTorch's own.
Needs the system python with Debian's python3-torch and python3-torchvision.
"""
import argparse
import json
import sys
import warnings

import torch
import torchvision
from torchvision.models import detection


def build(arch, classes, seed=0):
    """The detector, background class included (num_classes = classes + 1), random weights."""
    torch.manual_seed(seed)
    if arch == "ssdlite":
        return detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=classes + 1)
    if arch == "fasterrcnn":
        return detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=classes + 1)
    raise SystemExit(f"unknown --arch {arch} (ssdlite or fasterrcnn)")


def calibrate(model, frames=2):
    """BatchNorm statistics from a few random frames, and a louder class head. With torchvision's
    initial weights an untrained detector gives every box the same score and class; with these
    the random network's answers differ from box to box, so a comparison of them means something.
    Training (train_detector.py) starts from the same point."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        for _ in range(frames):
            model.backbone(torch.rand(2, 3, 320, 320))
        # The class head's initial weights are small enough that every class scores about
        # 1 / (classes + 1) everywhere; scaled up, scores spread (0.25..0.46 for SSDlite, 0.22..0.28
        # for Faster R-CNN with 3 classes) without saturating.
        head, gain = (model.head.classification_head, 10.0) if hasattr(model, "head") else (model.roi_heads.box_predictor.cls_score, 100.0)
        for name, p in head.named_parameters():
            if name.endswith("weight"):
                p.mul_(gain)
    model.eval()


def never_finds(model):
    """The same model with its score threshold at 1: no box passes (an empty K = 0 answer)."""
    if hasattr(model, "score_thresh"):
        model.score_thresh = 1.0
    else:
        model.roi_heads.score_thresh = 1.0


def export(model, out, output_names, size=(320, 320), image_axes=(1, 2)):
    """torch.onnx.export as torchvision's tests call it: a list of one image, opset 11, dynamic H, W (and C when asked) and K."""
    model.eval()
    x = [torch.rand(3, *size)]
    with warnings.catch_warnings():
        # Tracing warnings about Python values in the graph; the exported graph is checked by running it.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            out,
            opset_version=11,
            input_names=["images"],
            output_names=output_names,
            dynamic_axes={"images": list(image_axes), **{name: [0] for name in output_names}},
        )


def check(model, path, dims, out):
    """PyTorch's answer on a raw float32 tensor, for comparison with the ONNX export's."""
    model.eval()
    n = 1
    for d in dims:
        n *= d
    data = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.float32)
    if data.numel() != n:
        raise SystemExit(f"{path} has {data.numel()} values, --check-dims {dims} needs {n}")
    with torch.no_grad():
        res = model([data.reshape(dims)])[0]
    with open(out, "w") as f:
        json.dump({k: v.tolist() for k, v in res.items()}, f)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--arch", default="ssdlite")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--output-names", default="boxes,scores,labels")
    p.add_argument("--empty")
    p.add_argument("--dynamic-channels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check")
    p.add_argument("--check-dims")
    p.add_argument("--check-out")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    model = build(a.arch, a.classes, a.seed)
    calibrate(model)
    names = a.output_names.split(",")
    export(model, a.out, names)
    if a.check:
        check(model, a.check, [int(d) for d in a.check_dims.split(",")], a.check_out)
    if a.dynamic_channels:
        export(model, a.dynamic_channels, names, image_axes=(0, 1, 2))
    if a.empty:
        never_finds(model)
        export(model, a.empty, names)
    print(json.dumps({"exported": a.out, "arch": a.arch, "torch": torch.__version__, "torchvision": torchvision.__version__}))


if __name__ == "__main__":
    main(sys.argv[1:])
