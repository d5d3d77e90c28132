#!/usr/bin/env python3
"""The PyTorch reference step that `dsan bench step` is compared with (Docs/performance.md).

Only a measuring tool: dsan never depends on PyTorch. Needs `pip install torch==2.13.0` (CPU wheel).

The module is DESIGN.md §1: 3D ResNet34 (BasicBlocks 3-4-6-3, width 64, layer4 stride 1, type-B
shortcuts), global average pooling, fc 512→1 without bias, and the online attention branch
(A = ReLU(conv1×1×1(f, fc.weight detached)), trilinear upsampling to the input size with
align_corners=False, per-sample min-max normalisation, T(A) = sigmoid(100 (A − 0.4))). The loss is
§2's: BCE on the logit + 0.5 · L_ex. Batch, input and mask match `dsan bench step`: batch 1,
label 1 (COVID-19), input uniform in [0, 1), mask 1 at every 7th voxel. Adam(lr 2e-4,
weight_decay 1e-4, fused=True).

    taskset -c 0-1 python3 launch/bench-pytorch.py --size 64x128x128 --threads 2 --repetitions 5
    taskset -c 0-1 python3 launch/bench-pytorch.py --size 138x256x256 --threads 2 --inference

Prints one line of JSON: median forward / loss + backward / Adam / step seconds and peak RSS (GiB,
ru_maxrss of this process).
"""
import argparse, json, resource, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet3D34Attention(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv3d(1, w[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm3d(w[0])
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        cin = w[0]
        for i, (blocks, stride) in enumerate([(3, 1), (4, 2), (6, 2), (3, 1)]):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(cin, w[i], stride if b == 0 else 1))
                cin = w[i]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(w[3], 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x, explain=True):
        f = self.layer4(self.layer3(self.layer2(self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x))))))))
        logit = self.fc(f.mean(dim=(2, 3, 4)))
        if not explain:
            return logit, None
        kernel = self.fc.weight.detach().view(1, -1, 1, 1, 1)
        a = F.relu(F.conv3d(f, kernel))
        a = F.interpolate(a, size=x.shape[2:], mode="trilinear", align_corners=False)
        flat = a.flatten(1)
        lo = flat.amin(dim=1, keepdim=True)
        hi = flat.amax(dim=1, keepdim=True)
        norm = (flat - lo) / torch.clamp(hi - lo, min=1e-5)
        return logit, torch.sigmoid(100 * (norm - 0.4)).view_as(a)


def loss_fn(logit, t, labels, masks, lam=0.5):
    lc = F.binary_cross_entropy_with_logits(logit.view(-1), labels)
    covid = labels > 0.5
    if covid.any():
        tc, mc = t[covid].flatten(1), masks[covid].flatten(1)
        lex = ((tc - mc) ** 2).sum() / (tc.sum() + mc.sum())
    else:
        lex = torch.zeros(())
    return lc + lam * lex


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="64x128x128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--inference", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    d, h, w = (int(s) for s in a.size.split("x"))
    model = ResNet3D34Attention(a.width)
    x = torch.rand(1, 1, d, h, w)
    forward, backward, adam = [], [], []
    if a.inference:
        model.eval()
        with torch.inference_mode():
            for r in range(a.warmup + a.repetitions):
                t0 = time.perf_counter()
                model(x, explain=False)
                if r >= a.warmup:
                    forward.append(time.perf_counter() - t0)
        backward = adam = [0.0] * len(forward)
    else:
        masks = torch.zeros(1, 1, d, h, w)
        masks.view(-1)[::7] = 1
        labels = torch.ones(1)
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-4, fused=True)
        model.train()
        for r in range(a.warmup + a.repetitions):
            t0 = time.perf_counter()
            logit, t = model(x)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            loss_fn(logit, t, labels, masks).backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if r >= a.warmup:
                forward.append(t1 - t0); backward.append(t2 - t1); adam.append(t3 - t2)
    steps = [f + b + o for f, b, o in zip(forward, backward, adam)]
    print(json.dumps({
        "tool": "pytorch", "torch": torch.__version__, "size": a.size, "threads": a.threads,
        "inference": a.inference, "forward": statistics.median(forward),
        "backward": statistics.median(backward), "adam": statistics.median(adam),
        "step": statistics.median(steps),
        "peakRSSGiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }))


if __name__ == "__main__":
    main()
