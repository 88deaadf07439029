"""Small demonstration models trained by rep4d's own pipelines on synthetic clips (Hub-format folders).

``ZOO_MODELS`` is the one list of the embedded models: which folder serves which ``rep4d demo`` step, which model class
loads it and how it was trained. The demo (``rep4d/commands/demo.py``) and the model cards
(``rep4d.publishing.write_zoo_cards``) both read it; a folder missing from ``model_zoo/`` makes the demo fall back to a
small randomly initialised model, said in its summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent
TRAINING_SCRIPT = "scripts/train_tiny_models.sh"


@dataclass(frozen=True)
class ZooModel:
    name: str  # folder name under model_zoo/
    demo_step: str  # the `rep4d demo` step it serves (a key of the summary's "models")
    model_class: str  # rep4d.modeling class that loads the folder
    training: str  # argument of scripts/train_tiny_models.sh that produces it
    description: str

    @property
    def training_command(self) -> str:
        return f"bash {TRAINING_SCRIPT} {self.training}"

    def folder(self, zoo_dir: str | Path = ZOO_DIR) -> Path | None:
        """The model folder when it is present in ``zoo_dir``, else None."""
        folder = Path(zoo_dir) / self.name
        return folder if (folder / "config.json").is_file() else None


ZOO_MODELS: dict[str, ZooModel] = {
    model.name: model
    for model in [
        ZooModel("moog-tiny", "moog", "MooGForNextFramePrediction", "moog",
                 "MooG trained for next-frame prediction (8-frame unroll) on 32x32 synthetic clips"),
        ZooModel("4ds-tiny", "4ds", "FourDSForPreTraining", "4ds",
                 "4DS SimpleMAE (95% tubelet masking, pixel decoder) trained on 8x32x32 synthetic clips"),
        ZooModel("4ds-tiny-dist", "4ds_distilled", "FourDSModel", "distill",
                 "4DS student distilled from 4ds-tiny (L1 on two teacher layers through linear adapters, dropped "
                 "when saved)"),
        ZooModel("rvm-tiny", "rvm", "RVMForMaskedReconstruction", "rvm",
                 "RVM asymmetric masked reconstruction (recurrent sources, 95%-masked targets) on 32x32 synthetic "
                 "clips"),
        ZooModel("4ds-points", "point_tracking", "ReadoutForPointTracking", "4ds-points",
                 "attention point-tracking readout trained end to end with a small 4DS backbone on synthetic tracks"),
    ]
}

# demo step -> zoo model serving it
DEMO_MODELS: dict[str, ZooModel] = {model.demo_step: model for model in ZOO_MODELS.values()}
