"""Proxy and target architectures, by name.

Every model maps a batch to logits (B, K) and exposes `embed(x) -> (B, D)`, the penultimate
features k-center greedy works on. Image models read float pixels (B, C, H, W); text models
(`reads="tokens"`) read int64 hashed word ids (B, 1, 1, L), 0 padding (pipeline.data.tokens).
No training logic lives here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.tokens import BUCKETS, PAD
from pipeline.errors import ConfigError
from pipeline.registry import Registry

# A factory (in_channels, num_classes) -> nn.Module per name, tagged with what it reads: "pixels" or "tokens".
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def create_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    return MODELS.get(name)(in_channels=in_channels, num_classes=num_classes)


def check_models_read(proxy: str, target: str, dataset: str, holds: str) -> None:
    """A one-line ConfigError when the proxy or target model cannot read what the dataset `holds`
    ("pixels" or "tokens")."""
    for role, name in (("proxy", proxy), ("target", target)):
        reads = MODELS.tag(name, "reads")
        if reads != holds:
            fitting = [m for m in MODELS.names() if MODELS.tag(m, "reads") == holds]
            raise ConfigError(
                f"{role}.name {name} reads {reads}, but {dataset} holds {holds}: "
                f"set {role}.name to one of {', '.join(fitting)}"
            )


class Classifier(nn.Module):
    """A feature extractor followed by a linear head."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@MODELS.register("small_cnn", reads="pixels")
def small_cnn(in_channels: int, num_classes: int, width: int = 16) -> nn.Module:
    """Three conv blocks and global pooling: the cheap selection model."""
    features = nn.Sequential(
        *_conv_bn_relu(in_channels, width),
        nn.MaxPool2d(2),  # (B, w, H/2, W/2)
        *_conv_bn_relu(width, 2 * width),
        nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
        *_conv_bn_relu(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),  # (B, 4w)
    )
    return Classifier(features, 4 * width, num_classes)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016): BN-ReLU-conv 1x1, 3x3, 1x1; 4x wider output."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


def preact_resnet(
    in_channels: int, num_classes: int, depth: int, bottleneck: bool = False, base_width: int = 16
) -> nn.Module:
    """The CIFAR pre-activation ResNets: a 3x3 stem, three stages at widths 16, 32, 64 (x4 output
    with bottlenecks), strides 1, 2, 2. Depth is 6n+2 with basic blocks (20, 56, 110) and 9n+2 with
    bottlenecks (164: n = 18). Works on any square input (28x28 and 32x32 included)."""
    per_block = 3 if bottleneck else 2
    if (depth - 2) % (3 * per_block) or depth < 2 + 3 * per_block:
        kind = "9n+2 with bottlenecks: 164, 1001" if bottleneck else "6n+2 with basic blocks: 20, 56, 110"
        raise ConfigError(f"pre-activation ResNet depth {depth} is not {kind}")
    blocks_per_stage = (depth - 2) // (3 * per_block)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 3, padding=1, bias=False)]  # (B, 16, H, W)
    cin = base_width
    for stage, planes in enumerate((base_width, 2 * base_width, 4 * base_width)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            if bottleneck:
                layers.append(PreActBottleneck(cin, planes, stride))
                cin = planes * PreActBottleneck.expansion
            else:
                layers.append(PreActBlock(cin, planes, stride))
                cin = planes
    # (B, cin, H/4, W/4) -> (B, cin)
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), cin, num_classes)


@MODELS.register("preact_resnet20", reads="pixels")
def preact_resnet20(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's CIFAR proxy."""
    return preact_resnet(in_channels, num_classes, depth=20)


@MODELS.register("preact_resnet56", reads="pixels")
def preact_resnet56(in_channels: int, num_classes: int) -> nn.Module:
    return preact_resnet(in_channels, num_classes, depth=56)


@MODELS.register("preact_resnet110", reads="pixels")
def preact_resnet110(in_channels: int, num_classes: int) -> nn.Module:
    return preact_resnet(in_channels, num_classes, depth=110)


@MODELS.register("preact_resnet164", reads="pixels")
def preact_resnet164(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's CIFAR target: bottleneck blocks, 18 per stage, 256 features."""
    return preact_resnet(in_channels, num_classes, depth=164, bottleneck=True)


def _torchvision_resnet(arch: str, in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ImageNet ResNet, randomly initialised (weights=None: nothing is downloaded),
    its `fc` split off as the Classifier head so `embed` gives the pooled features."""
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()  # net(x): (B, C, H, W) -> (B, 512 or 2048)
    return Classifier(net, feature_dim, num_classes)


@MODELS.register("resnet18", reads="pixels")
def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's ImageNet proxy (torchvision, weights=None)."""
    return _torchvision_resnet("resnet18", in_channels, num_classes)


@MODELS.register("resnet50", reads="pixels")
def resnet50(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's ImageNet target (torchvision, weights=None)."""
    return _torchvision_resnet("resnet50", in_channels, num_classes)


# --- text -----------------------------------------------------------------------------------

BIGRAM_MULTIPLIER = 1_000_003


class FastText(nn.Module):
    """fastText (Joulin et al. 2017): the mean embedding of a text's hashed words and word bigrams,
    then a linear classifier. Bigram ids are hashed from the word ids into the same buckets."""

    def __init__(self, num_classes: int, dim: int = 10):
        super().__init__()
        self.embedding = nn.EmbeddingBag(BUCKETS, dim, mode="mean", padding_idx=PAD)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        words = x.flatten(1)  # (B, L)
        first, second = words[:, :-1], words[:, 1:]
        bigrams = 1 + (first * BIGRAM_MULTIPLIER + second) % (BUCKETS - 1)
        bigrams = bigrams.masked_fill((first == PAD) | (second == PAD), PAD)  # (B, L-1)
        return self.embedding(torch.cat([words, bigrams], dim=1))  # (B, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class TextCNN(nn.Module):
    """A convolutional text classifier (Kim 2014): word embeddings, 1-D convolutions of widths
    3, 4 and 5, max over time, dropout, a linear head. Texts shorter than the widest filter are
    padded, so any max_tokens works."""

    def __init__(self, num_classes: int, dim: int = 64, filters: int = 100, widths: tuple[int, ...] = (3, 4, 5)):
        super().__init__()
        self.embedding = nn.Embedding(BUCKETS, dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in widths)
        self.widest = max(widths)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(filters * len(widths), num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        words = x.flatten(1)  # (B, L)
        if words.shape[1] < self.widest:
            words = F.pad(words, (0, self.widest - words.shape[1]), value=PAD)
        h = self.embedding(words).transpose(1, 2)  # (B, dim, L)
        return torch.cat([F.relu(conv(h)).amax(dim=2) for conv in self.convs], dim=1)  # (B, filters * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


@MODELS.register("fasttext", reads="tokens")
def fasttext(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's Amazon Review proxy."""
    return FastText(num_classes)


@MODELS.register("text_cnn", reads="tokens")
def text_cnn(in_channels: int, num_classes: int) -> nn.Module:
    """The Amazon Review target: a word-level CNN standing in for the paper's VDCNN-29."""
    return TextCNN(num_classes)
