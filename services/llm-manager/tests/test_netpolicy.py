"""The pull URL policy on its own: allow-list matching and internal-address refusal (real DNS for loopback)."""

from __future__ import annotations

import pytest

from therascript_common.errors import InvalidArgument
from therascript_llm_manager.netpolicy import UrlPolicy, host_allowed


def test_allow_list_matches_exact_hosts_and_subdomain_wildcards() -> None:
    allowed = ["huggingface.co", "*.hf.co"]
    assert host_allowed("huggingface.co", allowed) and host_allowed("cas-bridge.xethub.hf.co", allowed)
    assert not host_allowed("evilhuggingface.co", allowed) and not host_allowed("hf.co", allowed)
    assert not host_allowed("huggingface.co.evil.com", allowed)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1",
                                     "fe80::1", "::ffff:10.0.0.1", "0.0.0.0", "100.64.0.1"])
def test_internal_addresses_are_refused(address: str) -> None:
    policy = UrlPolicy(["models.example"], allow_private=False, resolver=lambda _host: [address])
    with pytest.raises(InvalidArgument, match="internal address"):
        policy.check("https://models.example/x.gguf")


def test_public_addresses_pass_and_every_resolved_address_counts() -> None:
    assert UrlPolicy(["models.example"], False, resolver=lambda _h: ["93.184.216.34"]).check(
        "https://models.example/x.gguf").host == "models.example"
    mixed = UrlPolicy(["models.example"], False, resolver=lambda _h: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(InvalidArgument):
        mixed.check("https://models.example/x.gguf")


def test_real_resolution_of_localhost_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="internal address"):
        UrlPolicy(["localhost"], allow_private=False).check("http://localhost/x.gguf")


def test_an_empty_allow_list_disables_pulls() -> None:
    with pytest.raises(InvalidArgument, match="disabled"):
        UrlPolicy([], allow_private=True).check("https://huggingface.co/x.gguf")
