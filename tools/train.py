#!/usr/bin/env python3
"""Quantization-aware training (PyTorch + Brevitas) of rtlgen's int8 CIFAR-10 ResNets, and QONNX export.

Models are defined in ``tools/resnets.py`` (int8 power-of-two scales everywhere, BN-free, residual adds on conv2's
unquantized accumulator). Training starts from the BN-folded float seeds in ``../shared/models`` where the topology
matches (``--no-seed`` trains from scratch), calibrates the activation scales, then fine-tunes with SGD + cosine
learning rate, standard augmentation (4-pixel pad + random 32x32 crop, horizontal flip), seeded and resumable:
a checkpoint is written to ``--ckpt-dir`` after every epoch and picked up again on restart.

Examples::

    python tools/train.py --arch resnet20 --epochs 6 --lr 0.004 --threads 1 --export rtlgen/models/resnet20.onnx
    python tools/train.py --arch resnet8 --epochs 40 --lr 0.03 --threads 1 --export rtlgen/models/resnet8.onnx
    python tools/train.py --arch tiny --smoke --export /tmp/tiny.onnx          # a few batches, seconds

``--export-only`` re-exports the last checkpoint (``--from-best`` for the best one) without training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet8", choices=["resnet8", "resnet20", "resnet20a", "tiny"])
    p.add_argument("--epochs", type=int, default=30, help="quantization-aware training epochs")
    p.add_argument("--float-epochs", type=int, default=0,
                   help="float (unquantized, ~3x cheaper) epochs before QAT; one cosine schedule spans both stages")
    p.add_argument("--lr", type=float, default=0.02, help="peak SGD learning rate (cosine decay to 0)")
    p.add_argument("--warmup", type=float, default=0.0, help="linear warm-up, in epochs")
    p.add_argument("--wd", type=float, default=5e-4, help="weight decay (conv/linear weights only)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--clip-grad", type=float, default=2.0, help="clip the gradient norm (0: off)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--ckpt-dir", default="/work/ckpt", help="checkpoints and run log (outside the repo)")
    p.add_argument("--run-name", default=None, help="checkpoint file prefix (default: the arch)")
    p.add_argument("--dataset", default=None, help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10 or ../shared)")
    p.add_argument("--export", default=None, help="write the QONNX model here after training")
    p.add_argument("--export-qcdq", default=None, help="also write a QCDQ (QuantizeLinear/DequantizeLinear) ONNX")
    p.add_argument("--export-only", action="store_true", help="no training: export the checkpoint")
    p.add_argument("--from-best", action="store_true", help="with --export-only: export the best checkpoint")
    p.add_argument("--no-seed", action="store_true", help="do not load the float seed weights")
    p.add_argument("--init-from", default=None,
                   help="start from this checkpoint's weights (a *_last.pt/*_best.pt of an earlier run; quantized "
                        "checkpoints keep their scales) instead of the float seed, with a fresh schedule")
    p.add_argument("--calib-batches", type=int, default=20, help="batches for activation-scale calibration")
    p.add_argument("--kd-teacher", choices=["none", "resnet20"], default="none",
                   help="knowledge distillation from the float ResNet20 seed (91.73 %%); its logits are computed once "
                        "per training image and its mirror image (un-cropped) and cached in --ckpt-dir")
    p.add_argument("--kd-online", action="store_true",
                   help="run the distillation teacher on every augmented batch (crop and flip match) instead of "
                        "caching its logits of the un-cropped images (about +70 %% float-epoch time)")
    p.add_argument("--float-bn", action="store_true",
                   help="float stage with a BatchNorm after every convolution, folded into the convolutions before "
                        "calibration and QAT (the quantized model stays BN-free)")
    p.add_argument("--kd-alpha", type=float, default=0.5, help="weight of the distillation loss")
    p.add_argument("--kd-t", type=float, default=4.0, help="distillation temperature")
    p.add_argument("--smoke", action="store_true", help="a few batches only (tests)")
    p.add_argument("--max-train", type=int, default=None, help="use only the first N training images (debugging)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p.parse_args(argv)


def to_input(x_uint8_nhwc: np.ndarray):
    """uint8 NHWC pixels -> the model's float NCHW input (pixel - 128) / 128."""
    import torch

    from resnets import INPUT_SCALE, MEAN, STD

    x = x_uint8_nhwc.transpose(0, 3, 1, 2).astype(np.float32) * INPUT_SCALE
    x = (x - np.array(MEAN, np.float32)[None, :, None, None]) / np.array(STD, np.float32)[None, :, None, None]
    return torch.from_numpy(np.ascontiguousarray(x))


def augment_epoch(x_pad: np.ndarray, n: int, rng: np.random.Generator, batch: int):
    """Yield (indices, batch uint8 NHWC) with random 32x32 crops of the 40x40 padded images and random flips."""
    perm = rng.permutation(n)
    dy = rng.integers(0, 9, n)
    dx = rng.integers(0, 9, n)
    flip = rng.random(n) < 0.5
    for i in range(0, n - batch + 1, batch):  # drop last partial batch
        idx = perm[i : i + batch]
        out = np.empty((len(idx), 32, 32, 3), np.uint8)
        for j, k in enumerate(idx):
            img = x_pad[k, dy[k] : dy[k] + 32, dx[k] : dx[k] + 32]
            out[j] = img[:, ::-1] if flip[k] else img
        yield idx, out, flip[idx]


def evaluate(model, x, y, batch=500, fwd=None):
    import torch

    model.eval()
    fwd = fwd or model
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((fwd(to_input(x[i : i + batch])).argmax(1).numpy() == y[i : i + batch]).sum())
    return 100.0 * correct / len(x)


def calibrate(model, x, n_batches, batch=250):
    import torch
    from brevitas.graph.calibrate import calibration_mode

    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for i in range(n_batches):
            model(to_input(x[i * batch : (i + 1) * batch]))


def export_brevitas(model, out, kind: str = "qonnx", metadata: dict | None = None):
    """Brevitas export of a CIFAR-shaped model (``kind``: ``qonnx`` or ``qcdq``) to ``out`` (input ``input``, output
    ``logits``), initializers not listed as graph inputs; ``metadata`` (if given) replaces the model's metadata."""
    import onnx
    import torch
    from brevitas.export import export_onnx_qcdq, export_qonnx

    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (export_qonnx if kind == "qonnx" else export_onnx_qcdq)(
            model, torch.zeros(1, 3, 32, 32), export_path=str(out), dynamo=False, input_names=["input"],
            output_names=["logits"])
    m = onnx.load(str(out))
    inits = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    if metadata is not None:
        del m.metadata_props[:]
        for k, v in metadata.items():
            m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(out))


def export(model, path, qcdq_path=None, info=None):
    """QONNX export with rtlgen preprocessing metadata (and optionally QCDQ)."""
    from resnets import INPUT_SCALE, MEAN, STD

    meta = {
        "rtlgen.input_scale": repr(INPUT_SCALE),
        "rtlgen.mean": ",".join(repr(v) for v in MEAN),
        "rtlgen.std": ",".join(repr(v) for v in STD),
    }
    for k, v in (info or {}).items():
        meta[f"rtlgen.train.{k}"] = str(v)
    for out, kind in [(path, "qonnx")] + ([(qcdq_path, "qcdq")] if qcdq_path else []):
        export_brevitas(model, out, kind, meta)
        print(f"exported {kind} -> {out}", flush=True)


def teacher_logits(xtr, ytr, cache):
    """Float ResNet20 logits [2, N, 10] for every training image (index 0) and its mirror image (index 1)."""
    import torch

    import resnets

    if cache is not None and Path(cache).exists():
        t = np.load(cache)
        if t.shape == (2, len(xtr), 10):
            return torch.from_numpy(t)
    teacher = resnets.resnet20_teacher().eval()
    out = np.empty((2, len(xtr), 10), np.float32)
    with torch.no_grad():
        for i in range(0, len(xtr), 500):
            x = to_input(xtr[i : i + 500])
            out[0, i : i + 500] = teacher(x).numpy()
            out[1, i : i + 500] = teacher(torch.flip(x, dims=[3])).numpy()
    if cache is not None:
        np.save(cache, out)
    print(f"teacher logits cached: teacher top-1 on the un-augmented training images {100 * np.mean(out[0].argmax(1) == ytr):.2f} %",
          flush=True)
    return torch.from_numpy(out)


def fold_checkpoint_bn(model, ck) -> None:
    """A float-stage checkpoint of a ``--float-bn`` run holds its BatchNorms unfolded: fold them into ``model``."""
    import resnets

    if ck.get("bn") is not None and not ck.get("folded", True):
        bns = resnets.make_bns(model)
        bns.load_state_dict(ck["bn"])
        resnets.fold_bns(model, bns)


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if (p.ndim > 1 and name.endswith("weight")) else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    import torch
    import torch.nn.functional as F

    import resnets
    from rtlgen import data as rdata

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ds = args.dataset or os.environ.get(rdata.ENV_VAR) or rdata.default_shared_dir()
    run = args.run_name or args.arch
    ckdir = Path(args.ckpt_dir)
    ckdir.mkdir(parents=True, exist_ok=True)
    last_p, best_p = ckdir / f"{run}_last.pt", ckdir / f"{run}_best.pt"

    if args.smoke:
        args.epochs = min(args.epochs, 2)
        args.float_epochs = min(args.float_epochs, 1)
    xte, yte = rdata.load_test(ds)
    if args.smoke:
        xte, yte = xte[:200], yte[:200]
    model = resnets.build(args.arch)

    def info(ep, acc):
        return {"arch": args.arch, "epochs": ep, "seed": args.seed, "lr": args.lr if args.float_epochs + args.epochs else 0,
                "brevitas_top1": f"{acc:.2f}"}

    if args.export_only:
        ck = torch.load(best_p if args.from_best else last_p, map_location="cpu", weights_only=False)
        if ck.get("model") is None:  # float-stage checkpoint: post-training quantization of it
            resnets.load_float_params(model, ck["float"])
            fold_checkpoint_bn(model, ck)
            calibrate(model, rdata.load_train(ds)[0], args.calib_batches)
            print("float-stage checkpoint: calibrated its activation scales (PTQ)", flush=True)
        else:
            model.load_state_dict(ck["model"])
        acc = evaluate(model, xte, yte)
        print(f"checkpoint epoch {ck['epoch']}: brevitas top-1 {acc:.2f} % on {len(xte)} test images", flush=True)
        if args.export:
            export(model, args.export, args.export_qcdq, info(ck["epoch"], acc))
        return acc

    xtr, ytr = rdata.load_train(ds)
    if args.smoke:
        xtr, ytr = xtr[:512], ytr[:512]
    if args.max_train:
        xtr, ytr = xtr[: args.max_train], ytr[: args.max_train]
    x_pad = np.pad(xtr, ((0, 0), (4, 4), (4, 4), (0, 0)))  # black (pixel 0) border, like torchvision on PIL
    ytr_t = torch.from_numpy(ytr)
    bs = 32 if args.smoke else args.batch_size
    steps_per_epoch = len(xtr) // bs
    n_epochs = args.float_epochs + args.epochs
    total_steps = n_epochs * steps_per_epoch
    bns = resnets.make_bns(model) if args.float_bn else None
    groups = param_groups(model, args.wd)
    if bns is not None:
        groups[1]["params"] += list(bns.parameters())  # no weight decay on BN
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)

    def lr_at(step):
        w = args.warmup * steps_per_epoch
        if step < w:
            return args.lr * (step + 1) / w
        return 0.5 * args.lr * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total_steps - w))))

    kd_target = None  # (model input, image indices, flips) -> teacher logits
    if args.kd_teacher == "resnet20" and args.kd_online:
        teacher_net = resnets.resnet20_teacher().eval()
        kd_target = lambda xin, idx, fl: teacher_net(xin)  # noqa: E731
    elif args.kd_teacher == "resnet20":
        cached = teacher_logits(xtr, ytr, None if args.smoke else ckdir / "kd_resnet20_logits.npy")
        kd_target = lambda xin, idx, fl: cached[fl.astype(np.int64), idx]  # noqa: E731

    start_epoch, best, history, calibrated = 0, -1.0, [], False
    folded = bns is None  # BN (if any) already folded into the convolutions

    def fwd_float(x):
        return resnets.float_forward(model, x, None if folded else bns)

    def fold():
        nonlocal folded
        if not folded:
            resnets.fold_bns(model, bns)
            folded = True
            acc = evaluate(model, xte, yte, fwd=fwd_float)
            print(f"folded BatchNorm into the convolutions: float top-1 {acc:.2f} %", flush=True)

    def do_calibrate():
        calibrate(model, xtr, 1 if args.smoke else args.calib_batches, batch=bs if args.smoke else 250)
        acc = evaluate(model, xte, yte)
        print(f"calibrated activation scales (PTQ): top-1 {acc:.2f} %", flush=True)
        return acc

    t_used = 0.0
    if last_p.exists() and not args.smoke:
        ck = torch.load(last_p, map_location="cpu", weights_only=False)
        calibrated = ck.get("calibrated", True)
        if calibrated:
            model.load_state_dict(ck["model"])
        else:
            resnets.load_float_params(model, ck["float"])
        if bns is not None:
            folded = ck.get("folded", True)
            if not folded:
                bns.load_state_dict(ck["bn"])
        opt.load_state_dict(ck["opt"])
        start_epoch, best, history, t_used = ck["epoch"], ck["best"], ck["history"], ck.get("wall_s", 0.0)
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed {last_p} at epoch {start_epoch} (best {best:.2f} %)", flush=True)
    else:
        if args.init_from:
            ick = torch.load(args.init_from, map_location="cpu", weights_only=False)
            if ick.get("model") is not None and args.float_epochs == 0:
                model.load_state_dict(ick["model"])  # keep the learned quantizer scales
                calibrated = True
            else:  # a float stage comes first: weights and biases only, calibration after it
                resnets.load_float_params(model, ick["float"])
                if bns is not None and ick.get("bn") is not None and not ick.get("folded", True):
                    bns.load_state_dict(ick["bn"])  # go on training them
                else:
                    fold_checkpoint_bn(model, ick)
            seeded = f"checkpoint {args.init_from} (epoch {ick['epoch']})"
            print(f"initialised from {seeded}", flush=True)
        else:
            seeded = False if args.no_seed else resnets.load_seed(model, args.arch)
        if calibrated:
            acc0 = evaluate(model, xte, yte)
            print(f"quantized model: top-1 {acc0:.2f} %", flush=True)
        elif args.float_epochs == 0:
            fold()
            acc0 = do_calibrate()
            calibrated = True
        else:
            acc0 = evaluate(model, xte, yte, fwd=fwd_float)
            print(f"{'seed' if seeded else 'initial'} float model: top-1 {acc0:.2f} %", flush=True)
        history.append({"epoch": 0, "test_top1": acc0, "seeded": seeded, "quantized": calibrated})
        best = acc0

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    for ep in range(start_epoch, n_epochs):
        t0 = time.time()
        is_float = ep < args.float_epochs
        if not is_float and not calibrated:
            fold()
            history.append({"epoch": ep, "ptq_top1": do_calibrate()})
            calibrated = True
            best = -1.0  # best-of tracking restarts for the quantized model
        model.train()
        rng = np.random.default_rng([args.seed, ep])
        it = augment_epoch(x_pad, len(xtr), rng, bs)
        if args.smoke:
            it = (b for _, b in zip(range(4), it))
        bar = None
        if tqdm is not None and not args.no_progress:
            bar = tqdm(total=4 if args.smoke else steps_per_epoch, desc=f"{run} ep {ep + 1}/{n_epochs}{' float' if is_float else ' QAT'}",
                       mininterval=5.0 if sys.stdout.isatty() else 30.0, file=sys.stdout)
        loss_sum = n_sum = correct = 0
        for bi, (idx, xb, fl) in enumerate(it):
            step = ep * steps_per_epoch + bi
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            xin = to_input(xb)
            yb = ytr_t[idx]
            out = fwd_float(xin) if is_float else model(xin)
            loss = F.cross_entropy(out, yb)
            if kd_target is not None:
                with torch.no_grad():
                    tl = kd_target(xin, idx, fl)
                T = args.kd_t
                kd = F.kl_div(F.log_softmax(out / T, 1), F.softmax(tl / T, 1), reduction="batchmean") * T * T
                loss = (1 - args.kd_alpha) * loss + args.kd_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.step()
            loss_sum += loss.item() * len(idx)
            n_sum += len(idx)
            correct += int((out.argmax(1) == yb).sum())
            if bar is not None:
                bar.update(1)
                if bi % 50 == 0:
                    bar.set_postfix(loss=f"{loss_sum / n_sum:.3f}", acc=f"{100 * correct / n_sum:.1f}",
                                    lr=f"{lr_at(step):.4f}")
                    sys.stdout.flush()  # tqdm to a redirected log: keep the log current
        if bar is not None:
            bar.close()
        acc = evaluate(model, xte, yte, fwd=fwd_float if is_float else None)
        dt = time.time() - t0
        t_used += dt
        rec = {"epoch": ep + 1, "train_loss": loss_sum / max(1, n_sum), "train_top1": 100 * correct / max(1, n_sum),
               "test_top1": acc, "quantized": not is_float, "epoch_s": round(dt, 1), "lr_end": lr_at((ep + 1) * steps_per_epoch - 1)}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        if args.smoke:
            best = max(best, acc)
            continue
        ck = {"model": model.state_dict() if calibrated else None, "float": resnets.float_params(model),
              "calibrated": calibrated, "opt": opt.state_dict(),
              "bn": None if bns is None else bns.state_dict(), "folded": folded, "epoch": ep + 1, "best": max(best, acc),
              "history": history, "torch_rng": torch.get_rng_state(), "args": vars(args), "wall_s": t_used}
        torch.save(ck, str(last_p) + ".tmp")
        os.replace(str(last_p) + ".tmp", last_p)
        if acc > best:
            best = acc
            torch.save(ck, best_p)
    if not calibrated:  # --epochs 0 after a float stage: post-training quantization of the float model
        fold()
        history.append({"epoch": n_epochs, "test_top1": do_calibrate()})
        calibrated = True
    final = history[-1]["test_top1"]
    print(f"done: final top-1 {final:.2f} %, best {best:.2f} %, training wall time {t_used / 60:.1f} min over all "
          f"epochs (this process: {(time.time() - t_start) / 60:.1f} min)", flush=True)
    if args.export:
        export(model, args.export, args.export_qcdq, info(f"{args.float_epochs} float + {args.epochs} QAT", final))
    return final


if __name__ == "__main__":
    main()
