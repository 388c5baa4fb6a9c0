"""Merchant accounts: one from the environment or several from a file, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartsync.config.merchants import (
    NOT_CONFIGURED,
    MerchantAccount,
    MerchantDirectory,
    load_merchants,
    load_merchants_file,
)
from cartsync.config.settings import load_settings
from cartsync.worker.errors import ConfigurationError, UnknownMerchant

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "merchants.example.toml"
EXAMPLE_ENV = {
    "CAMISAS_PASSWORD": "camisas-secret-1",
    "VIAJES_PASSWORD": "viajes-secret-2",
    "TALLER_PASSWORD": "taller-secret-3",
}


def settings_with(**values):
    return load_settings({}).with_overrides(**values)


def write(tmp_path, text):
    path = tmp_path / "merchants.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path, text, environ=None) -> str:
    """The one-line message loading ``text`` as a merchants file gives."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as caught:
        load_merchants(settings_with(merchants_file=str(path)), environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_single_merchant_credentials_serve_any_merchant_ref():
    """With username/password set, any merchant-ref gets those credentials and options."""
    directory = load_merchants(
        settings_with(
            sequra_username="api", sequra_password="pw-1", contract_options=" Multistore, garage,"
        )
    )
    assert directory.single
    account = directory.get("whatever-shop")
    assert account == MerchantAccount(
        "whatever-shop", "api", "pw-1", frozenset({"multistore", "garage"})
    )
    assert directory.refs() == []


def test_single_merchant_unknown_contract_option_is_named():
    """An unknown contract option in CARTSYNC_CONTRACT_OPTIONS is named in the error."""
    with pytest.raises(
        ConfigurationError, match=r"CARTSYNC_CONTRACT_OPTIONS: unknown contract option 'gold'"
    ):
        load_merchants(
            settings_with(sequra_username="api", sequra_password="pw", contract_options="gold")
        )


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"sequra_username": "api"}, "CARTSYNC_SEQURA_PASSWORD is empty"),
        ({"sequra_password": "pw-2"}, "CARTSYNC_SEQURA_USERNAME is empty"),
    ],
)
def test_half_configured_single_merchant_is_refused(values, named):
    """A username without a password (or the reverse) is one clear error."""
    with pytest.raises(ConfigurationError, match=named) as caught:
        load_merchants(settings_with(**values))
    assert "pw-2" not in str(caught.value)


def test_nothing_configured_fails_on_use_with_a_hint():
    """With no credentials at all, loading works but looking a merchant up says what to set."""
    directory = load_merchants(settings_with())
    assert not directory.configured
    with pytest.raises(ConfigurationError) as caught:
        directory.get("shop")
    assert str(caught.value) == NOT_CONFIGURED


def test_both_setups_at_once_are_refused(tmp_path):
    """A merchants file and single-merchant credentials together are ambiguous: refused."""
    path = write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    with pytest.raises(ConfigurationError, match="use one of them"):
        load_merchants(settings_with(merchants_file=str(path), sequra_username="u"))


def test_example_file_loads():
    """config/merchants.example.toml loads: refs, users, env passwords and options."""
    directory = load_merchants(settings_with(merchants_file=str(EXAMPLE)), EXAMPLE_ENV)
    assert not directory.single
    assert directory.refs() == ["camisasonline", "tallerpepe", "viajesbaratos"]
    camisas = directory.get("camisasonline")
    assert camisas.password == "camisas-secret-1"
    assert camisas.options == frozenset({"multistore", "shipment_ref"})
    assert directory.get("tallerpepe").username == "tallerpepe_api"


def test_inline_password_and_quoted_ref(tmp_path):
    """``password`` works as well as ``password_env``, and refs may be quoted TOML keys."""
    path = write(tmp_path, '[merchants."tienda.es"]\nusername = "t"\npassword = "p"\n')
    accounts = load_merchants_file(path, {})
    assert accounts == {"tienda.es": MerchantAccount("tienda.es", "t", "p", frozenset())}


def test_unknown_merchant_is_named(tmp_path):
    """Asking for a merchant the file does not have raises UnknownMerchant naming it."""
    directory = load_merchants(settings_with(merchants_file=str(EXAMPLE)), EXAMPLE_ENV)
    with pytest.raises(UnknownMerchant, match="'zapatos'"):
        directory.get("zapatos")


def test_missing_file_is_named(tmp_path):
    """A merchants file that does not exist is one line naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigurationError, match=r"nope\.toml does not exist"):
        load_merchants(settings_with(merchants_file=str(missing)))


def test_malformed_toml_names_the_line(tmp_path):
    """Broken TOML gives the line where it breaks, not a traceback."""
    message = config_error(tmp_path, '[merchants.a]\nusername = "a"\npassword = "unterminated\n')
    assert "not valid TOML" in message
    assert "line 3" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[merchants.a]\nusername = "a"\n', "merchant 'a': missing password"),
        (
            '[merchants.a]\nusername = "a"\npassword_env = "A_PW"\n',
            "merchant 'a': missing password (environment variable A_PW is not set)",
        ),
        ('[merchants.a]\npassword = "x"\n', "merchant 'a': username is missing"),
        (
            '[merchants.a]\nusername = "a"\npassword = "x"\noptions = ["garage", "gold"]\n',
            "merchant 'a': unknown contract option 'gold'",
        ),
        (
            '[merchants.a]\nusername = "a"\npassword = "x"\noptions = "garage"\n',
            "merchant 'a': options must be a list of strings",
        ),
        ('[merchants.a]\nusername = "a"\npasword = "x"\n', "merchant 'a': unknown key 'pasword'"),
        (
            '[merchants.a]\nusername = "a"\npassword = "x"\npassword_env = "Y"\n',
            "not both",
        ),
        ('[merchant.a]\nusername = "a"\n', "unknown top-level key 'merchant'"),
        ("", "no merchants"),
    ],
)
def test_each_file_problem_is_one_clear_line(tmp_path, text, expected):
    """Every mistake in the file is reported as one line naming the merchant and the key."""
    assert expected in config_error(tmp_path, text)


def test_contract_options_env_is_refused_with_a_file(tmp_path):
    """CARTSYNC_CONTRACT_OPTIONS with a merchants file would be ignored, so it is refused."""
    with pytest.raises(ConfigurationError, match="per merchant"):
        load_merchants(settings_with(merchants_file=str(EXAMPLE), contract_options="garage"))


def test_passwords_never_show_in_reprs_or_errors(tmp_path):
    """Account and directory reprs hide passwords, and so do the errors about a file."""
    directory = load_merchants(settings_with(merchants_file=str(EXAMPLE)), EXAMPLE_ENV)
    account = directory.get("camisasonline")
    shown = repr(account) + str(account) + repr(directory)
    single = load_merchants(settings_with(sequra_username="u", sequra_password="single-pw-9"))
    shown += repr(single) + repr(single.get("x"))
    message = config_error(
        tmp_path, '[merchants.a]\nusername = "a"\npassword = "inline-pw-4"\noptions = ["gold"]\n'
    )
    for secret in [*EXAMPLE_ENV.values(), "single-pw-9"]:
        assert secret not in shown
    assert "inline-pw-4" not in message


def test_directory_refuses_to_mix_modes():
    """A directory is either single-merchant or a list of accounts, never both."""
    with pytest.raises(ValueError, match="either"):
        MerchantDirectory([MerchantAccount("a", "a", "p")], single=MerchantAccount("", "u", "p"))


def test_reading_the_configuration_loads_no_schema():
    """The contract options live with the accounts: importing them loads no marshmallow schema."""
    import subprocess
    import sys

    check = (
        "import sys, cartsync.config.merchants\n"
        "assert 'marshmallow' not in sys.modules\n"
        "assert 'cartsync.tasks.schemas' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_schemas_and_accounts_know_the_same_contract_options():
    """The schemas' option names are the accounts' own, not a copy."""
    from cartsync.config import merchants
    from cartsync.tasks.schemas import options
    from cartsync.tasks.validation import CONTRACT_OPTIONS

    assert options.CONTRACT_OPTIONS is merchants.CONTRACT_OPTIONS is CONTRACT_OPTIONS
    assert options.normalize({"garage"}) == {"garage", "multistore"}
