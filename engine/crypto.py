"""Field and blob encryption at rest (AES-256-GCM) with a key derived from the instance secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = b"TR1"


class FieldCipher:
    """AES-256-GCM for TOTP secrets, ID numbers, phones and photo blobs (REQ: CRY-03, PII-04).

    The key never lives in the database: it is derived from TELERAD_SECRET_KEY with HKDF.
    """

    def __init__(self, secret_key: str) -> None:
        material = secret_key.encode()
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"telerad", info=b"field-v1").derive(material)
        self._mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"telerad", info=b"index-v1").derive(material)
        self._aead = AESGCM(self._key)

    def encrypt_bytes(self, data: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return _PREFIX + nonce + self._aead.encrypt(nonce, data, aad)

    def decrypt_bytes(self, blob: bytes, aad: bytes = b"") -> bytes:
        if not blob.startswith(_PREFIX):
            raise ValueError("unknown ciphertext format")
        nonce, body = blob[3:15], blob[15:]
        return self._aead.decrypt(nonce, body, aad)

    def encrypt_str(self, text: str | None) -> str | None:
        if text is None or text == "":
            return None
        return base64.b64encode(self.encrypt_bytes(text.encode())).decode()

    def decrypt_str(self, token: str | None) -> str | None:
        if not token:
            return None
        return self.decrypt_bytes(base64.b64decode(token)).decode()

    def blind_index(self, text: str) -> str:
        """Keyed hash for equality search over an encrypted field."""
        return hmac.new(self._mac_key, text.encode(), hashlib.sha256).hexdigest()


def mask_id_number(value: str | None) -> str | None:
    """First 6 + ******** + last 4 (REQ: PII-02)."""
    if not value:
        return None
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "********" + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """3 + **** + 4 (REQ: PII-02)."""
    if not value:
        return None
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "****" + value[-4:]
