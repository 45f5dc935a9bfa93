"""Small conv nets shared by the tests (in the spirit of Captum's BasicModel_ConvNet)."""

from __future__ import annotations

from torch import Tensor, nn


class TinyConvNet(nn.Module):
    """conv(3->8) relu conv(8->16, stride 2) relu pool(4) linear(256->5).

    ``conv2`` is a natural l1 (16 channels, H/2 x W/2) and ``pool`` a natural l0.
    """

    def __init__(self, classes: int = 5, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(256, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.bn(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


class TinyConvNetWithArgs(TinyConvNet):
    """Adds ``scale * extra`` to the logits: tests additional_forward_args."""

    def forward(self, x: Tensor, extra: Tensor, scale: float = 1.0) -> Tensor:  # type: ignore[override]
        return super().forward(x) + scale * extra
