"""Users and API keys of a shared server (`serve --users FILE`), kept by `emotion-app users`.

The users file is JSON, written whole (a temporary file renamed into place, mode 0600):

    {"users": {"ana": {"role": "analyze", "password": "scrypt$16384$8$1$<salt>$<hash>",
                       "rate_per_minute": 60, "max_concurrent": 2,
                       "keys": {"3f9a1c2e": {"sha256": "<hex>", "created": "2026-12-07T01:00:00Z"}}}}}

A password is kept as its scrypt hash with a salt of its own (`hashlib.scrypt`, n=2**14, r=8,
p=1: about 50 ms and 16 MiB per check, so a check runs in a worker thread, never on the event
loop). An API key is `ea_<id>_<secret>`: 32 random bytes, shown once when made; the file keeps its
id (to find it) and the SHA-256 of its secret. A key is random, so one fast hash is as safe as
scrypt and checking it costs microseconds. Roles: `analyze` (the analyses and one's own results)
and `admin` (also everyone's results, `GET /api/results?all=1`).

Everything here is a pure function of the file's content or of a `UserStore` (immutable): the
command line and the server share them, and the server swaps in a new store when the file changes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ..errors import EmotionAppError

ROLES = ("analyze", "admin")
DEFAULT_RATE_PER_MINUTE = 60.0
DEFAULT_MAX_CONCURRENT = 2
KEY_PREFIX = "ea_"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UsersError(EmotionAppError):
    """The users file cannot be read, or a change to it is not allowed (the message says which)."""

    code = "bad_users"


@dataclass(frozen=True)
class Key:
    id: str  # the public part of the key, how it is found
    sha256: str  # hex digest of its secret
    created: str  # ISO time, UTC


@dataclass(frozen=True)
class User:
    """One user: name, role, limits and keys (hashes only). `password` None: keys only, no page login."""

    name: str
    role: str = "analyze"
    password: str | None = None
    rate_per_minute: float = DEFAULT_RATE_PER_MINUTE
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    keys: tuple[Key, ...] = ()

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class UserStore:
    """The users file's content, read once: users by name and an index of the keys by id."""

    users: dict[str, User] = field(default_factory=dict)

    def __post_init__(self):
        index = {key.id: user.name for user in self.users.values() for key in user.keys}
        object.__setattr__(self, "_by_key", index)

    # -- the server's questions ----------------------------------------------------------------
    def user_for_key(self, key: str) -> User | None:
        """The user whose API key `key` is, or None (unknown, revoked or malformed)."""
        parts = key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] + "_" != KEY_PREFIX:
            return None
        user = self.users.get(self._by_key.get(parts[1], ""))  # type: ignore[attr-defined]
        if user is None:
            return None
        digest = hashlib.sha256(parts[2].encode()).hexdigest()
        for k in user.keys:
            if k.id == parts[1] and hmac.compare_digest(k.sha256, digest):
                return user
        return None

    def check_login(self, name: str, password: str) -> bool:
        """Whether `name` may log in with `password` (scrypt: ~50 ms, call it in a worker thread).
        An unknown name costs the same time as a wrong password."""
        user = self.users.get(name)
        stored = user.password if user is not None else None
        ok = check_password(stored or _DUMMY_HASH, password)
        return ok and stored is not None

    # -- changes (each returns a new store) -----------------------------------------------------
    def add(self, name: str, password: str | None, role: str = "analyze", **limits) -> UserStore:
        """A store with the user `name` added (its password hashed here)."""
        if not NAME_RE.match(name):
            raise UsersError(f"{name!r} is not a user name: use letters, digits and . _ @ - (at most 64).")
        if name in self.users:
            raise UsersError(f"The user {name} exists already; remove it first, or give a key with `users key {name}`.")
        user = _checked(User(name, role, hash_password(password) if password else None, **limits))
        return UserStore({**self.users, name: user})

    def remove(self, name: str) -> UserStore:
        """A store without the user `name` (and so without its keys)."""
        self._user(name)
        return UserStore({n: u for n, u in self.users.items() if n != name})

    def new_key(self, name: str) -> tuple[UserStore, str]:
        """(a store with a new key for `name`, the key itself: show it once, it is kept hashed only)."""
        user = self._user(name)
        key_id = secrets.token_hex(4)
        while key_id in self._by_key:  # type: ignore[attr-defined]
            key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = Key(key_id, hashlib.sha256(secret.encode()).hexdigest(), created)
        store = UserStore({**self.users, name: replace(user, keys=(*user.keys, key))})
        return store, f"{KEY_PREFIX}{key_id}_{secret}"

    def revoke(self, name: str, key_id: str) -> UserStore:
        """A store without the key `key_id` of `name` (its id: the part after `ea_`)."""
        user = self._user(name)
        kept = tuple(k for k in user.keys if k.id != key_id)
        if len(kept) == len(user.keys):
            ids = ", ".join(k.id for k in user.keys) or "none"
            raise UsersError(f"{name} has no key {key_id!r} (their keys: {ids}).")
        return UserStore({**self.users, name: replace(user, keys=kept)})

    def _user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            known = ", ".join(sorted(self.users)) or "none"
            raise UsersError(f"No user {name!r} in the users file (users: {known}).")
        return user

    # -- the file -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        users = {}
        for user in self.users.values():
            entry = {"role": user.role, "password": user.password, "rate_per_minute": user.rate_per_minute}
            entry |= {"max_concurrent": user.max_concurrent, "keys": {}}
            entry["keys"] = {k.id: {"sha256": k.sha256, "created": k.created} for k in user.keys}
            users[user.name] = entry
        return {"users": users}

    @classmethod
    def from_json(cls, data) -> UserStore:
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
            raise UsersError('The users file must hold a JSON object {"users": {...}}; make it with `emotion-app users add`.')
        users = {}
        for name, entry in data["users"].items():
            try:
                keys = tuple(Key(i, k["sha256"], k.get("created", "")) for i, k in (entry.get("keys") or {}).items())
                limits = {"rate_per_minute": float(entry.get("rate_per_minute", DEFAULT_RATE_PER_MINUTE))}
                limits["max_concurrent"] = int(entry.get("max_concurrent", DEFAULT_MAX_CONCURRENT))
                users[name] = _checked(User(name, entry.get("role", "analyze"), entry.get("password"), keys=keys, **limits))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise UsersError(f"The users file's entry for {name!r} is malformed ({exc}).") from None
        return cls(users)


# what an unknown name is checked against, so that it takes as long as a wrong password
_DUMMY_HASH = "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), "A" * 22 + "==", "A" * 43 + "="])


def _checked(user: User) -> User:
    if user.role not in ROLES:
        raise UsersError(f"Unknown role {user.role!r} for {user.name}: choose {' or '.join(ROLES)}.")
    if not user.rate_per_minute > 0 or user.max_concurrent < 1:
        raise UsersError(f"{user.name}'s limits must be a rate > 0 per minute and at least 1 request at once.")
    return user


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$<salt>$<hash>` (base64) of `password` with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(stored: str, password: str) -> bool:
    """Whether `password` matches `stored` (hash_password's form); False for a malformed one."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def load(path: Path, missing_ok: bool = False) -> UserStore:
    """The users file at `path` (an empty store for a missing file when `missing_ok`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return UserStore()
        raise UsersError(f"No users file at {path}; make one with `emotion-app users add NAME --file {path}`.") from None
    except OSError as exc:
        raise UsersError(f"The users file {path} cannot be read: {exc.strerror}.") from None
    try:
        return UserStore.from_json(json.loads(text))
    except ValueError as exc:
        raise UsersError(f"The users file {path} is not valid JSON ({exc}).") from None


def save(store: UserStore, path: Path) -> None:
    """Write `store` to `path` whole: a temporary file (mode 0600) beside it, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(store.to_json(), f, ensure_ascii=False, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size) of the users file, None when missing: what the server watches for a change."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
