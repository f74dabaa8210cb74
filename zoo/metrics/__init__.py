"""Image metrics under pinned protocols (torchmetrics `Metric`s inside); every result records its protocol."""

from zoo.metrics.base import MetricResult, PerItemMetric, Protocol, ZooMetric, as_uint8, check_images

__all__ = ["MetricResult", "PerItemMetric", "Protocol", "ZooMetric", "as_uint8", "check_images"]
