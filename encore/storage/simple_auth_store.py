"""A wrapper that puts username/password authentication in front of any store.

:class:`SimpleAuthStore` wraps a store that has no notion of authentication.
A user connects with a username and password; the password is checked against
a *user record* kept under the key ``user_key_path + username`` (``'.user_'``
by default) of the user-key store.  Authenticated users then have full access
to all keys; subclasses refine this by overriding
:meth:`SimpleAuthStore.check_permissions`.  It may be used as a base for more
complex and fine-grained authentication.

Password records
----------------
The recommended records are made by a slow, salted key-derivation function
with a fresh random salt per record, and say how they were made::

    $scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>
    $pbkdf2-sha256$600000$<salt, base64>$<hash, base64>

Create and change them with :func:`set_user_password` (or
:meth:`SimpleAuthStore.change_password`); :func:`recommended_encoder` returns
the encoder it uses by default.  Records whose data does not start with one of
these prefixes are *legacy* records made by the original EnCore: the data is
``encoder(password)``, typically ``make_encoder(salt)(password)``, a SHA-1
of a global salt and the password.  They are still accepted, so existing user
stores keep working, but they are weak (fast, unsalted per user): rewrite them
with :func:`set_user_password`.  Every comparison is constant-time
(:func:`hmac.compare_digest`).

Security model
--------------
* Unauthenticated users see an empty store: every read raises
  :class:`KeyError`, ``exists`` is False and queries are empty.  Users
  without a right on a key they may see get :class:`AuthenticationError`.
* User records are invisible through the store: keys starting with
  ``user_key_path`` in the wrapped store are never listed by ``query``,
  ``query_keys`` or ``glob``, ``exists`` is False for them, reading or
  deleting them raises :class:`KeyError` and writing them raises
  :class:`AuthenticationError`, so no user can read or overwrite another's
  record.  Administrators write records directly into the user-key store.
* Authentication is checked on every operation against the *current*
  record: changing a user's password or deleting the record ends the
  sessions authenticated with the old one.  (The password itself is
  verified once, at ``connect``; later operations compare the record bytes.)
* Unknown users and wrong passwords fail in the same way; an unknown user
  still runs the configured encoder's check, so both take about the same time
  as long as the encoder makes records of the kind the store holds (a legacy
  encoder in front of KDF records answers unknown users faster).  An empty
  password never authenticates.

Events come from the wrapped store, with the wrapped store as ``source``;
by default the wrapper uses the wrapped store's event manager.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractStore,
    Value,
    check_key,
)

__all__ = [
    "AuthenticationError",
    "sha1_hasher",
    "make_encoder",
    "PBKDF2Encoder",
    "ScryptEncoder",
    "recommended_encoder",
    "verify_password",
    "set_user_password",
    "SimpleAuthStore",
]

#: The rights :meth:`SimpleAuthStore.check_permissions` may grant.
ALL_PERMISSIONS = frozenset({"connect", "exists", "get", "set", "delete"})

# A user record is a few hundred bytes; refuse to read more than this.
_MAX_RECORD_SIZE = 65536


class AuthenticationError(Exception):
    """Raised when a user cannot connect, or may see a key but lacks the right to use it."""


# ---------------------------------------------------------------------------
# Legacy encoders (records made by the original EnCore)


def sha1_hasher(s: bytes) -> bytes:
    """A simple utility function for producing a SHA-1 digest of a string.

    Parameters
    ----------
    s : bytes or str
        The string to hash (a str is UTF-8 encoded).

    Returns
    -------
    digest : bytes
        The raw 20-byte digest.
    """
    if isinstance(s, str):
        s = s.encode("utf-8")
    return hashlib.sha1(s).digest()


def make_encoder(salt: bytes, hasher: Callable[[bytes], bytes] | None = None) -> Callable:
    """Create a salted encoder: ``encoder(password) == hasher(salt + password)``.

    This reads and writes records in the original EnCore format.  It is weak
    (one fast hash and a salt shared by every user): prefer
    :func:`recommended_encoder` for new records.

    Parameters
    ----------
    salt : bytes
        A salt that is added to the user-supplied password before hashing.
        It should be kept secret, and the same salt must be used every time.
    hasher : callable, optional
        Takes bytes and returns a cryptographic hash of them;
        :func:`sha1_hasher` by default.
    """
    if isinstance(salt, str):
        salt = salt.encode("utf-8")
    if not isinstance(salt, (bytes, bytearray)):
        raise TypeError(f"salt must be bytes, not {type(salt).__name__}")
    salt = bytes(salt)
    if hasher is None:
        hasher = sha1_hasher

    def encoder(password: bytes) -> bytes:
        if isinstance(password, str):
            password = password.encode("utf-8")
        return hasher(salt + password)

    return encoder


# ---------------------------------------------------------------------------
# Key-derivation encoders (recommended)


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def _unb64(text: bytes) -> bytes:
    return base64.b64decode(text, validate=True)


def _to_bytes(password: Any) -> bytes:
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, (bytes, bytearray)):
        return bytes(password)
    raise TypeError(f"password must be str or bytes, not {type(password).__name__}")


class PBKDF2Encoder:
    """Make and check ``$pbkdf2-<hash>$`` password records with a random salt each.

    Parameters
    ----------
    iterations : int
        PBKDF2 iterations (600 000 by default, the OWASP 2023 figure for
        SHA-256).
    hash_name : str
        ``'sha256'`` or ``'sha512'``.
    salt_size : int
        Bytes of random salt per record.

    Notes
    -----
    Calling the encoder returns a new record (a new salt each time), so
    records cannot be compared for equality: use :meth:`verify`.
    """

    prefix = b"$pbkdf2-"
    #: Bounds accepted when reading a record, so a crafted record cannot
    #: make verification run for hours.
    max_iterations = 10_000_000
    hash_names = ("sha256", "sha512")

    def __init__(self, iterations: int = 600_000, hash_name: str = "sha256",
                 salt_size: int = 16) -> None:
        if hash_name not in self.hash_names:
            raise ValueError(f"hash_name must be one of {self.hash_names}, not {hash_name!r}")
        if not 1 <= iterations <= self.max_iterations:
            raise ValueError(f"iterations must be in 1..{self.max_iterations}")
        if salt_size < 8:
            raise ValueError("salt_size must be at least 8 bytes")
        self.iterations = iterations
        self.hash_name = hash_name
        self.salt_size = salt_size

    def __call__(self, password: bytes) -> bytes:
        """Return a new record for *password*."""
        salt = os.urandom(self.salt_size)
        digest = hashlib.pbkdf2_hmac(self.hash_name, _to_bytes(password), salt, self.iterations)
        return b"$pbkdf2-%s$%d$%s$%s" % (
            self.hash_name.encode(), self.iterations, _b64(salt), _b64(digest))

    @classmethod
    def verify(cls, password: bytes, record: bytes) -> bool:
        """Whether *password* matches a ``$pbkdf2-`` *record* (False if malformed)."""
        match = re.fullmatch(rb"\$pbkdf2-(\w+)\$(\d{1,9})\$([^$]+)\$([^$]+)", record)
        if match is None:
            return False
        hash_name = match.group(1).decode("ascii")
        iterations = int(match.group(2))
        if hash_name not in cls.hash_names or not 1 <= iterations <= cls.max_iterations:
            return False
        try:
            salt, expected = _unb64(match.group(3)), _unb64(match.group(4))
        except binascii.Error:
            return False
        digest = hashlib.pbkdf2_hmac(hash_name, _to_bytes(password), salt, iterations)
        return hmac.compare_digest(digest, expected)


class ScryptEncoder:
    """Make and check ``$scrypt$`` password records with a random salt each.

    Parameters
    ----------
    n, r, p : int
        The scrypt cost parameters (``n`` a power of two); the defaults use
        16 MiB of memory.
    salt_size : int
        Bytes of random salt per record.

    Notes
    -----
    Needs :func:`hashlib.scrypt` (OpenSSL 1.1 or later).  Calling the encoder
    returns a new record each time: use :meth:`verify` to check one.
    """

    prefix = b"$scrypt$"
    #: Bounds accepted when reading a record (about 1 GiB of memory at most).
    max_n = 2**20
    max_r = 32
    max_p = 16
    _max_memory = 1 << 30

    def __init__(self, n: int = 2**14, r: int = 8, p: int = 1, salt_size: int = 16) -> None:
        if not hasattr(hashlib, "scrypt"):
            raise RuntimeError("hashlib.scrypt is not available; use PBKDF2Encoder")
        if not self._valid(n, r, p):
            raise ValueError("n must be a power of two in 2..2**20, r in 1..32 and p in 1..16")
        if salt_size < 8:
            raise ValueError("salt_size must be at least 8 bytes")
        self.n, self.r, self.p = n, r, p
        self.salt_size = salt_size

    @classmethod
    def _valid(cls, n: int, r: int, p: int) -> bool:
        return (2 <= n <= cls.max_n and n & (n - 1) == 0 and 1 <= r <= cls.max_r
                and 1 <= p <= cls.max_p and 128 * r * n * p <= cls._max_memory)

    @staticmethod
    def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        # maxmem must cover 128*r*n*p plus OpenSSL's working space.
        return hashlib.scrypt(_to_bytes(password), salt=salt, n=n, r=r, p=p,
                              maxmem=128 * r * n * p + (1 << 20), dklen=32)

    def __call__(self, password: bytes) -> bytes:
        """Return a new record for *password*."""
        salt = os.urandom(self.salt_size)
        digest = self._derive(password, salt, self.n, self.r, self.p)
        return b"$scrypt$n=%d,r=%d,p=%d$%s$%s" % (self.n, self.r, self.p, _b64(salt), _b64(digest))

    @classmethod
    def verify(cls, password: bytes, record: bytes) -> bool:
        """Whether *password* matches a ``$scrypt$`` *record* (False if malformed)."""
        match = re.fullmatch(rb"\$scrypt\$n=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([^$]+)\$([^$]+)",
                             record)
        if match is None or not hasattr(hashlib, "scrypt"):
            return False
        n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if not cls._valid(n, r, p):
            return False
        try:
            salt, expected = _unb64(match.group(4)), _unb64(match.group(5))
        except binascii.Error:
            return False
        return hmac.compare_digest(cls._derive(password, salt, n, r, p), expected)


def recommended_encoder() -> ScryptEncoder | PBKDF2Encoder:
    """Return the encoder :func:`set_user_password` uses by default.

    A :class:`ScryptEncoder` where :func:`hashlib.scrypt` exists, else a
    :class:`PBKDF2Encoder`.
    """
    if hasattr(hashlib, "scrypt"):
        return ScryptEncoder()
    return PBKDF2Encoder()


def verify_password(password: bytes, record: bytes, encoder: Callable | None = None) -> bool:
    """Whether *password* matches a user *record*, in constant time.

    Records made by :class:`ScryptEncoder` or :class:`PBKDF2Encoder` are
    checked with the parameters they carry; any other record is a legacy one
    and matches if ``encoder(password)`` equals it.  An empty password never
    matches.

    Parameters
    ----------
    password : bytes or str
        The password to check.
    record : bytes
        The data of the user record.
    encoder : callable, optional
        The encoder for legacy records; without one they never match.
    """
    password = _to_bytes(password)
    if not password or not isinstance(record, (bytes, bytearray)):
        return False
    record = bytes(record)
    if record.startswith(ScryptEncoder.prefix):
        return ScryptEncoder.verify(password, record)
    if record.startswith(PBKDF2Encoder.prefix):
        return PBKDF2Encoder.verify(password, record)
    if encoder is None:
        return False
    verify = getattr(encoder, "verify", None)
    if verify is not None:
        # A custom self-describing encoder: it knows its own records.
        return bool(verify(password, record))
    token = encoder(password)
    if not isinstance(token, (bytes, bytearray)):
        return False
    return hmac.compare_digest(bytes(token), record)


def _check_username(username: Any) -> None:
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, not {type(username).__name__}")
    if not username:
        raise ValueError("username must not be empty")


def set_user_password(user_key_store: Any, username: str, password: str,
                      encoder: Callable | None = None, user_key_path: str = ".user_") -> None:
    """Create or change the record of a user, directly in the user-key store.

    This is the administrator's tool: it writes ``user_key_path + username``
    in *user_key_store* (the wrapped store, unless the
    :class:`SimpleAuthStore` was given a separate ``user_key_store``), which
    users cannot do through a :class:`SimpleAuthStore`.

    Parameters
    ----------
    user_key_store : AbstractStore
        The store holding the user records.
    username : str
        The user's name (not empty).
    password : str or bytes
        The new password (not empty).
    encoder : callable, optional
        Makes the record; :func:`recommended_encoder` by default.  A legacy
        encoder from :func:`make_encoder` also works but is not recommended.
    user_key_path : str
        The prefix of user-record keys.

    Raises
    ------
    ValueError
        If the username or password is empty.
    """
    _check_username(username)
    password = _to_bytes(password)
    if not password:
        raise ValueError("password must not be empty")
    if encoder is None:
        encoder = recommended_encoder()
    record = encoder(password)
    user_key_store.set(user_key_path + username, (io.BytesIO(record), {}))


# ---------------------------------------------------------------------------
# The store


class SimpleAuthStore(AbstractStore):
    """A key-value store that wraps another store and implements simple authentication.

    It wraps an existing store with no notion of authentication and provides
    username/password authentication, checking the password against a user
    record kept in the wrapped store (or in ``user_key_store``).  The base
    implementation is all-or-nothing: an authenticated user has every right
    on every key.  See :mod:`encore.storage.simple_auth_store` for the record
    formats and the security model.

    Parameters
    ----------
    store : AbstractStore
        The wrapped store that actually holds the data.
    encoder : callable
        Computes the password hash of legacy records, e.g.
        ``make_encoder(salt)``; a :class:`ScryptEncoder` or
        :class:`PBKDF2Encoder` for stores with only modern records.  Modern
        records are checked whatever the encoder.
    user_key_path : str
        The prefix put before the username for the keys that hold the
        user records.  Keys with this prefix in the wrapped store are
        reserved: invisible and not writable through this store.
    user_key_store : AbstractStore, optional
        The store holding the user records; the wrapped store by default.
    event_manager : BaseEventManager, optional
        The manager of this store; the wrapped store's by default.

    Attributes
    ----------
    store, encoder, user_key_path, user_key_store
        As given.
    username : str or None
        The authenticated user, or None.

    Notes
    -----
    Use one instance per user session; connecting and disconnecting are not
    meant to race with operations from other threads.  Operations themselves
    are as thread-safe as the wrapped store.
    """

    def __init__(self, store: Any, encoder: Callable, user_key_path: str = ".user_",
                 user_key_store: Any = None, event_manager: Any = None) -> None:
        for name in ("get", "query", "set", "delete"):
            if not callable(getattr(store, name, None)):
                raise TypeError(f"{store!r} is not a writable key-value store: no {name}()")
        if not callable(encoder):
            raise TypeError("encoder must be callable")
        if not isinstance(user_key_path, str):
            raise TypeError(f"user_key_path must be a str, not {type(user_key_path).__name__}")
        if user_key_store is None:
            user_key_store = store
        if user_key_store is store and not user_key_path:
            raise ValueError("user_key_path must not be empty when user records live "
                             "in the wrapped store")
        if event_manager is None:
            event_manager = getattr(store, "event_manager", None)
        super().__init__(event_manager)
        self.store = store
        self.encoder = encoder
        self.user_key_path = user_key_path
        self.user_key_store = user_key_store
        self.username: str | None = None
        self._record: bytes | None = None
        self._connected_children: list[Any] = []
        self._dummy: tuple[Callable, bytes] | None = None

    # -- authentication ------------------------------------------------------

    def _user_key(self, username: str) -> str:
        return self.user_key_path + username

    def _is_reserved(self, key: str) -> bool:
        return bool(self.user_key_path) and key.startswith(self.user_key_path)

    def _read_record(self, username: str) -> bytes | None:
        try:
            with self.user_key_store.get_data(self._user_key(username)) as data:
                record = data.read(_MAX_RECORD_SIZE + 1)
        except KeyError:
            return None
        if not isinstance(record, (bytes, bytearray)) or len(record) > _MAX_RECORD_SIZE:
            return None
        return bytes(record)

    def _dummy_verify(self, password: bytes) -> None:
        # Spend about the time a real check would, so a missing user cannot
        # be told from a wrong password by timing.
        encoder = self.encoder
        if self._dummy is None or self._dummy[0] is not encoder:
            self._dummy = (encoder, bytes(encoder(b"not a password")))
        verify_password(password, self._dummy[1], encoder)

    def connect(self, credentials: Mapping[str, str] | None = None) -> None:
        """Authenticate a user, connecting the wrapped stores if needed.

        Parameters
        ----------
        credentials : dict
            A dictionary with keys ``'username'`` and ``'password'`` (str).

        Raises
        ------
        AuthenticationError
            If the user is unknown, the password is wrong or empty, or the
            user lacks the ``'connect'`` permission.  The store is then left
            unauthenticated (a previous user is logged out too).
        TypeError
            If *credentials* is not such a dictionary.
        """
        self._forget()
        if not isinstance(credentials, Mapping):
            raise TypeError("credentials must be a dict with 'username' and 'password'")
        username = credentials.get("username")
        password = credentials.get("password")
        _check_username(username)
        if not isinstance(password, (str, bytes)):
            raise TypeError("credentials must have a 'password' str")
        password_bytes = _to_bytes(password)
        connected_now = []
        try:
            for child in (self.store, self.user_key_store):
                if not any(child is seen for seen in connected_now) and not child.is_connected():
                    child.connect()
                    connected_now.append(child)
            record = self._read_record(username)
            if record is None:
                self._dummy_verify(password_bytes)
                valid = False
            else:
                valid = verify_password(password_bytes, record, self.encoder)
            if valid:
                self.username, self._record = username, record
                valid = "connect" in self.check_permissions()
            if not valid:
                raise AuthenticationError(f'User "{username}" is not authenticated for connection')
        except BaseException:
            self._forget()
            for child in reversed(connected_now):
                child.disconnect()
            raise
        self._connected_children = connected_now
        self._connected = True

    def _forget(self) -> None:
        self.username = None
        self._record = None
        self._connected = False

    def disconnect(self) -> None:
        """Log the user out; disconnect the stores that ``connect`` connected.

        The wrapped store is kept, so the store can connect again.
        """
        self._forget()
        children, self._connected_children = self._connected_children, []
        for child in reversed(children):
            child.disconnect()

    def is_connected(self) -> bool:
        """Whether a user is authenticated and the wrapped store connected."""
        return self._record is not None and self.store.is_connected()

    def change_password(self, old_password: str, new_password: str) -> None:
        """Change the authenticated user's password.

        The new record is made with :attr:`encoder` if it makes modern
        records, else with :func:`recommended_encoder`.  The session stays
        authenticated.

        Raises
        ------
        AuthenticationError
            If no user is authenticated or *old_password* is wrong.
        ValueError
            If *new_password* is empty.
        """
        username = self.username
        record = self._read_record(username) if username is not None else None
        if record is None or not verify_password(_to_bytes(old_password), record, self.encoder):
            raise AuthenticationError("the current password is wrong or no user is connected")
        encoder = self.encoder if hasattr(self.encoder, "verify") else None
        set_user_password(self.user_key_store, username, new_password, encoder,
                          self.user_key_path)
        self._record = self._read_record(username)

    def check_permissions(self, key: str | None = None) -> set[str]:
        """Return the permissions that the user has for the provided key.

        The default gives an authenticated user every permission on every
        key, as long as the user's record is the one that was verified at
        ``connect`` (compared in constant time).  Subclasses may implement
        finer-grained controls, per key or per user, by overriding this.

        Parameters
        ----------
        key : str or None
            The key which the permissions are requested for, or None for the
            global permissions.

        Returns
        -------
        permissions : set of str
            Chosen from ``'connect'``, ``'exists'``, ``'get'``, ``'set'`` and
            ``'delete'``.
        """
        verified = self._record
        if verified is None or self.username is None:
            return set()
        current = self._read_record(self.username)
        if current is None or not hmac.compare_digest(current, verified):
            return set()
        return set(ALL_PERMISSIONS)

    def _require(self, key: str, right: str, verb: str) -> None:
        """Raise unless the user may use *right* on *key*.

        KeyError when the user may not even see the key (or it is a user
        record, outside writes); AuthenticationError when the user sees it but
        lacks the right, or tries to write a user record.
        """
        check_key(key)
        permissions = self.check_permissions(key)
        if "exists" not in permissions:
            raise KeyError(key)
        if self._is_reserved(key):
            if right == "set":
                raise AuthenticationError(f'User "{self.username}" is not permitted to {verb} '
                                          f'"{key}": keys starting with {self.user_key_path!r} '
                                          "hold user records")
            raise KeyError(key)
        if right not in permissions:
            raise AuthenticationError(
                f'User "{self.username}" is not permitted to {verb} "{key}"')

    # -- reading -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Return the wrapped store's information."""
        return dict(self.store.info())

    def exists(self, key: str) -> bool:
        """Whether *key* exists and the user may see it (never for user records)."""
        check_key(key)
        if self._is_reserved(key) or "exists" not in self.check_permissions(key):
            return False
        return self.store.exists(key)

    def get(self, key: str) -> Value:
        """Retrieve the value of *key*.

        Raises
        ------
        KeyError
            If the key does not exist or the user may not see it.
        AuthenticationError
            If the user has no right to get the key.
        """
        self._require(key, "get", "get")
        return self.store.get(key)

    def get_data(self, key: str) -> Any:
        """Retrieve the data of *key* (errors as :meth:`get`)."""
        self._require(key, "get", "get")
        return self.store.get_data(key)

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Retrieve bytes ``start <= i < end`` of *key* (errors as :meth:`get`)."""
        self._require(key, "get", "get")
        return self.store.get_data_range(key, start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Retrieve the metadata of *key* (errors as :meth:`get`)."""
        self._require(key, "get", "get")
        return self.store.get_metadata(key, select)

    def _visible(self, keys_and_items: Iterable[Any], key_of: Callable) -> Iterator[Any]:
        if type(self).check_permissions is SimpleAuthStore.check_permissions:
            # The default permissions do not depend on the key: check once.
            if "exists" not in self.check_permissions():
                return
            for item in keys_and_items:
                if not self._is_reserved(key_of(item)):
                    yield item
            return
        for item in keys_and_items:
            key = key_of(item)
            if not self._is_reserved(key) and "exists" in self.check_permissions(key):
                yield item

    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the matching keys the user may see (never user records)."""
        return self._visible(self.store.query(select, **kwargs), lambda item: item[0])

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield the matching keys the user may see (never user records)."""
        return self._visible(self.store.query_keys(**kwargs), lambda key: key)

    # -- writing -----------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a value into *key*.

        Raises
        ------
        KeyError
            If the user may not see the key.
        AuthenticationError
            If the user has no right to set the key, or it is a user record.
        """
        self._require(key, "set", "set")
        self.store.set(key, value, buffer_size)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of *key* (errors as :meth:`set`)."""
        self._require(key, "set", "set")
        self.store.set_data(key, data, buffer_size)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key* (errors as :meth:`set`)."""
        self._require(key, "set", "set")
        self.store.set_metadata(key, metadata)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of *key* (errors as :meth:`set`)."""
        self._require(key, "set", "set")
        self.store.update_metadata(key, metadata)

    def delete(self, key: str) -> None:
        """Delete *key*.

        Raises
        ------
        KeyError
            If the key does not exist, the user may not see it, or it is a
            user record.
        AuthenticationError
            If the user has no right to delete the key.
        """
        self._require(key, "delete", "delete")
        self.store.delete(key)

    def transaction(self, notes: str | None = None) -> Any:
        """Return the wrapped store's transaction context."""
        return self.store.transaction(notes)
