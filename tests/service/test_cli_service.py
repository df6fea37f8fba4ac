"""The service's commands: keys create/list/revoke, the store URL's precedence, serve's first-run hint."""

from click.testing import CliRunner

from clickloop.cli import cli
from clickloop.cli_service import admin_key_hint
from clickloop.service.store import ApiKeyRole, open_store, secret_sha256


def run(*args, env=None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_keys_create_list_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    created = run(
        "keys", "create", "--role", "client", "--context", "shop", "--context", "garden", "--label", "web", "--db", db
    )
    secret = created.stdout.strip()
    assert secret.startswith("clk_") and "\n" not in secret
    assert "created client key key_" in created.stderr and "garden, shop" in created.stderr
    store = open_store(db)
    try:
        key = store.find_api_key(secret_sha256(secret))
        assert key is not None and key.context_ids == ("garden", "shop") and key.label == "web"
        assert secret not in (tmp_path / "keys.db").read_bytes().decode("latin-1")
        listed = run("keys", "list", "--db", db).stdout
        assert key.key_id in listed and "garden,shop" in listed and "web" in listed and secret not in listed
        assert f"revoked {key.key_id}" in run("keys", "revoke", key.key_id, "--db", db).stdout
        assert store.find_api_key(secret_sha256(secret)) is None
    finally:
        store.close()


def test_db_comes_from_the_environment(tmp_path):
    db = f"sqlite:///{tmp_path / 'env.db'}"
    run("keys", "create", "--role", "admin", env={"CLICKLOOP_DB": db})
    assert "admin" in run("keys", "list", env={"CLICKLOOP_DB": db}).stdout
    assert (tmp_path / "env.db").is_file()


def test_bad_input_is_one_line(tmp_path):
    import subprocess
    import sys

    def main(*args):
        command = [sys.executable, "-c", "from clickloop.cli import main; main()", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    revoked = main("keys", "revoke", "nope")
    assert revoked.returncode == 2 and "no API key 'nope'" in revoked.stderr and "Traceback" not in revoked.stderr
    scoped = main("keys", "create", "--role", "admin", "--context", "shop")
    assert scoped.returncode == 2 and "only client keys can be scoped" in scoped.stderr
    bad_url = main("serve", "--db", "mysql://x")
    assert bad_url.returncode == 2 and "unknown store URL scheme 'mysql'" in bad_url.stderr


def test_admin_key_hint_until_there_is_one(tmp_path):
    store = open_store(str(tmp_path / "hint.db"))
    try:
        hint = admin_key_hint(store, "sqlite:///my db.db")
        assert "clickloop keys create --role admin --label operator --db 'sqlite:///my db.db'" in hint
        store.create_api_key("k1", "a" * 64, ApiKeyRole.ADMIN)
        assert admin_key_hint(store, "x") is None
    finally:
        store.close()
