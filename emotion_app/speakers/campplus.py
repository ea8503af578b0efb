"""The CAM++ speaker-embedding network (Wang et al., Interspeech 2023) in torch. Imports torch.

Written to be numerically the network of FunASR 1.4.16's `CAMPPlus(feat_dim=80, embedding_size=192)`
in eval mode, with exactly its state_dict keys and shapes, so the hub file `campplus_cn_common.bin`
(iic/speech_campplus_sv_zh-cn_16k-common, funasr/campplus) loads with strict=True. Import this
module lazily (speakers/model.py does): it is the only speaker module that needs torch at import.

Input (B, T, 80) mean-normalised fbank frames (10 ms apart, see fbank.py) -> (B, 192) embedding.

    head      2-D conv front end over (frequency, time): 80 mel bins -> 32 maps x 10 bands = 320 channels
    xvector
      tdnn      Conv1d 320 -> 128, kernel 5, stride 2 (T -> ceil(T / 2))
      block1    12 context-aware dense layers (+32 channels each), dilation 1: 128 -> 512
      transit1  512 -> 256
      block2    24 layers, dilation 2: 256 -> 1024;  transit2 1024 -> 512
      block3    16 layers, dilation 2: 512 -> 1024;  transit3 1024 -> 512
      out_nonlinear  batchnorm + relu
      (stats)   mean and unbiased std over time: (B, 512, T) -> (B, 1024)
      dense     1x1 conv 1024 -> 192, batchnorm without affine parameters

Every "nonlinear" is batchnorm then relu (FunASR's config_str "batchnorm-relu"). Batchnorm runs on
its running statistics (eval), and the time means (CAM context, statistics pooling) run over the
whole T: a batch must hold pieces of equal frame count, zero padding would change the result.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

FEAT_DIM = 80
EMBEDDING_SIZE = 192
GROWTH = 32  # channels each dense layer adds
BOTTLENECK = 128  # 4 x GROWTH: the 1x1 bottleneck width inside a dense layer
CAM_SEGMENT = 100  # frames (2 s after the stride-2 TDNN) per segment of the CAM segment pooling
# (layers, dilation) of the three dense blocks; every layer's context conv has kernel 3
BLOCKS = ((12, 1), (24, 2), (16, 2))


class BatchNormReLU(nn.Module):
    """relu(batchnorm(x)) over channels of (B, C, T); key `batchnorm.*` as FunASR's get_nonlinear."""

    def __init__(self, channels: int):
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels)

    def forward(self, x):
        return F.relu(self.batchnorm(x))


class ResBlock2d(nn.Module):
    """Basic 2-D residual block over (B, C, F, T); `stride` halves the frequency axis only."""

    def __init__(self, in_maps: int, maps: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_maps, maps, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(maps)
        self.conv2 = nn.Conv2d(maps, maps, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(maps)
        if stride != 1 or in_maps != maps:  # projection shortcut: keys shortcut.0 (conv), shortcut.1 (bn)
            self.shortcut = nn.Sequential(nn.Conv2d(in_maps, maps, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(maps))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FrontEnd(nn.Module):
    """FCM head: (B, 80, T) fbank -> (B, 320, T): 2-D convs that downsample frequency 8x, keep T."""

    def __init__(self, feat_dim: int = FEAT_DIM, maps: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, maps, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(maps)
        self.layer1 = nn.Sequential(ResBlock2d(maps, maps, stride=2), ResBlock2d(maps, maps, stride=1))
        self.layer2 = nn.Sequential(ResBlock2d(maps, maps, stride=2), ResBlock2d(maps, maps, stride=1))
        self.conv2 = nn.Conv2d(maps, maps, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(maps)
        self.out_channels = maps * (feat_dim // 8)

    def forward(self, x):
        x = x.unsqueeze(1)  # (B, 1, 80, T)
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 32, 80, T)
        x = self.layer2(self.layer1(x))  # (B, 32, 20, T)
        x = F.relu(self.bn2(self.conv2(x)))  # (B, 32, 10, T)
        b, maps, bands, t = x.shape
        return x.reshape(b, maps * bands, t)  # (B, 320, T): channel = map * 10 + band


class TDNN(nn.Module):
    """Conv1d (no bias) then batchnorm + relu, 'same' padding for the odd kernel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.nonlinear = BatchNormReLU(out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class ContextAwareMask(nn.Module):
    """CAM: a dilated kernel-3 conv whose output is gated per channel by utterance + segment context."""

    def __init__(self, channels: int, out_channels: int, dilation: int):
        super().__init__()
        self.linear_local = nn.Conv1d(channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(channels, channels // 2, 1)
        self.linear2 = nn.Conv1d(channels // 2, out_channels, 1)

    @staticmethod
    def segment_means(x):
        """(B, C, T) -> (B, C, T): each frame gets the mean of its 100-frame segment (the last one shorter)."""
        seg = F.avg_pool1d(x, kernel_size=CAM_SEGMENT, stride=CAM_SEGMENT, ceil_mode=True)  # (B, C, ceil(T / 100))
        return seg.repeat_interleave(CAM_SEGMENT, dim=-1)[..., : x.shape[-1]]

    def forward(self, x):
        local = self.linear_local(x)  # (B, 32, T)
        context = x.mean(dim=-1, keepdim=True) + self.segment_means(x)  # (B, 128, T)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))  # (B, 32, T)
        return local * gate


class DenseLayer(nn.Module):
    """One CAM dense layer: BN-ReLU, 1x1 bottleneck to 128, BN-ReLU, CAM -> 32 new channels."""

    def __init__(self, in_channels: int, dilation: int):
        super().__init__()
        self.nonlinear1 = BatchNormReLU(in_channels)
        self.linear1 = nn.Conv1d(in_channels, BOTTLENECK, 1, bias=False)
        self.nonlinear2 = BatchNormReLU(BOTTLENECK)
        self.cam_layer = ContextAwareMask(BOTTLENECK, GROWTH, dilation)

    def forward(self, x):
        x = self.linear1(self.nonlinear1(x))  # (B, 128, T)
        return self.cam_layer(self.nonlinear2(x))  # (B, 32, T)


class DenseBlock(nn.Module):
    """`layers` dense layers `tdnnd1..N`, each fed the concatenation of all channels before it."""

    def __init__(self, layers: int, in_channels: int, dilation: int):
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", DenseLayer(in_channels + i * GROWTH, dilation))
        self.out_channels = in_channels + layers * GROWTH

    def forward(self, x):
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)  # (B, C + 32, T)
        return x


class Transit(nn.Module):
    """BN-ReLU then a 1x1 conv (no bias) that halves the channels between dense blocks."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nonlinear = BatchNormReLU(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class Embedding(nn.Module):
    """(B, 2C) pooled statistics -> (B, 192): 1x1 conv (no bias), batchnorm without weight/bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Module()
        self.nonlinear.batchnorm = nn.BatchNorm1d(out_channels, affine=False)  # key nonlinear.batchnorm.*

    def forward(self, stats):
        x = self.linear(stats.unsqueeze(-1)).squeeze(-1)  # (B, 192)
        return self.nonlinear.batchnorm(x)


def statistics_pooling(x):
    """(B, C, T) -> (B, 2C): mean and unbiased standard deviation over time (T >= 2, else NaN)."""
    return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class XVector(nn.Module):
    """(B, 320, T) front-end maps -> (B, 192) embedding: TDNN, three dense blocks, pooling, dense."""

    def __init__(self, in_channels: int, embedding_size: int = EMBEDDING_SIZE, channels: int = 128):
        super().__init__()
        self.tdnn = TDNN(in_channels, channels, 5, stride=2)
        for i, (layers, dilation) in enumerate(BLOCKS, start=1):
            block = DenseBlock(layers, channels, dilation)
            self.add_module(f"block{i}", block)
            self.add_module(f"transit{i}", Transit(block.out_channels, block.out_channels // 2))
            channels = block.out_channels // 2
        self.out_nonlinear = BatchNormReLU(channels)
        self.dense = Embedding(channels * 2, embedding_size)

    def forward(self, x):
        x = self.tdnn(x)  # (B, 128, ceil(T / 2))
        x = self.transit1(self.block1(x))  # (B, 256, T')
        x = self.transit2(self.block2(x))  # (B, 512, T')
        x = self.transit3(self.block3(x))  # (B, 512, T')
        x = self.out_nonlinear(x)
        return self.dense(statistics_pooling(x))  # (B, 192)


class CAMPPlus(nn.Module):
    """CAM++: (B, T, 80) mean-normalised fbank -> (B, 192) speaker embedding (not length-normalised).

    T >= 3 frames (else the statistics pooling sees one frame and gives NaN, as FunASR does).
    """

    def __init__(self, feat_dim: int = FEAT_DIM, embedding_size: int = EMBEDDING_SIZE):
        super().__init__()
        self.head = FrontEnd(feat_dim)
        self.xvector = XVector(self.head.out_channels, embedding_size)

    def forward(self, feats):
        x = feats.transpose(1, 2)  # (B, 80, T)
        return self.xvector(self.head(x))  # (B, 192)
