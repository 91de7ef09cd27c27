"""`make test`'s browser step says what failed and what to do, before any test runs."""

from __future__ import annotations

import shutil

import pytest

from foodflow.platform.errors import InfraError
from foodflow.tools.infra import browser, process


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "find_chromium", lambda: None)


def test_the_tests_side_only_looks_and_says_how_to_install(no_chromium: None) -> None:
    with pytest.raises(InfraError) as caught:
        browser.require_chromium()
    assert "not installed" in caught.value.message
    assert "make test" in caught.value.log_tail
    assert "apt-get install -y chromium" in caught.value.log_tail


def test_without_root_it_says_what_to_install(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "is_root", lambda: False)
    installs: list[list[str]] = []
    monkeypatch.setattr(process, "apt_install", lambda packages, **kw: installs.append(packages))
    with pytest.raises(InfraError) as caught:
        browser.install_chromium()
    assert installs == []
    assert "sudo apt-get install -y chromium" in caught.value.log_tail


def test_a_failed_apt_install_is_reported_with_what_to_do(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "is_root", lambda: True)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    shown: list[bool] = []

    def failing(packages: list[str], *, server: str, show_output: bool = False) -> None:
        shown.append(show_output)
        raise InfraError(server, "apt-get install -y failed (exit 100)", "its output is above")

    monkeypatch.setattr(process, "apt_install", failing)
    with pytest.raises(InfraError) as caught:
        browser.install_chromium()
    assert shown == [True]  # apt's own output went to the terminal
    assert "installing Chromium failed: apt-get install -y failed (exit 100)" in str(caught.value)
    assert "its output is above" in caught.value.log_tail
    assert "sudo apt-get install -y chromium" in caught.value.log_tail


def test_a_present_chromium_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "find_chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(process, "apt_install", lambda *a, **kw: pytest.fail("no install"))
    assert browser.install_chromium() == ("/usr/bin/chromium", False)
    assert browser.require_chromium() == "/usr/bin/chromium"
