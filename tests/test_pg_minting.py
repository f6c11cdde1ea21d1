"""Minting from two processes at once on one PostgreSQL database: idempotent, and codes never collide.

Two real `linkhub serve` processes share a database of a throwaway PostgreSQL cluster (pgserver.py's
`pg_url`, so this runs in the SQLite run too). Each round, the same Outreach link-replacement call (the
same recipient and URLs) reaches both servers at the same moment, twice each, so each process's writer
and the two processes race to mint the same links. Every answer must give the same code for the same
recipient and URL, whichever process answered and whenever, and no code may name two different links.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from linkhub.store import connect, migrate

from conftest import Account, create_account, outreach_body, post_links, query
from servers import Server, start_server

ROUNDS = 40
RECIPIENTS = 20  # rounds past this one repeat the calls of the first ones: the same codes again
URLS = 30
CALLS_PER_SERVER = 2  # at once, on connections of their own
# A call answered 503 (the writer did not commit in time on a busy machine) is retried, as Outreach's
# next email would be: minting is idempotent, and the retry must answer the codes of the first try.
RETRIES = 5


@pytest.fixture
def servers(pg_url: str) -> Iterator[tuple[Server, Server]]:
    conn = connect(pg_url)
    try:
        migrate(conn)
    finally:
        conn.close()
    started: list[Server] = []
    try:
        started.append(start_server(pg_url))
        started.append(start_server(pg_url))
        yield started[0], started[1]
        for server in started:
            assert server.stop() == 0, server.output
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.kill()


def _call(recipient: int) -> dict[str, Any]:
    # Some URLs every recipient's email has, some its own: the same target for several recipients must
    # still be a link (and a code) for each.
    data = [f"https://example.com/shared/{i}" for i in range(URLS // 2)]
    data += [f"https://example.com/p{recipient}/{i}" for i in range(URLS - URLS // 2)]
    return outreach_body(data, mailing="m-1", prospect=f"p-{recipient}", email=f"p{recipient}@example.com")


def _codes(answer: httpx.Response) -> dict[str, str]:
    return {url: short.rsplit("/r/", 1)[1] for url, short in answer.json()["data"].items()}


def test_two_servers_minting_the_same_links_at_once_answer_the_same_codes(servers: tuple[Server, Server],
                                                                           pg_url: str) -> None:
    account: Account = create_account(pg_url)
    clients = [server.client() for server in servers for _ in range(CALLS_PER_SERVER)]
    answered: dict[tuple[str, str], set[str]] = defaultdict(set)
    retried = 0
    try:
        for client in clients:  # connected before the first round, so the calls of a round start together
            assert client.get("/healthz").status_code == 200
        for round_ in range(ROUNDS):
            recipient = round_ % RECIPIENTS
            body = json.dumps(_call(recipient)).encode()
            start = threading.Barrier(len(clients))
            answers: list[list[httpx.Response]] = [[] for _ in clients]

            def send(i: int, client: httpx.Client, answers: list[list[httpx.Response]] = answers,
                     start: threading.Barrier = start, body: bytes = body) -> None:
                start.wait(timeout=30)
                for _ in range(RETRIES):
                    answer = post_links(client, account, body)
                    answers[i].append(answer)
                    if answer.status_code != 503:
                        return

            threads = [threading.Thread(target=send, args=(i, client)) for i, client in enumerate(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
                assert not thread.is_alive()
            for tries in answers:
                assert tries, "a call got no answer"
                for answer in tries[:-1]:
                    assert answer.status_code == 503 and answer.json()["error"] == "unavailable", answer.text
                retried += len(tries) - 1
                final = tries[-1]
                assert final.status_code == 200, final.text
                codes = _codes(final)
                assert sorted(codes) == sorted(json.loads(body)["data"])  # every link replaced
                for url, code in codes.items():
                    answered[(f"p-{recipient}", url)].add(code)
    finally:
        for client in clients:
            client.close()

    # The same recipient and URL: one code, in every answer of every round, from either process.
    differing = {key: codes for key, codes in answered.items() if len(codes) != 1}
    assert not differing, f"{len(differing)} links answered with more than one code: {list(differing.items())[:3]}"
    # No code names two links: each answered code is one (recipient, URL).
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, codes in answered.items():
        for code in codes:
            owners[code].add(key)
    assert all(len(keys) == 1 for keys in owners.values())
    # And the database holds exactly those links, each once, under the code answered.
    rows = query(pg_url, "SELECT code, prospect_id, target_url FROM links WHERE account_id = ?", (account.id,))
    assert len(rows) == RECIPIENTS * URLS == len(answered)
    assert {(row["prospect_id"], row["target_url"]): {row["code"]} for row in rows} == answered
