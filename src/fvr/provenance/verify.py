"""``fvr verify``: does a restored file still hold what its provenance says? Three sources, each checked when
present: the embedded C2PA Content Credentials (signature, hash binding, signer trusted), the record next to it
(``OUT.fvr.json``: the file's sha256), and the record header in its container tags (what input, model and
settings made it).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fvr.errors import InputError, VerificationError
from fvr.provenance.credentials import Verification, signable, verify_file
from fvr.provenance.record import METADATA_KEY, file_sha256, load_record, record_path


@dataclass
class VerifyReport:
    """What ``fvr verify`` found. ``credentials``: the C2PA verification (None: the format cannot carry any, or
    the provenance extra is missing); ``record``: the sidecar record read (None: none); ``record_matches``: its
    output sha256 equals the file's (None: no record); ``embedded``: the container's record header (None: none).
    ``problems``: why it fails, one line each (empty: verified)."""

    path: Path
    credentials: Verification | None = None
    record: dict[str, Any] | None = None
    record_file: Path | None = None
    record_matches: bool | None = None
    embedded: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """VerificationError (exit 5) naming the first problem (and how many more) when verification failed."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
            raise VerificationError(f"{self.path.name}: {self.problems[0]}{more}")


def embedded_record(path: Path) -> dict[str, Any] | None:
    """The record header in a video's container tags (:data:`METADATA_KEY`), if any."""
    import av

    try:
        with av.open(str(path)) as container:
            text = container.metadata.get(METADATA_KEY)
    except (av.error.FFmpegError, OSError):
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def verify_output(path: str | Path, trust: Sequence[str | Path] = (), record: str | Path | None = None
                  ) -> VerifyReport:
    """Verify ``path`` (see the module docstring). ``trust``: PEM certificates whose chains are trusted signers
    (``fvr keygen``'s cert.pem, or an organisation's CA). ``record``: the record to check against (default:
    ``PATH.fvr.json`` when it exists). A file with Content Credentials passes when they are intact and their
    signer trusted; a file without them passes when its record's hash matches (noted as unsigned: a record alone
    can be rewritten)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    report = VerifyReport(p)
    unchecked = p.is_file() and signable(p) and importlib.util.find_spec("c2pa") is None
    if p.is_file() and signable(p):
        if unchecked:
            report.notes.append("Content Credentials not checked: the provenance extra is not installed "
                                "(pip install 'fvr[provenance]')")
        else:
            report.credentials = verify_file(p, trust)
    report.embedded = embedded_record(p) if p.is_file() else None
    sidecar = Path(record) if record is not None else record_path(p)
    if record is not None or sidecar.exists():
        report.record = load_record(sidecar)
        report.record_file = sidecar
        report.record_matches = file_sha256(p) == report.record.get("output", {}).get("sha256")
        if not report.record_matches:
            report.problems.append(f"its sha256 differs from the one its record {sidecar.name} gives: the file was "
                                   f"changed after it was written")
    creds = report.credentials
    if creds is not None and creds.state != "none":
        if creds.state == "invalid":
            why = "; ".join(creds.failures[:3]) or "no reason given"
            report.problems.insert(0, f"its Content Credentials do not match its content ({why}): the file was "
                                      f"changed after it was signed")
        elif creds.state == "valid":
            report.problems.insert(0, f"its Content Credentials are intact, but their signer {creds.signer} is not "
                                      f"trusted: pass the signer's certificate with --trust CERT.pem")
    elif report.record is None:
        what = "no fvr record" if unchecked else "no Content Credentials and no fvr record (PATH.fvr.json)"
        report.problems.append(f"it has {what}: nothing to verify")
    elif report.record_matches:
        report.notes.append("unsigned: the record's hash matches, but a record can be rewritten with the file; "
                            "sign outputs (--sign-cert/--sign-key) for tamper evidence")
    return report
