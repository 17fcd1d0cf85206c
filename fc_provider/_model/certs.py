"""Checks of a custom domain's certificate and key (``cryptography``, which paramiko already brings), so a bad pair
fails at preview instead of at the front door's reload."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID


def _public(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        return [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        return [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def covers(name: str, domain: str) -> bool:
    """RFC 6125: a wildcard stands for exactly one leftmost label."""
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return name == domain


def certificate_problems(certificate: str, private_key: str, domain: str,
                         now: Optional[dt.datetime] = None) -> list[str]:
    """What is wrong with the pair for ``domain``; empty when it can serve it. The key's text is never quoted."""
    try:
        chain = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError as exc:
        return [f"certificate is not a PEM certificate: {exc}"]
    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError):
        return ["private_key is not an unencrypted PEM private key"]
    leaf = chain[0]
    problems = []
    if _public(leaf.public_key()) != _public(key.public_key()):
        problems.append("private_key does not match the certificate (their public keys differ)")
    now = now or dt.datetime.now(dt.timezone.utc)
    if leaf.not_valid_after_utc <= now:
        problems.append(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    elif leaf.not_valid_before_utc > now:
        problems.append(f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    names = _names(leaf)
    if not any(covers(n, domain) for n in names):
        problems.append(f"the certificate is for {', '.join(names) or 'no name'}, not {domain}")
    return problems
