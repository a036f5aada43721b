"""services/auth.py: token hashing, roles, the bootstrap admin token."""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest

from services.auth import Principal, TokenStore, hash_token, new_token, resolve_admin_token


def test_hash_token_is_sha256_hex():
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("令牌") == hashlib.sha256("令牌".encode()).hexdigest()
    assert len(hash_token("x")) == 64


@pytest.mark.parametrize("role", ["admin", "bank", "desk"])
def test_new_token_has_role_prefix(role):
    assert new_token(role).startswith(f"fw_{role}_")


def test_new_token_has_at_least_32_random_bytes():
    secret = new_token("bank").removeprefix("fw_bank_")
    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    assert len(raw) >= 32


def test_new_tokens_differ():
    assert len({new_token("admin") for _ in range(50)}) == 50


def test_bootstrap_admin_authenticates_right_token():
    store = TokenStore(None)  # storage is used only by load/create
    store.bootstrap_admin("fw_admin_right")
    principal = store.authenticate("fw_admin_right")
    assert principal is not None
    assert principal.role == "admin"
    assert principal.token_id == "bootstrap-admin"


@pytest.mark.parametrize("token", ["fw_admin_wrong", "", "fw_admin_right ", "FW_ADMIN_RIGHT"])
def test_wrong_token_is_none(token):
    store = TokenStore(None)
    store.bootstrap_admin("fw_admin_right")
    assert store.authenticate(token) is None


def test_empty_store_authenticates_nothing():
    assert TokenStore(None).authenticate("anything") is None


def test_store_keeps_only_the_hash():
    store = TokenStore(None)
    store.bootstrap_admin("fw_admin_plain-secret")
    assert "fw_admin_plain-secret" not in repr(store._by_hash)


def test_admin_sees_every_region():
    admin = Principal("t", "admin")
    assert admin.sees_region("220102")
    assert admin.sees_region("110101")


def test_desk_sees_its_region_prefix_only():
    desk = Principal("t", "desk", region="2201")
    assert desk.sees_region("220102")
    assert desk.sees_region("220199")
    assert not desk.sees_region("220201")
    assert not desk.sees_region("110101")


def test_province_desk_sees_all_its_cities():
    desk = Principal("t", "desk", region="22")
    assert desk.sees_region("220102") and desk.sees_region("222401")
    assert not desk.sees_region("210102")


def test_bank_sees_no_region():
    bank = Principal("t", "bank", bank_code="B001", region="22")
    assert not bank.sees_region("220102")


def test_principal_is_frozen():
    with pytest.raises(AttributeError):
        Principal("t", "bank").role = "admin"  # type: ignore[misc]


# --- the bootstrap admin token -------------------------------------------------------------------


def test_env_token_wins(tmp_path):
    (tmp_path / "admin-token").write_text("fw_admin_from_file\n")
    assert resolve_admin_token("fw_admin_from_env", tmp_path) == ("fw_admin_from_env", False)


def test_env_token_writes_nothing(tmp_path):
    resolve_admin_token("fw_admin_from_env", tmp_path)
    assert not (tmp_path / "admin-token").exists()


def test_file_token_reused(tmp_path):
    (tmp_path / "admin-token").write_text("  fw_admin_kept  \n")
    assert resolve_admin_token("", tmp_path) == ("fw_admin_kept", False)


def test_token_generated_and_written_0600(tmp_path):
    data_dir = tmp_path / "new" / "var"
    token, generated = resolve_admin_token("", data_dir)
    assert generated is True
    assert token.startswith("fw_admin_")
    path = data_dir / "admin-token"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_generated_token_reused_next_time(tmp_path):
    token, _ = resolve_admin_token("", tmp_path)
    assert resolve_admin_token("", tmp_path) == (token, False)


def test_empty_file_means_generate(tmp_path):
    (tmp_path / "admin-token").write_text("\n")
    token, generated = resolve_admin_token("", tmp_path)
    assert generated is True
    assert (tmp_path / "admin-token").read_text().strip() == token
