"""Signed C2PA Content Credentials for fvr's restored outputs.

A restored video or image is a machine edit of someone's footage. Content Credentials embed a signed manifest in
the output that says so: which file it came from (by name, type and SHA-256), that faces were replaced by a trained
model (the IPTC "composite with trained algorithmic media" source type), with which settings, and fvr's own
provenance summary. Anyone with a C2PA reader can check that the file was not altered after signing and, if they
trust the signer's certificate, who signed it.

The C2PA SDK (``c2pa-python``) and ``cryptography`` are optional (the ``provenance`` extra); they are imported when a
function needs them, so importing this module never fails.

Two SDK behaviours shape the code (c2pa-python 0.38.1, c2pa-rs 0.91):

* The input is declared as an ingredient in the manifest definition instead of being read by the SDK: inputs can be
  hours long, or in containers the SDK cannot parse (MKV, WebM, image folders), and only their name, type and
  hash are recorded.
* The SDK's JSON report of a manifest turns any array of numbers into a base64 string and truncates values above
  255 (c2pa-rs issue 2570; the stored CBOR is correct). Assertion data (the actions and fvr's record) is therefore
  read back from the SDK's crJSON report, which keeps such arrays.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO

from fvr.errors import ConfigError, InputError, OutputError, check_range, reason

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

SIGNABLE: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
"""Output suffix -> the MIME type the C2PA SDK embeds a manifest into, for the formats fvr writes (the SDK cannot
embed into MKV or WebM)."""

RECORD_LABEL = "org.fvr.restoration"
"""Label of the custom assertion that holds fvr's provenance summary."""
SHA256_KEY = "org.fvr.sha256"
"""Key of the input's SHA-256 (hex) in the ingredient's metadata."""
COMPOSITE_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
"""IPTC digital source type of footage whose faces were replaced by a trained model's output."""
UNKNOWN_FORMAT = "application/octet-stream"

_EXTRA_HINT = "Content Credentials support needs the provenance extra: pip install 'fvr[provenance]'"
# Local id that links the c2pa.opened action to the input ingredient inside the manifest definition; the SDK
# replaces it with a hashed link to the ingredient assertion when it signs.
_INPUT_ID = "fvr-input"
# The SDK's state names -> Verification.state.
_STATES = {"Trusted": "trusted", "Valid": "valid", "Invalid": "invalid"}
_ACTION_KEYS = ("action", "softwareAgent", "digitalSourceType", "description", "parameters")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# crJSON names a second instance of an assertion "label__1".
_INSTANCE_SUFFIX = re.compile(r"__\d+$")
_CERT_ORG = "fvr local test"
# Signing right after keygen must not fail on a clock that runs slightly behind the one that made the key.
_CLOCK_SKEW = dt.timedelta(minutes=5)


def signable(path: str | Path) -> bool:
    """Whether Content Credentials can be embedded in a file with this name (by suffix, any case).

    Needs neither optional package, so callers can decide before doing any work."""
    return Path(path).suffix.lower() in SIGNABLE


@dataclass(frozen=True)
class KeyFiles:
    """The files :func:`keygen` wrote: the certificate chain (PEM) and the private key (PKCS8 PEM, mode 0600)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class SigningKey:
    """A signer's certificate chain (PEM: the signing certificate first, then its issuers) and private key (PEM)."""

    cert: Path
    key: Path

    def load(self) -> tuple[bytes, bytes, str]:
        """(certificate chain PEM, PKCS8 private key PEM, C2PA algorithm name) after checking that the files are
        PEM, that the key belongs to the first certificate and that the certificate is valid now, so a bad key
        fails before any output is written, with a message naming the file."""
        _, serialization = _crypto()
        certs = _load_certificates(_read_config_file(self.cert, "signing certificate"), self.cert,
                                   "signing certificate")
        key = _load_private_key(_read_config_file(self.key, "signing key"), self.key)
        alg = _algorithm(key, self.key)
        if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
            raise ConfigError(f"signing key {self.key} does not belong to the first certificate in {self.cert}")
        _check_validity(certs[0], self.cert)
        chain = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return chain, key_pem, alg


@dataclass(frozen=True)
class EditClaim:
    """What the manifest of one restored output states (see :func:`sign_file`)."""

    title: str
    input_title: str
    input_sha256: str
    input_format: str
    software: str
    version: str
    description: str
    parameters: Mapping[str, object]
    record: Mapping[str, object]


@dataclass(frozen=True)
class Verification:
    """What a C2PA reader found in a file.

    ``state``: "trusted" (intact and signed by a certificate that chains to a trust anchor given), "valid"
    (signature and content binding intact, signer not trusted), "invalid" (``failures`` says why) or "none" (no
    manifest). ``failures``: "code: explanation" of the active manifest's failed checks (for "valid" this is the
    untrusted signer)."""

    state: str
    failures: tuple[str, ...] = ()
    signer: str | None = None
    signed_at: str | None = None
    generator: str | None = None
    actions: tuple[dict[str, Any], ...] = ()
    ingredients: tuple[dict[str, Any], ...] = ()
    record: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Intact and signed by a trusted signer."""
        return self.state == "trusted"


# --- optional packages -------------------------------------------------------------------------------------------


def _c2pa() -> Any:
    """The c2pa module, or a one-line ConfigError naming the extra to install."""
    try:
        import c2pa
    except (ImportError, OSError) as exc:  # OSError: the wheel's native library did not load
        raise ConfigError(f"{_EXTRA_HINT} ({reason(exc)})") from None
    return c2pa


def _crypto() -> tuple[ModuleType, ModuleType]:
    """(cryptography.x509, cryptography.hazmat.primitives.serialization), or the one-line ConfigError."""
    try:
        from cryptography import x509 as x509_mod
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:
        raise ConfigError(f"{_EXTRA_HINT} ({reason(exc)})") from None
    return x509_mod, serialization


# --- keys and certificates -----------------------------------------------------------------------------------------


def keygen(folder: str | Path, *, name: str = "fvr local test signer", days: int = 365,
           overwrite: bool = False) -> KeyFiles:
    """Make a local test signer: a root CA and an ES256 signing certificate it issued, both valid for ``days``.

    Writes ``folder/cert.pem`` (signing certificate, then the root) and ``folder/key.pem`` (the signing key,
    mode 0600). Outputs signed with it verify as "valid"; they are "trusted" by a reader given ``cert.pem`` as a
    trust anchor. The certificates follow the C2PA certificate profile, which the SDK enforces when signing."""
    _crypto()
    check_range("days", days, 1, None, integer=True)
    if not name.strip() or "\n" in name:
        raise ConfigError(f"signer name must be one non-empty line, got {name!r}")
    folder = Path(folder)
    files = KeyFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    if not overwrite:
        for path in (files.cert, files.key):
            if path.exists() or path.is_symlink():
                raise OutputError(f"{path} already exists; a signing key is replaced only when asked to overwrite")
    _make_private_folder(folder)
    chain_pem, key_pem = _make_test_chain(name.strip(), days)
    # Both files are written in full before either replaces an old one, so a failure never leaves a key next to a
    # certificate it does not belong to.
    key_tmp = _write_temp(files.key, key_pem, 0o600)
    try:
        cert_tmp = _write_temp(files.cert, chain_pem, 0o644)
    except BaseException:
        key_tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(key_tmp, files.key)
        os.replace(cert_tmp, files.cert)
    except OSError as exc:
        raise OutputError(f"cannot write the signing key to {folder}: {reason(exc)}") from None
    finally:
        key_tmp.unlink(missing_ok=True)
        cert_tmp.unlink(missing_ok=True)
    return files


def _make_private_folder(folder: Path) -> None:
    """Create ``folder`` readable by its owner only (an existing folder keeps its mode: it is the user's)."""
    try:
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        if not folder.is_dir():
            raise OutputError(f"{folder} exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {reason(exc)}") from None


def _write_temp(target: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a new temporary file next to ``target``, created with ``mode`` (so a key is never
    readable by others, not even between creation and a chmod)."""
    tmp = target.with_name(f".{target.name}.fvr-tmp-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {reason(exc)}") from None
    return tmp


def _make_test_chain(name: str, days: int) -> tuple[bytes, bytes]:
    """(chain PEM: signing certificate + root CA, signing key PKCS8 PEM), both certificates ECDSA P-256."""
    from cryptography import x509 as x509_mod
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def subject(common_name: str) -> x509.Name:
        return x509_mod.Name([x509_mod.NameAttribute(NameOID.ORGANIZATION_NAME, _CERT_ORG),
                              x509_mod.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509_mod.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                 encipher_only=False, decipher_only=False)

    start = dt.datetime.now(dt.timezone.utc) - _CLOCK_SKEW
    end = start + _CLOCK_SKEW + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = subject(f"{name} root CA")
    root = (x509_mod.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509_mod.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509_mod.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage(sign=False, ca=True), critical=True)
            .add_extension(x509_mod.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509_mod.CertificateBuilder().subject_name(subject(name)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509_mod.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509_mod.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign=True, ca=False), critical=True)
            # C2PA accepts a fixed set of extended key usages; email protection is the one for document signing.
            .add_extension(x509_mod.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509_mod.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509_mod.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, key_pem


def _read_config_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {reason(exc)}") from None


def _load_certificates(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a ConfigError when there is none or one is malformed)."""
    x509_mod, _ = _crypto()
    try:
        certs: list[x509.Certificate] = x509_mod.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"the {what} {path} is not a PEM certificate file") from None
    return certs


def _load_private_key(data: bytes, path: Path) -> PrivateKeyTypes:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # the key is encrypted
        raise ConfigError(f"signing key {path} is encrypted; fvr needs an unencrypted PEM key (mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"signing key {path} is not a PEM private key") from None


def _algorithm(key: PrivateKeyTypes, path: Path) -> str:
    """The C2PA signature algorithm for a key: ECDSA by curve, RSA-PSS with SHA-256, or Ed25519."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    kind = getattr(getattr(key, "curve", None), "name", None) or type(key).__name__
    raise ConfigError(f"signing key {path} is a {kind} key; C2PA signs with ECDSA P-256/P-384/P-521, RSA or Ed25519")


def _public_der(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    der: bytes = public_key.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _check_validity(cert: x509.Certificate, path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < now:
        raise ConfigError(f"signing certificate {path} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise ConfigError(f"signing certificate {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}"
                          " UTC")


# --- signing -------------------------------------------------------------------------------------------------------


def sign_file(source: str | Path, dest: str | Path, claim: EditClaim, signing: SigningKey) -> None:
    """Write a copy of ``source`` to ``dest`` with a signed C2PA manifest embedded (``dest`` is the caller's
    temporary path; it is removed again when signing fails).

    The manifest names fvr as the claim generator, records the input as the parent ingredient (by name, type and
    SHA-256, without reading it), an "opened" action on it, an "edited" action with the composite-with-trained-
    model source type, the description and parameters, and ``claim.record`` as the ``org.fvr.restoration``
    assertion. The container format comes from the suffix of ``source``, else ``dest``, else ``claim.title``
    (fvr writes outputs under temporary names such as ``.out.mp4.fvr-tmp``). No thumbnail, no time-stamp
    authority, no network access."""
    source, dest = Path(source), Path(dest)
    mime = _format_of(source, dest, claim.title)
    c2pa = _c2pa()
    manifest = _manifest(claim)
    chain, key, alg = signing.load()
    if source.resolve() == dest.resolve():
        raise OutputError(f"cannot sign {source} in place: the signed copy needs another path")
    settings = {
        "builder": {"thumbnail": {"enabled": False}},
        # Trust is the reader's decision (see verify_file); signing checks only that the manifest is well formed.
        "verify": {"verify_trust": False, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    src, dst = _open_pair(source, dest)
    try:
        with src, dst, c2pa.Context.from_dict(settings) as context, \
                c2pa.Signer.from_info(c2pa.C2paSignerInfo(getattr(c2pa.C2paSigningAlg, alg.upper()), chain, key,
                                                          None)) as signer, \
                c2pa.Builder(manifest, context=context) as builder:
            builder.sign(signer, mime, src, dst)
    except (OSError, c2pa.C2paError) as exc:
        dest.unlink(missing_ok=True)  # a half-written copy must not be mistaken for a signed output
        detail = f"{dest}: {reason(exc)}" if isinstance(exc, OSError) else _one_line(exc)
        raise OutputError(f"cannot sign {claim.title}: {detail}") from None


def _open_pair(source: Path, dest: Path) -> tuple[BinaryIO, BinaryIO]:
    """``source`` opened for reading and ``dest`` created for the signed copy (readable too: the SDK's stream
    interface may seek and read back in the copy it writes)."""
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise OutputError(f"cannot read {source} to sign it: {reason(exc)}") from None
    try:
        dst = open(dest, "w+b")
    except OSError as exc:
        src.close()
        raise OutputError(f"cannot write {dest}: {reason(exc)}") from None
    return src, dst


def _format_of(source: Path, dest: Path, title: str) -> str:
    """The MIME type to sign as: from the first of the names with a signable suffix (they must agree)."""
    mimes = [SIGNABLE[Path(p).suffix.lower()] for p in (source, dest, title) if signable(p)]
    if not mimes:
        supported = ", ".join(SIGNABLE)
        raise ConfigError(f"cannot add Content Credentials to {title}: only {supported} files can carry them")
    if len(set(mimes)) > 1:
        raise ConfigError(f"cannot sign {source.name} as {title}: the names give different formats "
                          f"({', '.join(sorted(set(mimes)))})")
    return mimes[0]


def _manifest(claim: EditClaim) -> dict[str, Any]:
    """The manifest definition the SDK signs (checked to be plain JSON first, for a clear error)."""
    sha = claim.input_sha256.strip().lower()
    if not _HEX64.fullmatch(sha):
        raise ConfigError(f"input SHA-256 must be 64 hex digits, got {claim.input_sha256!r}")
    agent = {"name": claim.software, "version": claim.version}
    edited: dict[str, Any] = {"action": "c2pa.edited", "digitalSourceType": COMPOSITE_SOURCE_TYPE,
                              "softwareAgent": agent, "description": claim.description}
    if claim.parameters:
        edited["parameters"] = dict(claim.parameters)
    manifest = {
        "claim_generator_info": [agent],
        "title": claim.title,
        "ingredients": [{
            "title": claim.input_title,
            "format": claim.input_format or UNKNOWN_FORMAT,
            "relationship": "parentOf",
            "label": _INPUT_ID,
            "description": f"sha256:{sha}",
            "metadata": {SHA256_KEY: sha},
        }],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.opened", "parameters": {"ingredientIds": [_INPUT_ID]}},
                edited,
            ]}},
            {"label": RECORD_LABEL, "data": dict(claim.record)},
        ],
    }
    try:
        json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the Content Credentials of {claim.title} must be plain JSON: {reason(exc)}") from None
    return manifest


# --- verification --------------------------------------------------------------------------------------------------


def verify_file(path: str | Path, trust: Sequence[str | Path] = ()) -> Verification:
    """Read and check the Content Credentials embedded in ``path``.

    ``trust``: PEM files of certificates to accept as trust anchors (for fvr's test signer, its ``cert.pem``);
    without them a correctly signed file is "valid", not "trusted". Nothing is fetched from the network (no
    remote manifests, no OCSP)."""
    c2pa = _c2pa()
    path = Path(path)
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    anchors = _trust_anchors(trust)
    if anchors:
        settings["trust"] = {"user_anchors": anchors}
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {reason(exc)}") from None
    with stream, c2pa.Context.from_dict(settings) as context:
        try:
            # A known suffix tells the SDK the container; otherwise it detects it from the bytes.
            reader = c2pa.Reader.try_create(SIGNABLE.get(path.suffix.lower()), stream, context=context)
        except c2pa.C2paError as exc:
            if _damaged_manifest(c2pa, exc):
                return Verification(state="invalid", failures=(_unreadable_manifest(exc),))
            raise InputError(f"cannot read Content Credentials from {path}: {_one_line(exc)}") from None
        if reader is None:
            return Verification(state="none")
        with reader:
            return _verification(reader)


def _damaged_manifest(c2pa: Any, exc: Exception) -> bool:
    """Whether the SDK found a manifest it cannot make sense of (an altered or damaged one: the file is not what
    was signed), as opposed to a file it cannot read at all (unsupported, truncated, not the format named)."""
    kinds = ("Assertion", "AssertionNotFound", "Decoding", "Json", "Manifest", "Signature", "Verify")
    return isinstance(exc, tuple(getattr(c2pa.C2paError, kind) for kind in kinds if hasattr(c2pa.C2paError, kind)))


def _unreadable_manifest(exc: Exception) -> str:
    """A failure line ("code: explanation") for a manifest the SDK could not read (its message is often only the
    error kind)."""
    kind, _, detail = _one_line(exc).partition(":")
    return f"manifest.unreadable: the embedded manifest is damaged or altered ({kind.strip()}" + \
        (f": {detail.strip()})" if detail.strip() else ")")


def _trust_anchors(trust: Sequence[str | Path]) -> str:
    """The trust files' certificates as one PEM text (each file checked, so a wrong path is not silently
    'untrusted')."""
    if isinstance(trust, (str, Path)):
        trust = [trust]  # one path given where a list was meant
    if not trust:
        return ""
    _, serialization = _crypto()
    pems = []
    for item in trust:
        file = Path(item)
        for cert in _load_certificates(_read_config_file(file, "trust file"), file, "trust file"):
            pems.append(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return "".join(pems)


def _verification(reader: Any) -> Verification:
    manifest = reader.get_active_manifest() or {}
    results = reader.get_validation_results() or {}
    raw_state = reader.get_validation_state()
    state = _STATES.get(raw_state, "invalid")
    failures = _failures(results)
    if state == "invalid" and not failures:
        failures = (f"validation: the SDK reports the state {raw_state!r}",)
    assertions = _assertions(reader, manifest)
    record = next((data for data in assertions.get(RECORD_LABEL, []) if isinstance(data, dict)), None)
    signature = manifest.get("signature_info") or {}
    return Verification(
        state=state,
        failures=failures,
        signer=_signer(signature),
        signed_at=signature.get("time"),
        generator=_generator(manifest),
        actions=tuple(_actions(assertions)),
        ingredients=tuple(_ingredient(item) for item in manifest.get("ingredients") or []),
        record=record,
    )


def _failures(results: Mapping[str, Any]) -> tuple[str, ...]:
    """"code: explanation" of the active manifest's failures; when only ingredient checks failed, those (the
    state is then "invalid" for a reason the active manifest does not list)."""
    entries = list((results.get("activeManifest") or {}).get("failure") or [])
    if not entries:
        for delta in results.get("ingredientDeltas") or []:
            entries += (delta.get("validationDeltas") or {}).get("failure") or []
    return tuple(f"{item.get('code', '?')}: {_one_line(item.get('explanation', ''))}" for item in entries)


def _assertions(reader: Any, manifest: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Label -> data of each assertion of the active manifest, from the crJSON report where it has them (exact
    numeric arrays, see the module docstring), else from the JSON report."""
    found: dict[str, list[Any]] = {}
    for item in manifest.get("assertions") or []:
        found.setdefault(str(item.get("label")), []).append(item.get("data"))
    exact: dict[str, list[Any]] = {}
    try:
        report = json.loads(reader.crjson())
    except Exception:  # an older or failing crJSON export: the JSON report is all there is
        return found
    for entry in report.get("manifests") or []:
        if entry.get("label") == manifest.get("label"):
            for label, data in (entry.get("assertions") or {}).items():
                exact.setdefault(_INSTANCE_SUFFIX.sub("", label), []).append(data)
    return {**found, **exact}


def _signer(signature: Mapping[str, Any]) -> str | None:
    name, issuer = signature.get("common_name"), signature.get("issuer")
    if name and issuer:
        return f"{name} ({issuer})"
    return name or issuer or None


def _generator(manifest: Mapping[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        return " ".join(str(info[0][key]) for key in ("name", "version") if info[0].get(key))
    return manifest.get("claim_generator") or None  # C2PA 1.x manifests name the generator in one string


def _actions(assertions: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    actions = []
    for label, instances in assertions.items():
        if label == "c2pa.actions" or label.startswith("c2pa.actions.v"):
            for data in instances:
                for action in (data or {}).get("actions") or []:
                    actions.append({key: action[key] for key in _ACTION_KEYS if key in action})
    return actions


def _ingredient(item: Mapping[str, Any]) -> dict[str, Any]:
    """Title, format, relationship and SHA-256 of an ingredient (the hash from fvr's metadata, else from a
    "sha256:<hex>" description; None when neither is there)."""
    sha = (item.get("metadata") or {}).get(SHA256_KEY)
    description = item.get("description") or ""
    if not sha and isinstance(description, str) and description.startswith("sha256:"):
        sha = description.removeprefix("sha256:")
    return {"title": item.get("title"), "format": item.get("format"), "relationship": item.get("relationship"),
            "sha256": sha or None}


def _one_line(message: object) -> str:
    """An SDK message (an exception or an explanation) on one line: its validation errors span several."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text or (type(message).__name__ if isinstance(message, BaseException) else "")
