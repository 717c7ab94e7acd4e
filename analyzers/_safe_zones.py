"""TikTok's interface over a 9:16 frame: the one table of zones that composition_analysis (the subject) and
text_overlay (on-screen text) check boxes against, so the two can never disagree on where a zone is.

Zones are frame fractions: the button column on the right (x > 0.85, 0.35 < y < 0.85), the caption band at the
bottom (y > 0.80) and the top bar (y < 0.08). A box lies in a zone when at least a given share of its own area is
inside it.
"""

from __future__ import annotations

from typing import Literal

Zone = Literal["right_buttons", "bottom_caption", "top_bar"]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as frame fractions

SAFE_ZONES: dict[Zone, Box] = {
    "right_buttons": (0.85, 0.35, 1.0, 0.85),
    "bottom_caption": (0.0, 0.80, 1.0, 1.0),
    "top_bar": (0.0, 0.0, 1.0, 0.08),
}
MIN_ZONE_OVERLAP = 0.3  # default share of a box inside a zone that puts it in the zone


def overlap_share(box: Box, zone: Box) -> float:
    """Share of `box`'s area that lies inside `zone`, 0..1."""
    ix = max(0.0, min(box[2], zone[2]) - max(box[0], zone[0]))
    iy = max(0.0, min(box[3], zone[3]) - max(box[1], zone[1]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    return ix * iy / area


def zones_of(box: Box, min_overlap: float = MIN_ZONE_OVERLAP) -> list[Zone]:
    """The zones holding at least `min_overlap` of the box, in SAFE_ZONES order."""
    return [zone for zone, rect in SAFE_ZONES.items() if overlap_share(box, rect) >= min_overlap]
