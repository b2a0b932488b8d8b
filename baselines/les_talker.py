"""``les-talker`` and its ablations ``one-hot`` and ``audio-only``, trained by the same code.

These wrap LES-Talker's generation (:mod:`lesbench.model`): a checkpoint (a training run folder
or a checkpoint file from ``lesbench train``) whose ``condition`` is ``les``, ``onehot`` or
``audio-only``. The wrapper checks that the checkpoint's condition matches the method asked
for, records the checkpoint's sha256 and serves one clip per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lesbench.baselines.base import GenerationRequest, Method, PreparedData, sha256_path
from lesbench.errors import LesbenchError
from lesbench.model.generate import load_generator
from lesbench.model.runs import checkpoint_sha256

#: method name -> LES-Talker condition (lesbench.model.config.CONDITIONS)
VARIANTS: dict[str, str] = {"les-talker": "les", "one-hot": "onehot", "audio-only": "audio-only"}


class LESTalkerMethod(Method):
    name = "les-talker"
    card = "les-talker"
    controllable = True
    #: LES-Talker and its variants learn to reproduce the prepared data set's AUs
    training_features = ("au",)

    def __init__(self, seed: int = 0, device: str | None = None, checkpoint: str | Path | None = None,
                 refine: bool | None = None, **options: Any) -> None:
        """``refine``: None = use the run's learned refiner when it has one, False = plain warp,
        True = require it (:class:`lesbench.model.generate.Generator`)."""
        super().__init__(seed=seed, device=device, checkpoint=checkpoint, **options)
        self.refine = refine
        if checkpoint is None:
            raise LesbenchError(f"{self.name}: --checkpoint RUN is required (a run folder or checkpoint "
                                "file from `lesbench train`)")
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.exists():
            raise LesbenchError(f"{self.checkpoint}: checkpoint not found")
        self._generator: Any = None

    @property
    def condition(self) -> str:
        return VARIANTS[self.name]

    def setup(self, data: PreparedData) -> None:
        super().setup(data)
        self._generator = load_generator(self.checkpoint, data=data.root, device=self.device, refine=self.refine)
        cond = getattr(self._generator, "condition", None)
        if cond is not None and cond != self.condition:
            raise LesbenchError(
                f"{self.checkpoint}: trained with condition {cond!r}, but method {self.name!r} needs "
                f"{self.condition!r}; train with `condition: {self.condition}` or pick the matching method"
            )

    def generate(self, request: GenerationRequest) -> np.ndarray:
        if self._generator is None:
            raise LesbenchError(f"{self.name}: setup() was not called")
        # request.level is the MEAD level (1-3); the generator's ``level=`` is an LES level (a
        # fraction of MEAD level 3), so MEAD levels go through ``mead_level=``, which maps them
        # with the run's fitted level scale. Neutral has no level.
        mead_level = None if request.emotion == "neutral" else int(request.level)
        sweep: dict[str, Any] = {}
        if request.les_level is not None:  # controllability sweep: a continuous LES level
            mead_level, sweep["level"] = None, float(request.les_level)
        if request.units and self.condition == "les":  # the ablations have no unit input: ignored
            sweep["units"] = list(request.units)
        frames = self._generator.generate(
            source_image=request.source_image, audio=request.audio, emotion=request.emotion,
            mead_level=mead_level, n_frames=request.n_frames, sample_rate=request.sample_rate,
            seed=self.seed, **sweep,
        )
        return np.asarray(frames, dtype=np.uint8)

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["checkpoint"] = str(self.checkpoint)
        # a run folder: its content, not the paths, times and epoch seconds it also records
        prov["checkpoint_sha256"] = (checkpoint_sha256(self.checkpoint) if self.checkpoint.is_dir()
                                     else sha256_path(self.checkpoint))
        prov["condition"] = self.condition
        prov["revision"] = getattr(self._generator, "revision", None)
        # the learned refiner, when the run has one and it is used (None: plain warp)
        prov["refine_revision"] = getattr(self._generator, "refine_revision", None)
        return prov


class OneHotVariant(LESTalkerMethod):
    name = "one-hot"
    card = "one-hot"


class AudioOnlyVariant(LESTalkerMethod):
    name = "audio-only"
    card = "audio-only"
