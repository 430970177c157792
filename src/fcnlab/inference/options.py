"""The options of ``fcnlab predict`` as one typed object, handed to the model's task."""

from __future__ import annotations

from dataclasses import dataclass, field

from fcnlab.inference.tta import TTA


@dataclass(frozen=True)
class PredictOptions:
    """How to run a model on new images and draw its predictions.

    ``window``/``overlap``/``tta`` apply to dense per-pixel predictions (sliding windows,
    test-time augmentation); ``score_threshold`` to detections and instances; ``alpha`` is the
    overlay opacity.
    """

    device: str = "auto"
    alpha: float = 0.5
    score_threshold: float = 0.3
    window: int | None = None
    overlap: float = 0.33
    tta: TTA = field(default_factory=TTA)

    @property
    def dense_only(self) -> bool:
        """Whether an option that only dense predictions use is set (sliding windows or TTA)."""
        return self.window is not None or self.tta != TTA()

    def predictor_options(self) -> dict[str, object]:
        """``Predictor`` keyword arguments: window, overlap and TTA."""
        return {"window": self.window, "overlap": self.overlap, "tta": self.tta}
