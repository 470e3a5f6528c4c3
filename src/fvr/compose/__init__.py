"""Compose: paste restored faces back into (optionally up-sampled) frames with a feathered mask."""

from fvr.compose.background import BACKGROUNDS, upscale_frame
from fvr.compose.change import change_magnitude, change_map
from fvr.compose.mask import face_mask
from fvr.compose.paste import FacePaste, match_color, paste_box, paste_faces

__all__ = ["BACKGROUNDS", "FacePaste", "change_magnitude", "change_map", "face_mask", "match_color", "paste_box",
           "paste_faces", "upscale_frame"]
