"""Products and brands: an open-vocabulary detector over sampled frames, plus brand names in on-screen text.

Detector: ultralytics YOLO-World with a configurable product vocabulary (production checkpoint by name;
no package ships one, so offline it is reported unavailable with its reason *inside* the result).
Brands: words of text_overlay's events matched against a configurable brand list (case- and
accent-insensitive, whole words), when text_overlay runs in the same request. With neither part
available there is nothing honest to return, and the analyzer says so.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

PRODUCT_FRAMES = FrameSpec(fps=1.0, max_side=640)

DEFAULT_BRANDS = (
    "Adidas", "Amazon", "Apple", "Canon", "CeraVe", "Chanel", "Coca-Cola", "Dior", "Dyson", "Fenty", "Glossier",
    "GoPro", "Google", "Gucci", "Gymshark", "IKEA", "L'Oreal", "Lululemon", "Maybelline", "McDonald's", "Microsoft",
    "Netflix", "Nike", "Nintendo", "Pepsi", "PlayStation", "Prada", "Red Bull", "Rolex", "Samsung", "Sephora",
    "Shein", "Sony", "Spotify", "Stanley", "Starbucks", "Tesla", "Uniqlo", "Xbox", "Zara",
)
DEFAULT_VOCABULARY = ("bottle", "can", "cup", "phone", "laptop", "headphones", "shoe", "handbag", "watch",
                      "lipstick", "cosmetics jar", "perfume bottle", "box", "food package", "car")


class BrandMention(BaseModel):
    brand: str
    text: str = Field(..., description="The on-screen text it was found in.")
    start: float
    end: float
    box: tuple[float, float, float, float]


class ProductSighting(BaseModel):
    label: str
    first_seen: float
    last_seen: float
    frames: int
    max_confidence: float


class ProductDetectionResult(BaseModel):
    brands: list[str] = Field(..., description="Distinct brands seen in on-screen text, first appearance first.")
    brand_mentions: list[BrandMention]
    brand_text_status: str = Field(..., description="'ok', or 'unavailable' when text_overlay was not requested.")
    products: list[ProductSighting]
    detector_status: str = Field(..., description="'ok' or 'unavailable'.")
    detector_reason: str | None = None
    detector_model: str


class ProductDetectionSettings(BaseModel):
    detector_model: str = Field("yolov8s-worldv2.pt", description="YOLO-World checkpoint name or path.")
    vocabulary: list[str] = Field(default_factory=lambda: list(DEFAULT_VOCABULARY))
    brands: list[str] = Field(default_factory=lambda: list(DEFAULT_BRANDS))
    confidence: float = Field(0.15, ge=0, le=1, description="Open-vocabulary scores run lower than closed-set ones.")


# glyphs OCR confuses in sans-serif capitals ("NIKE" read as "NlKE"); folded the same on both sides
OCR_CONFUSABLE = str.maketrans({"l": "i", "1": "i", "|": "i", "0": "o"})


def _fold(text: str) -> str:
    """Lower case, accents off, punctuation to spaces, OCR look-alikes merged: "L'Oréal" == "l oreal"."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(OCR_CONFUSABLE)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def find_brands(text: str, brands: list[str]) -> list[str]:
    folded = f" {_fold(text)} "
    return [b for b in brands if _fold(b) and f" {_fold(b)} " in folded]


class ProductDetection(Analyzer):
    name = "product_detection"
    needs = Needs(frames=PRODUCT_FRAMES, optional_upstream=("text_overlay",))
    Result = ProductDetectionResult
    Settings = ProductDetectionSettings

    def load(self, device: str) -> None:
        super().load(device)
        from analyzers.object_detection import load_yolo

        self._detector, self._detector_reason = None, None
        try:
            detector = load_yolo(self.settings.detector_model, allow_random_weights=False, cls_name="YOLOWorld")
            detector.set_classes(list(self.settings.vocabulary))  # needs the CLIP text encoder, fetched with the model
            self._detector = detector
        except AnalyzerUnavailable as exc:
            self._detector_reason = str(exc)
        except Exception as exc:
            self._detector_reason = f"YOLO-World could not be prepared: {type(exc).__name__}: {exc}"

    @property
    def model_in_use(self) -> str:
        state = "" if getattr(self, "_detector", None) is not None else " (unavailable; brand text only)"
        return f"YOLO-World {self.settings.detector_model}{state}"

    def _products(self, media: MediaBundle) -> list[ProductSighting]:
        frame_set = media.frames(PRODUCT_FRAMES)
        sightings: dict[str, dict] = {}
        for image, t in zip(frame_set.frames, frame_set.timestamps.tolist()):
            result = self._detector.predict(np.ascontiguousarray(image[..., ::-1]), conf=self.settings.confidence,
                                            device=self.device, verbose=False)[0]
            for cls, conf in zip(result.boxes.cls.tolist(), result.boxes.conf.tolist()):
                label = result.names[int(cls)]
                entry = sightings.setdefault(label, {"first": t, "last": t, "frames": set(), "conf": 0.0})
                entry["last"], entry["conf"] = t, max(entry["conf"], conf)
                entry["frames"].add(t)
        return [ProductSighting(label=k, first_seen=round(v["first"], 3), last_seen=round(v["last"], 3),
                                frames=len(v["frames"]), max_confidence=round(v["conf"], 4))
                for k, v in sorted(sightings.items(), key=lambda kv: kv[1]["first"])]

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> ProductDetectionResult:
        if not hasattr(self, "_detector"):
            raise AnalyzerUnavailable("load() was not called")
        text = upstream.get("text_overlay")
        if self._detector is None and text is None:
            raise AnalyzerUnavailable(f"no product detector ({self._detector_reason}) and no text_overlay result "
                                      f"to read brands from; request text_overlay too")
        mentions = []
        for event in getattr(text, "events", []) if text is not None else []:
            for brand in find_brands(event.text, self.settings.brands):
                mentions.append(BrandMention(brand=brand, text=event.text, start=event.start, end=event.end,
                                             box=event.box))
        brands = list(dict.fromkeys(m.brand for m in sorted(mentions, key=lambda m: m.start)))
        return ProductDetectionResult(
            brands=brands, brand_mentions=mentions, brand_text_status="ok" if text is not None else "unavailable",
            products=self._products(media) if self._detector is not None else [],
            detector_status="ok" if self._detector is not None else "unavailable",
            detector_reason=self._detector_reason, detector_model=self.settings.detector_model)
