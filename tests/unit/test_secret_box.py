"""services/secret_box.py: webhook secrets sealed with AES-GCM under FUNDWATCH_SECRET_KEY, the
key file of `fundwatch run`, and the production processes refusing to start without the key."""

from __future__ import annotations

import base64
import stat

import pytest

from services import secret_box
from services.cli import main
from services.config import ConfigError, Settings
from services.secret_box import PREFIX, SecretBox, SecretUnreadable, parse_key, resolve

KEY = bytes(range(32))
SECRET = "whsec_c2VjcmV0LWtleS1vZi10aGUtc3Vic2NyaWJlcg=="


def test_a_sealed_secret_opens_to_itself_and_shows_nothing_of_it():
    box = SecretBox(KEY)
    sealed = box.seal(SECRET, "sub-1")
    assert sealed.startswith(PREFIX)
    assert SECRET not in sealed and SECRET.removeprefix("whsec_") not in sealed
    assert box.open(sealed, "sub-1") == SECRET


def test_each_seal_uses_a_fresh_nonce():
    box = SecretBox(KEY)
    first, second = box.seal(SECRET, "sub-1"), box.seal(SECRET, "sub-1")
    assert first != second
    assert base64.b64decode(first[len(PREFIX) :])[:12] != base64.b64decode(second[len(PREFIX) :])[:12]


def test_a_ciphertext_moved_to_another_subscription_does_not_open():
    box = SecretBox(KEY)
    with pytest.raises(SecretUnreadable, match="sub-2"):
        box.open(box.seal(SECRET, "sub-1"), "sub-2")


def _flip(sealed: str, index: int) -> str:
    raw = bytearray(base64.b64decode(sealed[len(PREFIX) :]))
    raw[index] ^= 1
    return PREFIX + base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: _flip(s, 0),
        lambda s: _flip(s, 20),
        lambda s: _flip(s, -1),
        lambda s: s + "!",
        lambda s: s[:20],
    ],
    ids=["nonce", "ciphertext", "tag", "not-base64", "cut"],
)
def test_an_altered_value_does_not_open(tamper):
    box = SecretBox(KEY)
    with pytest.raises(SecretUnreadable):
        box.open(tamper(box.seal(SECRET, "sub-1")), "sub-1")


def test_another_key_does_not_open_it_and_says_which_variable():
    sealed = SecretBox(KEY).seal(SECRET, "sub-1")
    with pytest.raises(SecretUnreadable, match="FUNDWATCH_SECRET_KEY"):
        SecretBox(bytes(32)).open(sealed, "sub-1")


def test_a_value_written_before_encryption_reads_as_it_is():
    assert SecretBox(KEY).open(SECRET, "sub-1") == SECRET


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(bytes(16)).decode(), "got 16 bytes"),
        ("", "got 0"),
    ],
)
def test_a_bad_key_is_refused_naming_the_variable(text, why):
    with pytest.raises(ConfigError, match=f"FUNDWATCH_SECRET_KEY.*{why}"):
        parse_key(text)


def test_a_configured_key_is_used_and_no_file_is_made(tmp_path):
    configured = base64.b64encode(KEY).decode()
    box = resolve(configured, tmp_path, "run")
    assert box.open(SecretBox(KEY).seal(SECRET, "s"), "s") == SECRET
    assert not (tmp_path / "secret-key").exists()


def test_fundwatch_run_makes_a_key_once_keeps_it_private_and_reuses_it(tmp_path):
    data_dir = tmp_path / "var"
    sealed = resolve("", data_dir, "run").seal(SECRET, "sub-1")
    path = data_dir / "secret-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = path.read_text()
    assert len(parse_key(kept)) == 32
    # the next start reads what the first wrote, and leaves it as it was
    assert resolve("", data_dir, "run").open(sealed, "sub-1") == SECRET
    assert path.read_text() == kept


def test_an_empty_key_file_is_refused_rather_than_replaced(tmp_path):
    (tmp_path / "secret-key").write_text("")
    with pytest.raises(ConfigError, match="FUNDWATCH_SECRET_KEY"):
        resolve("", tmp_path, "run")


def test_without_a_key_and_a_place_to_keep_one_the_start_is_refused():
    with pytest.raises(ConfigError, match="fundwatch gateway needs FUNDWATCH_SECRET_KEY"):
        resolve("", None, "gateway")


@pytest.mark.parametrize("command", ["gateway", "dispatcher"])
def test_production_processes_refuse_to_start_without_the_key(command, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FUNDWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached: the key is checked first
    monkeypatch.setenv("FUNDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FUNDWATCH_SECRET_KEY", raising=False)
    assert main([command]) == 2
    assert "FUNDWATCH_SECRET_KEY" in capsys.readouterr().err
    assert not (tmp_path / "secret-key").exists()  # none made per process


def test_a_malformed_key_stops_a_production_process_too(monkeypatch, capsys):
    monkeypatch.setenv("FUNDWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FUNDWATCH_SECRET_KEY", "c2hvcnQ=")
    assert main(["dispatcher"]) == 2
    assert "FUNDWATCH_SECRET_KEY must be base64 of 32 random bytes" in capsys.readouterr().err


def test_the_key_is_never_printed():
    configured = base64.b64encode(KEY).decode()
    settings = Settings.from_env({"FUNDWATCH_SECRET_KEY": configured})
    assert settings.secret_key == configured
    assert configured not in settings.describe() and configured not in repr(settings)
    assert "secret_key=(set)" in settings.describe()


def test_a_store_made_before_any_key_is_installed_says_so(monkeypatch):
    from services.webhooks.store import SubscriptionStore

    monkeypatch.setattr(secret_box, "_installed", None)
    with pytest.raises(RuntimeError, match="FUNDWATCH_SECRET_KEY"):
        SubscriptionStore(storage=None)  # type: ignore[arg-type]
    monkeypatch.setattr(secret_box, "_installed", SecretBox(KEY))
    assert SubscriptionStore(storage=None).box is secret_box.installed()  # type: ignore[arg-type]
