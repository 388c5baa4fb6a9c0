"""The notification settings: refused with the variable's name when wrong, the webhook URL
(a credential) never shown."""

from __future__ import annotations

import pytest

from cartsync.config.settings import InvalidSetting, load_settings


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("CARTSYNC_NOTIFY_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/x"),
        ("CARTSYNC_NOTIFY_WEBHOOK_URL", "ftp://hooks.example.com/x"),
        ("CARTSYNC_NOTIFY_WEBHOOK_URL", "https:///no-host"),
        ("CARTSYNC_NOTIFY_WEBHOOK_URL", "https://h.example.com:99999/x"),
        ("CARTSYNC_CONSOLE_BASE_URL", "cartsync.example.com"),
        ("CARTSYNC_NOTIFY_INTERVAL_S", "5"),
        ("CARTSYNC_NOTIFY_INTERVAL_S", "nan"),
        ("CARTSYNC_NOTIFY_INTERVAL_S", "soon"),
    ],
)
def test_a_wrong_notification_setting_names_its_variable(name, raw):
    """A webhook or console URL that is no http(s) URL with a host, or an interval outside
    10 s to a year, stops the process with one line naming the variable."""
    with pytest.raises(InvalidSetting, match=f"^{name}="):
        load_settings({name: raw})


def test_the_webhook_url_is_hidden_like_a_password():
    """A Slack webhook URL is its credential: it shows neither in a repr nor in an error."""
    url = "https://hooks.slack.com/services/T000/B000/s3cretT0ken"
    settings = load_settings({"CARTSYNC_NOTIFY_WEBHOOK_URL": url})
    assert settings.notify_webhook_url == url
    assert "s3cretT0ken" not in repr(settings)
    with pytest.raises(InvalidSetting) as caught:
        load_settings({"CARTSYNC_NOTIFY_WEBHOOK_URL": "ftp://x/s3cretT0ken"})
    assert "s3cretT0ken" not in str(caught.value)


def test_notifications_are_off_by_default():
    """Nothing is sent unless a webhook URL is configured; the interval defaults to 60 s."""
    settings = load_settings({})
    assert settings.notify_webhook_url == ""
    assert settings.notify_interval_s == 60.0
    assert settings.console_base_url == ""
