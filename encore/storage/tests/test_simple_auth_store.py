"""SimpleAuthStore: every conformance mixin, plus authentication and security behaviour."""

from __future__ import annotations

import hashlib
import hmac
import unittest
from io import BytesIO
from unittest import mock

from encore.events.api import EventManager
from encore.storage import simple_auth_store
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.simple_auth_store import (
    ALL_PERMISSIONS,
    AuthenticationError,
    PBKDF2Encoder,
    ScryptEncoder,
    SimpleAuthStore,
    make_encoder,
    recommended_encoder,
    set_user_password,
    sha1_hasher,
    verify_password,
)
from encore.storage.tests.abstract_test import (
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventsTestMixin,
    StoreKeysTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    populate_fixture,
)

# Cheap parameters keep the suite fast; production uses the defaults.
FAST_PBKDF2 = PBKDF2Encoder(iterations=1000)
CREDENTIALS = {"username": "test", "password": "test"}


class SimpleAuthStoreFixture:
    """The upstream fixture: a legacy record, salt b"test", user test/test."""

    def setUp(self):
        self.wrapped = DictMemoryStore(EventManager())
        self.wrapped.connect()
        populate_fixture(self.wrapped)
        self.encoder = make_encoder(b"test")
        self.wrapped.set(".user_test", (BytesIO(self.encoder(b"test")), {}))
        self.store = SimpleAuthStore(self.wrapped, self.encoder)
        self.store.connect(CREDENTIALS)

    def event_source(self):
        # Events come from the wrapped store.
        return self.wrapped


class SimpleAuthStoreReadTest(SimpleAuthStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class SimpleAuthStoreKDFReadTest(StoreReadTestMixin, unittest.TestCase):
    """The same with a modern (PBKDF2) record made by set_user_password."""

    def setUp(self):
        self.wrapped = DictMemoryStore(EventManager())
        populate_fixture(self.wrapped)
        set_user_password(self.wrapped, "test", "test", FAST_PBKDF2)
        self.store = SimpleAuthStore(self.wrapped, FAST_PBKDF2)
        self.store.connect(CREDENTIALS)


class SimpleAuthStoreWriteTest(SimpleAuthStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    pass


class SimpleAuthStoreKeysTest(SimpleAuthStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class SimpleAuthStoreEventsTest(SimpleAuthStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class SimpleAuthStoreTransactionTest(
    SimpleAuthStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    pass


class SimpleAuthStoreLargeValueTest(
    SimpleAuthStoreFixture, StoreLargeValueTestMixin, unittest.TestCase
):
    large_value_size = 8 * 1048576
    large_value_held_in_memory = True


class SimpleAuthStoreConcurrencyTest(
    SimpleAuthStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    concurrency_threads = 4


class SimpleAuthStoreBadInputTest(
    SimpleAuthStoreFixture, StoreBadInputTestMixin, unittest.TestCase
):
    pass


class EncoderTest(unittest.TestCase):
    def test_sha1_hasher(self):
        assert sha1_hasher(b"abc") == hashlib.sha1(b"abc").digest()
        assert sha1_hasher("abc") == hashlib.sha1(b"abc").digest()

    def test_make_encoder_prepends_salt(self):
        assert make_encoder(b"salt")(b"pw") == hashlib.sha1(b"saltpw").digest()
        assert make_encoder(b"s", lambda b: b[::-1])(b"pw") == b"wps"
        with self.assertRaises(TypeError):
            make_encoder(42)

    def test_pbkdf2_records(self):
        record = FAST_PBKDF2(b"secret")
        assert record.startswith(b"$pbkdf2-sha256$1000$")
        assert FAST_PBKDF2(b"secret") != record  # fresh salt each time
        assert PBKDF2Encoder.verify(b"secret", record)
        assert not PBKDF2Encoder.verify(b"Secret", record)
        assert verify_password("secret", record)

    def test_scrypt_records(self):
        encoder = ScryptEncoder(n=2**10)
        record = encoder(b"secret")
        assert record.startswith(b"$scrypt$n=1024,r=8,p=1$")
        assert ScryptEncoder.verify(b"secret", record)
        assert not ScryptEncoder.verify(b"secreT", record)
        assert verify_password(b"secret", record, make_encoder(b"unused"))

    def test_malformed_and_hostile_records_fail_fast(self):
        for record in (
            b"$pbkdf2-sha256$1000$not base64!$AAAA",
            b"$pbkdf2-md5$1000$AAAA$AAAA",
            b"$pbkdf2-sha256$999999999$AAAA$AAAA",  # absurd cost: refused, not run
            b"$scrypt$n=1000,r=8,p=1$AAAA$AAAA",  # n not a power of two
            b"$scrypt$n=67108864,r=8,p=1$AAAA$AAAA",  # too much memory
            b"$scrypt$garbage",
        ):
            # Refused before any key derivation runs at the crafted cost.
            with (
                mock.patch.object(simple_auth_store.hashlib, "pbkdf2_hmac") as pbkdf2,
                mock.patch.object(simple_auth_store.hashlib, "scrypt") as scrypt,
            ):
                assert not verify_password(b"pw", record), record
            assert not pbkdf2.called and not scrypt.called, record

    def test_legacy_records(self):
        encoder = make_encoder(b"salt")
        assert verify_password(b"pw", encoder(b"pw"), encoder)
        assert not verify_password(b"px", encoder(b"pw"), encoder)
        assert not verify_password(b"pw", encoder(b"pw"))  # no encoder: no legacy match

    def test_empty_password_never_matches(self):
        encoder = make_encoder(b"salt")
        assert not verify_password(b"", encoder(b""), encoder)

    def test_bad_encoder_parameters(self):
        with self.assertRaises(ValueError):
            PBKDF2Encoder(iterations=0)
        with self.assertRaises(ValueError):
            PBKDF2Encoder(hash_name="md5")
        with self.assertRaises(ValueError):
            ScryptEncoder(n=1000)

    def test_recommended_encoder_is_a_kdf(self):
        assert isinstance(recommended_encoder(), (ScryptEncoder, PBKDF2Encoder))

    def test_set_user_password_validates(self):
        store = DictMemoryStore(EventManager())
        with self.assertRaises(ValueError):
            set_user_password(store, "u", "", FAST_PBKDF2)
        with self.assertRaises(ValueError):
            set_user_password(store, "", "pw", FAST_PBKDF2)
        with self.assertRaises(TypeError):
            set_user_password(store, None, "pw", FAST_PBKDF2)
        assert list(store.query_keys()) == []

    def test_set_user_password_default_encoder(self):
        store = DictMemoryStore(EventManager())
        with mock.patch.object(simple_auth_store, "recommended_encoder",
                               return_value=FAST_PBKDF2):
            set_user_password(store, "u", "pw")
        assert store.to_bytes(".user_u").startswith(b"$pbkdf2-")


class SimpleAuthStoreSecurityTest(unittest.TestCase):
    def setUp(self):
        self.wrapped = DictMemoryStore(EventManager())
        self.wrapped.set("data", (BytesIO(b"payload"), {"kind": "data"}))
        set_user_password(self.wrapped, "alice", "alice-pw", FAST_PBKDF2)
        set_user_password(self.wrapped, "bob", "bob-pw", FAST_PBKDF2)
        self.store = SimpleAuthStore(self.wrapped, FAST_PBKDF2)

    def connect(self, username="alice", password="alice-pw"):
        self.store.connect({"username": username, "password": password})

    def assert_unauthenticated(self, store=None):
        store = store or self.store
        assert store.username is None
        assert not store.is_connected()
        assert store.check_permissions() == set()
        assert not store.exists("data")
        assert list(store.query_keys()) == []
        with self.assertRaises(KeyError):
            store.get("data")
        with self.assertRaises(KeyError):
            store.set("data", (BytesIO(b"x"), {}))
        assert self.wrapped.to_bytes("data") == b"payload"

    def test_connect(self):
        self.connect()
        assert self.store.username == "alice"
        assert self.store.is_connected()
        assert self.store.check_permissions() == set(ALL_PERMISSIONS)
        assert self.store.to_bytes("data") == b"payload"

    def test_wrong_password(self):
        with self.assertRaises(AuthenticationError) as raised:
            self.connect(password="wrong")
        assert "alice" in str(raised.exception)
        self.assert_unauthenticated()

    def test_unknown_user(self):
        with self.assertRaises(AuthenticationError) as wrong_user:
            self.connect(username="mallory", password="x")
        with self.assertRaises(AuthenticationError) as wrong_password:
            self.connect(username="alice", password="x")
        # The same message shape: no telling unknown users from bad passwords.
        assert (str(wrong_user.exception).replace("mallory", "<u>")
                == str(wrong_password.exception).replace("alice", "<u>"))
        self.assert_unauthenticated()

    def test_unknown_user_still_runs_the_kdf(self):
        with (
            mock.patch.object(simple_auth_store.PBKDF2Encoder, "verify",
                              wraps=PBKDF2Encoder.verify) as verify,
            self.assertRaises(AuthenticationError),
        ):
            self.connect(username="mallory", password="x")
        assert verify.called

    def test_empty_password(self):
        # Even a record made for the empty password does not let it in.
        legacy = make_encoder(b"salt")
        self.wrapped.set(".user_empty", (BytesIO(legacy(b"")), {}))
        store = SimpleAuthStore(self.wrapped, legacy)
        with self.assertRaises(AuthenticationError):
            store.connect({"username": "empty", "password": ""})
        self.assert_unauthenticated(store)

    def test_failed_connect_logs_previous_user_out(self):
        self.connect()
        with self.assertRaises(AuthenticationError):
            self.connect(password="wrong")
        self.assert_unauthenticated()

    def test_bad_credentials(self):
        for credentials in (None, ("alice", "alice-pw"), {"username": "alice"},
                            {"password": "alice-pw"}, {"username": 1, "password": "x"}):
            with self.assertRaises(TypeError):
                self.store.connect(credentials)
            self.assert_unauthenticated()

    def test_user_records_are_invisible(self):
        self.connect()
        assert sorted(self.store.query_keys()) == ["data"]
        assert [key for key, _ in self.store.query()] == ["data"]
        assert list(self.store.glob(".user_*")) == []
        assert list(self.store.glob("*")) == ["data"]
        assert not self.store.exists(".user_bob")
        assert not self.store.exists(".user_alice")
        for call in (
            lambda: self.store.get(".user_bob"),
            lambda: self.store.get_data(".user_bob"),
            lambda: self.store.get_metadata(".user_bob"),
            lambda: self.store.get_data_range(".user_bob", 0, 4),
            lambda: self.store.to_bytes(".user_bob"),
            lambda: list(self.store.multiget([".user_bob"])),
            lambda: self.store.delete(".user_bob"),
        ):
            with self.assertRaises(KeyError):
                call()

    def test_user_records_cannot_be_overwritten(self):
        self.connect()
        before = self.wrapped.to_bytes(".user_bob")
        attacker_record = FAST_PBKDF2(b"owned")
        for call in (
            lambda: self.store.set(".user_bob", (BytesIO(attacker_record), {})),
            lambda: self.store.set_data(".user_bob", BytesIO(attacker_record)),
            lambda: self.store.set_metadata(".user_bob", {}),
            lambda: self.store.update_metadata(".user_bob", {}),
            lambda: self.store.from_bytes(".user_bob", attacker_record),
            lambda: self.store.set(".user_new", (BytesIO(attacker_record), {})),
            lambda: self.store.multiset(["ok", ".user_bob"],
                                        [(BytesIO(b"1"), {}), (BytesIO(attacker_record), {})]),
        ):
            with self.assertRaises(AuthenticationError):
                call()
        assert self.wrapped.to_bytes(".user_bob") == before
        assert not self.wrapped.exists(".user_new")
        assert not self.wrapped.exists("ok")  # the multiset rolled back
        with self.assertRaises(AuthenticationError):
            self.store.connect({"username": "bob", "password": "owned"})

    def test_constant_time_comparisons(self):
        legacy = make_encoder(b"salt")
        self.wrapped.set(".user_carol", (BytesIO(legacy(b"carol-pw")), {}))
        store = SimpleAuthStore(self.wrapped, legacy)
        with mock.patch.object(simple_auth_store.hmac, "compare_digest",
                               wraps=hmac.compare_digest) as compare:
            store.connect({"username": "carol", "password": "carol-pw"})
            assert compare.called  # the password check
            compare.reset_mock()
            store.get("data")
            assert compare.called  # the per-operation record check
        with mock.patch.object(simple_auth_store.hmac, "compare_digest",
                               wraps=hmac.compare_digest) as compare:
            self.connect()
            assert compare.called  # the KDF record check

    def test_no_eval(self):
        import inspect

        assert "eval(" not in inspect.getsource(simple_auth_store)

    def test_password_change_ends_other_sessions(self):
        self.connect()
        set_user_password(self.wrapped, "alice", "new-pw", FAST_PBKDF2)
        with self.assertRaises(KeyError):
            self.store.get("data")
        assert not self.store.exists("data")
        self.connect(password="new-pw")
        assert self.store.to_bytes("data") == b"payload"

    def test_deleted_user_loses_access(self):
        self.connect()
        self.wrapped.delete(".user_alice")
        with self.assertRaises(KeyError):
            self.store.get("data")

    def test_change_password(self):
        self.connect()
        with self.assertRaises(AuthenticationError):
            self.store.change_password("wrong", "x")
        self.store.change_password("alice-pw", "fresh-pw")
        assert self.store.to_bytes("data") == b"payload"  # still authenticated
        record = self.wrapped.to_bytes(".user_alice")
        assert record.startswith(b"$pbkdf2-sha256$1000$")
        self.store.disconnect()
        with self.assertRaises(AuthenticationError):
            self.connect()
        self.connect(password="fresh-pw")

    def test_change_password_requires_connection(self):
        with self.assertRaises(AuthenticationError):
            self.store.change_password("alice-pw", "x")

    def test_disconnect_keeps_store_and_reconnects(self):
        self.connect()
        self.store.disconnect()
        assert self.store.store is self.wrapped
        self.assert_unauthenticated()
        self.connect()
        assert self.store.to_bytes("data") == b"payload"

    def test_connect_connects_wrapped_store_and_disconnect_undoes_it(self):
        assert not self.wrapped.is_connected()
        self.connect()
        assert self.wrapped.is_connected()
        self.store.disconnect()
        assert not self.wrapped.is_connected()

    def test_info(self):
        assert self.store.info() == {"readonly": False}

    def test_separate_user_key_store(self):
        users = DictMemoryStore(EventManager())
        set_user_password(users, "dave", "dave-pw", FAST_PBKDF2)
        store = SimpleAuthStore(self.wrapped, FAST_PBKDF2, user_key_store=users)
        store.connect({"username": "dave", "password": "dave-pw"})
        assert store.to_bytes("data") == b"payload"
        # The prefix stays reserved in the wrapped store as well.
        assert not store.exists(".user_alice")
        with self.assertRaises(AuthenticationError):
            store.connect({"username": "alice", "password": "alice-pw"})

    def test_custom_user_key_path(self):
        set_user_password(self.wrapped, "erin", "erin-pw", FAST_PBKDF2, user_key_path="users/")
        store = SimpleAuthStore(self.wrapped, FAST_PBKDF2, user_key_path="users/")
        store.connect({"username": "erin", "password": "erin-pw"})
        assert "users/erin" not in set(store.query_keys())
        with self.assertRaises(KeyError):
            store.get("users/erin")

    def test_bad_construction(self):
        with self.assertRaises(ValueError):
            SimpleAuthStore(self.wrapped, FAST_PBKDF2, user_key_path="")
        with self.assertRaises(TypeError):
            SimpleAuthStore(object(), FAST_PBKDF2)
        with self.assertRaises(TypeError):
            SimpleAuthStore(self.wrapped, "not callable")

    def test_event_manager_defaults_to_wrapped(self):
        assert self.store.event_manager is self.wrapped.event_manager


class NoDeleteAuthStore(SimpleAuthStore):
    """Authenticated users may do everything except delete."""

    def check_permissions(self, key=None):
        return super().check_permissions(key) - {"delete"}


class HiddenPrefixAuthStore(SimpleAuthStore):
    """Keys starting with 'secret' do not exist for this user; 'ro' keys are read-only."""

    def check_permissions(self, key=None):
        permissions = super().check_permissions(key)
        if key is not None and key.startswith("secret"):
            return permissions & {"connect"}
        if key is not None and key.startswith("ro"):
            return permissions - {"set", "delete"}
        return permissions


class PermissionSubclassTest(unittest.TestCase):
    def setUp(self):
        self.wrapped = DictMemoryStore(EventManager())
        for key in ("data", "secret1", "ro1"):
            self.wrapped.set(key, (BytesIO(key.encode()), {"k": key}))
        set_user_password(self.wrapped, "alice", "pw", FAST_PBKDF2)

    def test_denying_delete_only(self):
        store = NoDeleteAuthStore(self.wrapped, FAST_PBKDF2)
        store.connect({"username": "alice", "password": "pw"})
        with self.assertRaises(AuthenticationError) as raised:
            store.delete("data")
        assert str(raised.exception) == 'User "alice" is not permitted to delete "data"'
        assert self.wrapped.exists("data")
        # Everything else still works.
        assert store.to_bytes("data") == b"data"
        store.set_data("data", BytesIO(b"new"))
        store.update_metadata("data", {"x": 1})
        assert store.get_metadata("data") == {"k": "data", "x": 1}
        assert sorted(store.query_keys()) == ["data", "ro1", "secret1"]

    def test_per_key_rules(self):
        store = HiddenPrefixAuthStore(self.wrapped, FAST_PBKDF2)
        store.connect({"username": "alice", "password": "pw"})
        assert sorted(store.query_keys()) == ["data", "ro1"]
        assert not store.exists("secret1")
        with self.assertRaises(KeyError):
            store.get("secret1")
        with self.assertRaises(KeyError):
            store.set("secret1", (BytesIO(b""), {}))
        assert store.to_bytes("ro1") == b"ro1"
        with self.assertRaises(AuthenticationError):
            store.set_metadata("ro1", {})
        with self.assertRaises(AuthenticationError):
            store.delete("ro1")

    def test_connect_permission_required(self):
        class NoConnect(SimpleAuthStore):
            def check_permissions(self, key=None):
                return super().check_permissions(key) - {"connect"}

        store = NoConnect(self.wrapped, FAST_PBKDF2)
        with self.assertRaises(AuthenticationError) as raised:
            store.connect({"username": "alice", "password": "pw"})
        assert "not authenticated for connection" in str(raised.exception)
        assert store.username is None and not store.is_connected()
