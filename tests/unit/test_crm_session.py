"""connector.crm.http.CRMSession: the environment's proxy settings, read once per origin."""

from connector.crm.http import CRMSession


def settings(session, url):
    return session.merge_environment_settings(url, {}, None, None, None)


def test_the_proxy_of_the_environment_is_used_and_no_proxy_hosts_go_direct(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    session = CRMSession()

    assert settings(session, "https://online.superoffice.com/Cust1/api/v1/Person/1")[
        "proxies"]["https"] == "http://proxy.example:3128"
    assert "https" not in settings(session, "https://crm.internal.example/api/v1/Person/1")[
        "proxies"]


def test_the_environment_is_read_once_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:3128")
    session = CRMSession()
    first = settings(session, "https://online.superoffice.com/Cust1/api/v1/Person/1")
    monkeypatch.setenv("HTTPS_PROXY", "http://second.example:3128")

    again = settings(session, "https://online.superoffice.com/Cust1/api/v1/Person/2")
    elsewhere = settings(session, "https://sod.superoffice.com/Cust1/api/v1/Person/2")

    assert first["proxies"]["https"] == again["proxies"]["https"] == "http://first.example:3128"
    assert elsewhere["proxies"]["https"] == "http://second.example:3128"
    again["proxies"]["https"] = "changed by a caller"
    assert settings(session, "https://online.superoffice.com/x")["proxies"]["https"] == (
        "http://first.example:3128")


def test_a_request_with_its_own_settings_is_merged_as_requests_does(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    session = CRMSession()

    assert settings(session, "https://online.superoffice.com/")["verify"] == "/etc/ssl/bundle.pem"
    assert session.merge_environment_settings("https://online.superoffice.com/", {}, None,
                                              False, None)["verify"] is False
