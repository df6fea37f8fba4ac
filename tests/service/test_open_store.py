"""open_store: which URL opens which store, and how a wrong one fails."""

from __future__ import annotations

import pytest

from clickloop.errors import StorageError, UnknownIdError, ValidationError
from clickloop.service.store import Store, open_store


@pytest.mark.parametrize(
    ("url", "relative_path"),
    [("plain.db", "plain.db"), ("sqlite:///rel/store.db", "rel/store.db"), ("sub/dir.db", "sub/dir.db")],
)
def test_sqlite_urls_open_files(tmp_path, monkeypatch, url, relative_path):
    monkeypatch.chdir(tmp_path)
    store = open_store(url)
    try:
        assert isinstance(store, Store)
        assert (tmp_path / relative_path).is_file()
    finally:
        store.close()


def test_four_slashes_mean_an_absolute_path(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/abs.db")
    store.close()
    assert (tmp_path / "abs.db").is_file()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("mysql://db/x", UnknownIdError, "unknown store URL scheme 'mysql'; expected one of: sqlite:///relative.db"),
        ("redis://x", UnknownIdError, "postgresql://user@host:5432/db"),
        ("", ValidationError, "non-empty string"),
        ("sqlite://", ValidationError, "must name a file"),
        ("sqlite:///:memory:", ValidationError, "in-memory"),
    ],
)
def test_bad_urls(url, error, match):
    with pytest.raises(error, match=match):
        open_store(url)


def test_unreachable_postgres_says_what_to_check():
    pytest.importorskip("psycopg")
    url = "postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2"
    redacted = r"postgresql://u:\*\*\*@127.0.0.1:1/db\?connect_timeout=2"
    with pytest.raises(StorageError, match=f"cannot connect to {redacted}: .*refused.*is the server running") as error:
        open_store(url)
    assert "hunter2" not in str(error.value)


def test_a_closed_sqlite_store_refuses_new_connections(tmp_path):
    import threading

    store = open_store(str(tmp_path / "x.db"))
    store.close()
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_try(store.list_contexts)))
    thread.start()
    thread.join()
    assert isinstance(errors[0], StorageError) and "closed" in str(errors[0])


def test_public_api_is_exported():
    import clickloop.service.store as package

    assert all(hasattr(package, name) for name in package.__all__)
    assert sorted(package.__all__) == sorted(set(package.__all__))


def _try(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for the assertion
        return exc
    return None
