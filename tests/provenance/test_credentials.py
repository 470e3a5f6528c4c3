"""Content Credentials: a local test signer, signed MP4 and PNG outputs, and what a reader finds in them (trusted,
valid without a trust anchor, invalid after one changed byte, none when unsigned). No network."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import stat
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fvr.errors import ConfigError, InputError, OutputError
from fvr.provenance.credentials import (
    COMPOSITE_SOURCE_TYPE,
    SIGNABLE,
    EditClaim,
    KeyFiles,
    SigningKey,
    keygen,
    sign_file,
    signable,
    verify_file,
)
from media import write_video

pytest.importorskip("c2pa", reason="the provenance extra is not installed")
x509 = pytest.importorskip("cryptography.x509")

INPUT_SHA = hashlib.sha256(b"the original footage").hexdigest()
# Numbers in arrays, some above 255: the SDK's JSON report mangles such arrays (c2pa-rs issue 2570), the record
# must come back exactly.
RECORD = {"frames": 10, "tracks": [{"id": 1, "frames": [0, 9]}], "box": [12, 300, 96, 1024], "scores": [0.5, 0.25]}
PARAMETERS = {"model": "fvr-fast", "weights_sha256": "ab" * 32, "strength": 1.0, "size": [512, 512]}


def _claim(title: str = "clip.restored.mp4", input_format: str = "video/x-matroska") -> EditClaim:
    return EditClaim(title=title, input_title="clip.mkv", input_sha256=INPUT_SHA, input_format=input_format,
                     software="fvr", version="0.1.0", description="faces restored by fvr-fast (strength 1.0), 1 face "
                     "track", parameters=PARAMETERS, record=RECORD)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(tmp_path_factory.mktemp("keys") / "signer")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(tmp_path_factory.mktemp("other") / "signer", name="someone else")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = np.random.default_rng(0).integers(0, 256, (10, 96, 128, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.restored.mp4", frames)


@pytest.fixture(scope="module")
def signed(clip: Path, keys: KeyFiles) -> Path:
    """The clip signed as fvr signs an output: into a temporary name, then renamed."""
    tmp = clip.with_name(f".{clip.name}.fvr-tmp")
    sign_file(clip, tmp, _claim(), SigningKey(keys.cert, keys.key))
    out = clip.with_name("signed.mp4")
    os.replace(tmp, out)
    return out


def _box_payload(data: bytes, kind: bytes) -> tuple[int, int]:
    """(start, end) of the payload of the first top-level ISO BMFF box of this type."""
    pos = 0
    while pos + 8 <= len(data):
        size, header = int.from_bytes(data[pos:pos + 4], "big"), 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if data[pos + 4:pos + 8] == kind:
            return pos + header, pos + size
        pos += size
    raise AssertionError(f"no {kind!r} box")


def test_signable_by_suffix_in_any_case() -> None:
    assert signable("a.mp4") and signable("A.MOV") and signable(Path("x/y.JPeG")) and signable("p.png")
    assert not signable("a.mkv") and not signable("a.webm") and not signable("frames")
    assert SIGNABLE[".m4v"] == "video/mp4" and SIGNABLE[".mov"] == "video/quicktime"


def test_keygen_writes_a_private_key_and_its_chain(tmp_path: Path) -> None:
    files = keygen(tmp_path / "new" / "signer", name="my test signer", days=30)
    assert files == KeyFiles(cert=tmp_path / "new" / "signer" / "cert.pem", key=tmp_path / "new" / "signer" / "key.pem")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.parent.stat().st_mode) == 0o700
    assert files.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    leaf, root = x509.load_pem_x509_certificates(files.cert.read_bytes())
    assert leaf.issuer == root.subject and "my test signer" in leaf.subject.rfc4514_string()
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 30
    assert sorted(os.listdir(files.cert.parent)) == ["cert.pem", "key.pem"]  # no temporary file left
    chain, key, alg = SigningKey(files.cert, files.key).load()
    assert alg == "es256" and chain.count(b"BEGIN CERTIFICATE") == 2 and b"PRIVATE KEY" in key


def test_keygen_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    files = keygen(tmp_path)
    before = files.key.read_bytes()
    with pytest.raises(OutputError, match="already exists") as err:
        keygen(tmp_path)
    assert "\n" not in str(err.value)
    assert files.key.read_bytes() == before
    keygen(tmp_path, overwrite=True)
    assert files.key.read_bytes() != before
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_signed_mp4_is_trusted_with_its_certificate(signed: Path, keys: KeyFiles) -> None:
    result = verify_file(signed, trust=[keys.cert])
    assert result.state == "trusted" and result.ok and result.failures == ()
    assert result.signer == "fvr local test signer (fvr local test)"
    assert result.generator == "fvr 0.1.0"
    assert [action["action"] for action in result.actions] == ["c2pa.opened", "c2pa.edited"]
    edited = result.actions[1]
    assert edited["digitalSourceType"] == COMPOSITE_SOURCE_TYPE
    assert edited["softwareAgent"] == {"name": "fvr", "version": "0.1.0"}
    assert edited["description"].startswith("faces restored by fvr-fast")
    assert edited["parameters"] == PARAMETERS
    assert result.ingredients == ({"title": "clip.mkv", "format": "video/x-matroska", "relationship": "parentOf",
                                   "sha256": INPUT_SHA},)
    assert result.record == RECORD


def test_without_a_trust_anchor_the_signature_is_valid_not_trusted(signed: Path) -> None:
    result = verify_file(signed)
    assert result.state == "valid" and not result.ok
    assert any("untrusted" in failure for failure in result.failures)
    assert result.record == RECORD


def test_an_unrelated_trust_anchor_does_not_trust_the_signer(signed: Path, other_keys: KeyFiles) -> None:
    assert verify_file(signed, trust=[other_keys.cert]).state == "valid"


def test_one_changed_byte_of_video_data_makes_it_invalid(signed: Path, keys: KeyFiles, tmp_path: Path) -> None:
    data = bytearray(signed.read_bytes())
    start, end = _box_payload(bytes(data), b"mdat")
    data[(start + end) // 2] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    result = verify_file(tampered, trust=[keys.cert])
    assert result.state == "invalid" and not result.ok
    assert any("hash" in failure.lower() and "mismatch" in failure.lower() for failure in result.failures)


def test_an_unsigned_file_has_no_credentials(clip: Path) -> None:
    result = verify_file(clip)
    assert result.state == "none" and not result.ok and result.record is None


def test_png_is_signed_and_verified(keys: KeyFiles, tmp_path: Path) -> None:
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    out = tmp_path / "frame.signed.png"
    # An input of unknown type (an image folder, say) is declared as such, never read.
    sign_file(image, out, _claim("frame.png", input_format="application/octet-stream"), SigningKey(keys.cert, keys.key))
    result = verify_file(out, trust=[keys.cert])
    assert result.state == "trusted" and result.record == RECORD
    assert result.ingredients[0]["format"] == "application/octet-stream"
    assert cv2.imread(str(out)) is not None  # still a PNG


def test_unsupported_container_is_refused(keys: KeyFiles, tmp_path: Path) -> None:
    source = tmp_path / "clip.mkv"
    source.write_bytes(b"not read")
    with pytest.raises(ConfigError, match=r"\.mp4") as err:
        sign_file(source, tmp_path / "out.mkv", _claim("out.mkv"), SigningKey(keys.cert, keys.key))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.mkv").exists()


def test_signing_key_must_match_its_certificate(keys: KeyFiles, other_keys: KeyFiles, clip: Path,
                                                tmp_path: Path) -> None:
    mismatched = SigningKey(keys.cert, other_keys.key)
    with pytest.raises(ConfigError, match="does not belong"):
        mismatched.load()
    with pytest.raises(ConfigError):
        sign_file(clip, tmp_path / "out.mp4", _claim(), mismatched)
    assert not (tmp_path / "out.mp4").exists()


def test_signing_key_files_must_be_pem(keys: KeyFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        SigningKey(junk, keys.key).load()
    with pytest.raises(ConfigError, match="not a PEM private key"):
        SigningKey(keys.cert, junk).load()
    with pytest.raises(ConfigError, match="cannot read"):
        SigningKey(tmp_path / "absent.pem", keys.key).load()


def test_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=10)).not_valid_after(now - dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="expired"):
        SigningKey(tmp_path / "cert.pem", tmp_path / "key.pem").load()


def test_trust_files_must_be_pem_certificates(signed: Path, keys: KeyFiles) -> None:
    with pytest.raises(ConfigError, match="trust file"):
        verify_file(signed, trust=[keys.key])


def test_a_file_that_cannot_be_read_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        verify_file(tmp_path / "absent.mp4")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError) as err:
        verify_file(text)
    assert "\n" not in str(err.value)


def test_signed_copy_is_written_to_dest_only(signed: Path, clip: Path, keys: KeyFiles, tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    shutil.copyfile(clip, source)
    dest = tmp_path / "dest.partial"  # a temporary name without a suffix: the source's names the format
    sign_file(source, dest, _claim(), SigningKey(keys.cert, keys.key))
    assert source.read_bytes() == clip.read_bytes()
    assert verify_file(dest, trust=[keys.cert]).state == "trusted"


def test_without_the_extra_every_call_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  keys: KeyFiles, clip: Path) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` fail
    with pytest.raises(ConfigError, match=r"fvr\[provenance\]"):
        verify_file(clip)
    with pytest.raises(ConfigError, match=r"fvr\[provenance\]"):
        sign_file(clip, tmp_path / "out.mp4", _claim(), SigningKey(keys.cert, keys.key))
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError, match=r"fvr\[provenance\]"):
        keygen(tmp_path / "keys")
    with pytest.raises(ConfigError, match=r"fvr\[provenance\]"):
        SigningKey(keys.cert, keys.key).load()
