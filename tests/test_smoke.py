from conftest import outreach_body, post_links, query


def test_replace_then_redirect_records_click(server, account):
    with server.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/a"]))
        assert answer.status_code == 200, answer.text
        short = answer.json()["data"]["https://example.com/a"]
        assert short.startswith(server.url + "/r/")
        redirect = client.get(short)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://example.com/a"
    rows = query(server.db_path, "SELECT * FROM clicks")
    assert len(rows) == 1
    assert rows[0]["original_url"] == "https://example.com/a"
