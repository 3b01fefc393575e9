"""WeChat's callback signatures and message encryption (``WXBizMsgCrypt``), for the WeChat channel.

Plain mode signs each callback with ``sha1(sorted(token, timestamp, nonce))``. The safe and
compatible modes also encrypt the message:

- key: ``base64(EncodingAESKey + "=")``, 32 bytes; AES-256-CBC with the first 16 bytes as the IV;
- plaintext: 16 random bytes, the message's length (4 bytes, big-endian), the message (UTF-8) and the
  app id, PKCS#7-padded to a multiple of **32** bytes (WeChat's block size, not AES's 16);
- ``msg_signature``: ``sha1(sorted(token, timestamp, nonce, encrypted))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.errors import KefuError

__all__ = [
    "DecryptError",
    "MessageCrypto",
    "SignatureError",
    "WeChatCryptoError",
    "check_signature",
    "signature",
]

_BLOCK = 32


class WeChatCryptoError(KefuError):
    """A callback that fails WeChat's signature or encryption checks."""


class SignatureError(WeChatCryptoError):
    """The signature does not match: the callback is not from WeChat, or the token is wrong."""


class DecryptError(WeChatCryptoError):
    """The encrypted message does not decrypt to a well-formed message for this app id."""


def signature(*parts: str) -> str:
    """WeChat's signature of some strings: the SHA-1 (hex) of their sorted concatenation."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(given: str, *parts: str) -> None:
    """Check a signature in constant time.

    Raises:
        SignatureError: ``given`` is not the signature of ``parts``.
    """
    if not hmac.compare_digest(given.lower().encode(), signature(*parts).encode()):
        raise SignatureError("the signature does not match: check KEFU_WECHAT_TOKEN")


class MessageCrypto:
    """Encrypts and decrypts messages of the safe and compatible modes, and signs them."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        """Use the account's token, 43-character EncodingAESKey and app id.

        Raises:
            ValueError: the EncodingAESKey does not decode to 32 bytes.
        """
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("the EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise ValueError("the EncodingAESKey must decode to 32 bytes (43 characters)")
        self._token = token
        self._key = key
        self._app_id = app_id.encode()

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """The ``msg_signature`` of an encrypted message."""
        return signature(self._token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Check the ``msg_signature`` of an encrypted message.

        Raises:
            SignatureError: it does not match.
        """
        check_signature(msg_signature, self._token, timestamp, nonce, encrypted)

    def encrypt(self, message: str, *, random_prefix: bytes | None = None) -> str:
        """Encrypt a message for WeChat (base64); ``random_prefix`` (16 bytes) is for test vectors only."""
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("the random prefix must be 16 bytes")
        body = message.encode()
        plain = prefix + struct.pack(">I", len(body)) + body + self._app_id
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        """Decrypt a message from WeChat.

        Raises:
            DecryptError: not base64, bad padding, a length that does not fit, or another app id.
        """
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise DecryptError("the encrypted message is not base64") from exc
        if not data or len(data) % 16:
            raise DecryptError("the encrypted message is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise DecryptError("the decrypted message has bad padding: check KEFU_WECHAT_AES_KEY")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise DecryptError("the decrypted message is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        body, app_id = plain[20 : 20 + length], plain[20 + length :]
        if len(body) != length:
            raise DecryptError("the decrypted message is shorter than its length field")
        if not hmac.compare_digest(app_id, self._app_id):
            raise DecryptError("the message is for another app id: check KEFU_WECHAT_APP_ID")
        try:
            return body.decode()
        except UnicodeDecodeError as exc:
            raise DecryptError("the decrypted message is not UTF-8") from exc

    def envelope(self, message: str, timestamp: str, nonce: str) -> str:
        """A reply XML encrypted and signed for the safe and compatible modes."""
        encrypted = self.encrypt(message)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{self.sign(timestamp, nonce, encrypted)}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
