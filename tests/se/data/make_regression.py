"""Write regression.json: the bundled enhancer's scores on the stored clips (after retraining).

python tests/se/data/make_regression.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from latentdiff.se import Enhancer
from latentdiff.se.audio import load_audio
from latentdiff.se.metrics import estoi, pesq_wb, si_sdr

DATA = Path(__file__).resolve().parent
SR = 16000
TOLERANCE = {"pesq": 0.1, "estoi": 0.02, "si_sdr": 0.5}


def scores(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {
        "pesq": round(pesq_wb(est, ref, SR), 4),
        "estoi": round(estoi(est, ref, SR), 4),
        "si_sdr": round(si_sdr(est, ref), 4),
    }


def main() -> None:
    enhancer = Enhancer.from_pretrained()
    clips = {}
    for clean_path in sorted((DATA / "clips").glob("*_clean.wav")):
        name = clean_path.name.removesuffix("_clean.wav")
        clean = load_audio(clean_path, SR)
        noisy = load_audio(DATA / "clips" / f"{name}_noisy.wav", SR)
        clips[name] = {
            "noisy": scores(noisy, clean),
            "enhanced": scores(enhancer.enhance(noisy, SR), clean),
        }
    result = {"tolerance": TOLERANCE, "clips": clips}
    (DATA / "regression.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(clips, indent=2))


if __name__ == "__main__":
    main()
