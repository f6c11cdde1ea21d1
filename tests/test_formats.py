"""Unit tests of the webhook payload formats (linkhub.formats): exact shapes per format and type."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from linkhub.core import formats
from linkhub.core.classify import agents, signals
from linkhub.core.classify.verdict import CODES, Reason, decide
from linkhub.core.events import EVENT_TYPES, Event
from linkhub.util import times

OCCURRED = "2026-11-23T09:15:02.481Z"
OCCURRED_MS = 1795425302481  # date -u -d 2026-11-23T09:15:02.481Z +%s%3N
CLICK_DETAILS = {
    "ip": "198.51.100.4", "user_agent": "Mozilla/5.0 (Windows NT 10.0)", "device": "desktop",
    "os": "Windows 10", "browser": "Firefox 64.1", "bot": False, "referer": None,
    "target": "https://example.com/a?utm_source=mail", "country": "PT",
}
# What the formats add to a click that carries no verdict (one a sender posted without it).
NO_VERDICT = {"verdict": "unknown", "reasons": []}
# A click /r/ recorded from Exchange Online Protection: the classifier's verdict, score and reasons.
SCANNED = {
    **CLICK_DETAILS, "bot": True, "verdict": "scanner", "score": -100, "classifier": "2026.12.1",
    "reasons": [{"code": "scanner_network", "weight": -70, "evidence": {"network": "microsoft_eop"}},
                {"code": "no_accept_language", "weight": -20, "evidence": {}},
                {"code": "early_hit", "weight": -25, "evidence": {"t_ms": 9000, "below_ms": 120000}}],
}
SCANNED_CODES = ["scanner_network", "no_accept_language", "early_hit"]


def event(type_: str, **overrides: Any) -> Event:
    values: dict[str, Any] = {
        "id": f"ev_{type_}", "account_id": "acc_1", "type": type_, "occurred_at": OCCURRED,
        "received_at": "2026-11-23T09:15:03.000Z", "source": "api", "email": "jo@example.com",
        "recipient_id": "r-42", "mailing_id": "m-7", "message_id": "msg-9",
    }
    values.update(overrides)
    return Event(**values)


def types_unsupported_by(fmt: str) -> list[str]:
    return [t for t in EVENT_TYPES if t not in formats.SUPPORTED_TYPES[fmt]]


# --- tables and time helpers -----------------------------------------------------------------

def test_tables_cover_exactly_the_supported_types():
    assert set(formats._OPTIMIZELY_FIELDS) == formats.SUPPORTED_TYPES["optimizely"]
    assert set(formats._ESPUTNIK_STATUS) == set(formats._ESPUTNIK_FIELDS) == formats.SUPPORTED_TYPES["esputnik"]
    assert set(formats._ARPOONE_TYPE) == set(formats._ARPOONE_DETAILS) == formats.SUPPORTED_TYPES["arpoone"]
    assert set(formats.SUPPORTED_TYPES) == set(formats.FORMATS) == set(formats._RENDERERS)


def test_rfc3339_to_ms():
    assert times.rfc3339_to_ms(OCCURRED) == OCCURRED_MS
    assert times.rfc3339_to_ms("1970-01-01T00:00:00Z") == 0
    assert times.rfc3339_to_ms("2026-11-23T11:15:02.481+02:00") == OCCURRED_MS  # offsets honoured
    assert times.rfc3339_to_ms("2026-11-23T09:15:02.481999Z") == OCCURRED_MS  # floor, like to_rfc3339
    assert times.format_ms(times.rfc3339_to_ms(OCCURRED)) == OCCURRED
    with pytest.raises(ValueError, match="is not an RFC 3339 timestamp"):
        times.rfc3339_to_ms("2026-11-23 09:15")


def test_format_naive_s():
    assert times.format_naive_s(OCCURRED_MS) == "2026-11-23T09:15:02"
    assert times.format_naive_s(0) == "1970-01-01T00:00:00"


# --- linkhub (native) ------------------------------------------------------------------------

@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_linkhub_every_type_has_the_native_schema(type_):
    body = formats.render("linkhub", event(type_, details={"k": 1}), 1)
    assert body == {
        "id": f"ev_{type_}", "type": type_, "occurred_at": OCCURRED, "email": "jo@example.com",
        "recipient_id": "r-42", "mailing_id": "m-7", "message_id": "msg-9", "url": None,
        "details": {"k": 1, **(NO_VERDICT if type_ == "click" else {})}, "attempt": 1,
    }


def test_linkhub_click_keeps_nulls_and_details():
    source = event("click", email=None, message_id=None, url="https://example.com/a", details=dict(CLICK_DETAILS))
    body = formats.render("linkhub", source, 3)
    assert list(body) == ["id", "type", "occurred_at", "email", "recipient_id", "mailing_id", "message_id",
                          "url", "details", "attempt"]
    assert body["email"] is None and body["message_id"] is None
    assert body["url"] == "https://example.com/a"
    assert body["details"] == {**CLICK_DETAILS, **NO_VERDICT}
    assert body["attempt"] == 3
    body["details"]["ip"] = "changed"
    assert source.details["ip"] == "198.51.100.4"  # the rendered body does not alias the stored event


# --- Optimizely ------------------------------------------------------------------------------

OPTIMIZELY_BASE = {
    "id": None, "recipientId": "r-42", "clientId": "acc_1", "created": OCCURRED_MS, "mediaType": "EMAIL",
    "mediaTypesToAddresses": {"EMAIL": "jo@example.com"}, "mailingId": "m-7", "mailId": "msg-9", "attempt": 1,
}


def optimizely_expected(type_: str, **extra: Any) -> dict[str, Any]:
    return {**OPTIMIZELY_BASE, "type": type_, "id": f"ev_{type_}", **extra}


def test_optimizely_open():
    body = formats.render("optimizely", event("open", details=dict(CLICK_DETAILS)), 2)
    assert body == optimizely_expected("open", remoteAddress="198.51.100.4", device="desktop",
                                       operatingSystem="Windows 10", browser="Firefox 64.1", attempt=2)
    assert isinstance(body["created"], int)


def test_optimizely_click_links_the_original_url():
    body = formats.render("optimizely", event("click", url="https://example.com/a", details=dict(CLICK_DETAILS)), 1)
    assert body == optimizely_expected("click", link="https://example.com/a", remoteAddress="198.51.100.4",
                                       device="desktop", operatingSystem="Windows 10", browser="Firefox 64.1",
                                       linkhubVerdict="unknown")


def test_optimizely_sent():
    body = formats.render("optimizely", event("sent", details={"mailing_name": "Welcome"}), 1)
    assert body == optimizely_expected("sent", mailingName="Welcome")
    assert "mailingName" not in formats.render("optimizely", event("sent"), 1)


@pytest.mark.parametrize(("category", "expected"), [("hard", "hardbounce"), ("soft", "softbounce")])
def test_optimizely_bounce_category(category, expected):
    details = {"category": category, "reason": "spam-related", "threshold_exceeded": True}
    body = formats.render("optimizely", event("bounce", details=details), 1)
    assert body == optimizely_expected("bounce", category=expected, reason="spam-related", thresholdExceeded=True)


def test_optimizely_bounce_defaults():
    body = formats.render("optimizely", event("bounce", details={"category": "soft"}), 1)
    assert body["thresholdExceeded"] is False
    assert "reason" not in body
    assert "category" not in formats.render("optimizely", event("bounce"), 1)  # never invented


def test_optimizely_unsubscribe_and_spamcomplaint():
    unsub = formats.render("optimizely", event("unsubscribe", details={"reason": "Unsubscribe via REST API"}), 2)
    assert unsub == optimizely_expected("unsubscribe", reason="Unsubscribe via REST API", attempt=2)
    spam = formats.render("optimizely", event("spamcomplaint", details={"provider": "AOL"}), 1)
    assert spam == optimizely_expected("spamcomplaint", providerName="AOL")


def test_optimizely_without_recipient_id_or_optional_ids():
    body = formats.render("optimizely", event("open", recipient_id=None, mailing_id=None, message_id=None), 1)
    assert body["recipientId"] == "jo@example.com"  # 001's examples do the same
    assert "mailingId" not in body and "mailId" not in body
    assert not {"remoteAddress", "device", "operatingSystem", "browser"} & set(body)
    no_email = formats.render("optimizely", event("open", email=None), 1)
    assert no_email["mediaTypesToAddresses"] == {} and no_email["recipientId"] == "r-42"


# --- eSputnik --------------------------------------------------------------------------------

ESPUTNIK_STATUS = {
    "delivered": "DELIVERED", "undelivered": "UNDELIVERED", "bounce": "UNDELIVERED", "open": "READ",
    "click": "CLICKED", "unsubscribe": "UNSUBSCRIBED", "spamcomplaint": "SPAM",
    "subscription_changed": "SUBSCRIPTION_CHANGED",
}


def esputnik_expected(type_: str, **extra: Any) -> dict[str, Any]:
    return {
        "iid": f"ev_{type_}", "contactId": "r-42", "email": "jo@example.com", "activityStatus": ESPUTNIK_STATUS[type_],
        "mediaType": "email", "messageId": "msg-9", "activityDateTime": "2026-11-23T09:15:02", "attempt": 1, **extra,
    }


@pytest.mark.parametrize("type_", ["delivered", "open", "unsubscribe", "spamcomplaint"])
def test_esputnik_plain_statuses(type_):
    assert formats.render("esputnik", event(type_, details={"reason": "x"}), 1) == esputnik_expected(type_)


def test_esputnik_click():
    body = formats.render("esputnik", event("click", url="https://example.com/a", details=dict(CLICK_DETAILS)), 4)
    assert body == esputnik_expected("click", clickEventLink="https://example.com/a", linkhubVerdict="unknown",
                                     attempt=4)


@pytest.mark.parametrize(("category", "hard"), [("hard", True), ("soft", False), (None, False)])
def test_esputnik_bounce_is_undelivered(category, hard):
    details = {"reason": "other", "description": "smtp;550 5.1.1 unknown user"}
    if category:
        details["category"] = category
    body = formats.render("esputnik", event("bounce", details=details), 1)
    assert body == esputnik_expected("bounce", statusDescription="smtp;550 5.1.1 unknown user", hardBounce=hard)
    assert body["hardBounce"] is hard


def test_esputnik_undelivered():
    body = formats.render("esputnik", event("undelivered", details={"description": "IM_NO_MONEY"}), 1)
    assert body == esputnik_expected("undelivered", statusDescription="IM_NO_MONEY", hardBounce=False)
    # The reason stands in when there is no description; nothing is invented when neither is known.
    assert formats.render("esputnik", event("bounce", details={"reason": "other"}), 1)["statusDescription"] == "other"
    assert "statusDescription" not in formats.render("esputnik", event("undelivered"), 1)


def test_esputnik_subscription_changed():
    details = {"categories": ["SMARTPHONES", "TABLETS"]}
    body = formats.render("esputnik", event("subscription_changed", email=None, message_id=None, details=details), 1)
    expected = esputnik_expected("subscription_changed",
                                 statusData={"subscription": {"subscriptions": ["SMARTPHONES", "TABLETS"]}})
    del expected["email"], expected["messageId"]  # absent values are omitted, as in 003's example
    assert body == expected
    empty = formats.render("esputnik", event("subscription_changed"), 1)
    assert empty["statusData"] == {"subscription": {"subscriptions": []}}


def test_esputnik_broadcast_id_and_utc_time():
    body = formats.render("esputnik", event("open", occurred_at="2026-11-23T23:30:00.999-02:00",
                                            details={"broadcast_id": 2833914}), 1)
    assert body["broadcastId"] == 2833914
    assert body["activityDateTime"] == "2026-11-24T01:30:00"  # converted to UTC, seconds only
    assert "broadcastId" not in formats.render("esputnik", event("open"), 1)
    assert "contactId" not in formats.render("esputnik", event("open", recipient_id=None), 1)


# --- Arpoone ---------------------------------------------------------------------------------

ARPOONE_TYPE = {"bounce": "Bounced", "click": "Clicked", "open": "Opened", "spamcomplaint": "Spam",
                "unsubscribe": "Unsubscribed"}


def arpoone_expected(type_: str, details: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    return {"EventType": ARPOONE_TYPE[type_], "Email": "jo@example.com", "MessageId": "msg-9",
            "Time": OCCURRED_MS, "EventDetails": details, "attempt": attempt}


@pytest.mark.parametrize("type_", ["open", "unsubscribe"])
def test_arpoone_open_and_unsubscribe(type_):
    body = formats.render("arpoone", event(type_, details=dict(CLICK_DETAILS)), 2)
    assert body == arpoone_expected(type_, {"CountryCode": "PT", "IpAddress": "198.51.100.4",
                                            "UserAgent": "Mozilla/5.0 (Windows NT 10.0)"}, 2)
    assert isinstance(body["Time"], int)


def test_arpoone_click():
    body = formats.render("arpoone", event("click", url="https://example.com/a", details=dict(CLICK_DETAILS)), 1)
    assert body == arpoone_expected("click", {"CountryCode": "PT", "IpAddress": "198.51.100.4",
                                              "UserAgent": "Mozilla/5.0 (Windows NT 10.0)",
                                              "Link": "https://example.com/a", "LinkhubVerdict": "unknown",
                                              "LinkhubScore": None, "LinkhubReasons": None})


def test_arpoone_country_is_null_when_unknown():
    details = {k: v for k, v in CLICK_DETAILS.items() if k != "country"}
    body = formats.render("arpoone", event("open", details=details), 1)
    assert body["EventDetails"] == {"CountryCode": None, "IpAddress": "198.51.100.4",
                                    "UserAgent": "Mozilla/5.0 (Windows NT 10.0)"}


@pytest.mark.parametrize(("category", "hard"), [("hard", True), ("soft", False)])
def test_arpoone_bounce(category, hard):
    details = {"category": category, "reason": "other", "description": "smtp;550 5.1.1 unknown user", "blocked": True}
    body = formats.render("arpoone", event("bounce", details=details), 1)
    assert body == arpoone_expected("bounce", {"IsBlocked": True, "IsHardBouce": hard, "BounceType": "other",
                                               "BounceDescription": "smtp;550 5.1.1 unknown user"})
    bare = formats.render("arpoone", event("bounce"), 1)["EventDetails"]
    assert bare == {"IsBlocked": False, "IsHardBouce": False, "BounceType": None, "BounceDescription": None}


def test_arpoone_spam_and_missing_envelope_values():
    body = formats.render("arpoone", event("spamcomplaint", message_id=None, details={"provider": "Yahoo"}), 1)
    assert body == {**arpoone_expected("spamcomplaint", {"FeedbackLoopSource": "Yahoo"}), "MessageId": None}
    assert formats.render("arpoone", event("spamcomplaint"), 1)["EventDetails"] == {"FeedbackLoopSource": None}


# --- across formats --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_unsupported_types_raise(fmt):
    for type_ in types_unsupported_by(fmt):
        with pytest.raises(ValueError, match=type_):
            formats.render(fmt, event(type_), 1)


def test_unsupported_types_per_format():
    assert types_unsupported_by("linkhub") == []
    assert types_unsupported_by("optimizely") == ["delivered", "undelivered", "subscription_changed"]
    assert types_unsupported_by("esputnik") == ["sent"]
    assert types_unsupported_by("arpoone") == ["sent", "delivered", "undelivered", "subscription_changed"]


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="unknown webhook format"):
        formats.render("mailchimp", event("open"), 1)
    with pytest.raises(ValueError, match="unknown webhook format"):
        formats.samples("acc_1", "mailchimp")


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_attempt_and_test_flag(fmt):
    type_ = "open"
    plain = formats.render(fmt, event(type_), 7)
    assert plain["attempt"] == 7 and "test" not in plain
    marked = formats.render(fmt, event(type_), 1, test=True)
    assert marked["attempt"] == 1 and marked["test"] is True


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_render_batch_is_a_compact_utf8_json_array(fmt):
    items = [(event(t, email="jöe@exämple.com", url="https://example.com/ü", details={"country": "DE"}), n)
             for n, t in enumerate(sorted(formats.SUPPORTED_TYPES[fmt]), start=1)]
    body = formats.render_batch(fmt, items, test=True)
    assert isinstance(body, bytes)
    decoded = json.loads(body.decode("utf-8"))
    assert isinstance(decoded, list) and len(decoded) == len(items)
    assert decoded == [formats.render(fmt, e, a, test=True) for e, a in items]
    assert [o["attempt"] for o in decoded] == list(range(1, len(items) + 1))
    assert all(o["test"] is True for o in decoded)
    assert "ö".encode() in body and b"\\u" not in body  # raw UTF-8, not \u escapes
    assert b", " not in body and b": " not in body  # compact
    assert formats.render_batch(fmt, []) == b"[]"


def test_render_batch_rejects_an_unsupported_type_in_the_batch():
    with pytest.raises(ValueError, match="the arpoone format cannot express 'sent' events"):
        formats.render_batch("arpoone", [(event("open"), 1), (event("sent"), 1)])


# --- samples ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_samples_one_per_supported_type(fmt):
    before = times.rfc3339_to_ms(times.now_rfc3339())
    events = formats.samples("acc_1", fmt)
    after = times.rfc3339_to_ms(times.now_rfc3339())
    assert [e.type for e in events] == [t for t in EVENT_TYPES if t in formats.SUPPORTED_TYPES[fmt]]
    for sample in events:
        assert sample.id == f"test_{sample.type}"
        assert sample.source == "test" and sample.account_id == "acc_1"
        assert before <= times.rfc3339_to_ms(sample.occurred_at) <= after
        assert sample.email and sample.recipient_id
        msgspec.json.decode(msgspec.json.encode(sample), type=Event)  # a valid Event
    rendered = json.loads(formats.render_batch(fmt, [(e, 1) for e in events], test=True))
    assert len(rendered) == len(events) and all(o["test"] is True for o in rendered)


def test_samples_are_realistic():
    by_type = {e.type: e for e in formats.samples("acc_1", "linkhub")}
    assert by_type["click"].url and by_type["click"].details["ip"]
    assert by_type["bounce"].details["category"] in ("hard", "soft")
    assert by_type["subscription_changed"].details["categories"]
    # every provider field is filled from a sample, so a receiver under verify sees the whole shape
    for fmt in ("optimizely", "arpoone"):
        for sample in formats.samples("acc_1", fmt):
            body = formats.render(fmt, sample, 1)
            details = body.get("EventDetails", body)
            assert None not in details.values(), (fmt, sample.type, details)


def test_samples_restricted_to_types():
    assert [e.type for e in formats.samples("acc_1", "esputnik", ("click", "bounce"))] == ["click", "bounce"]
    # types the format cannot express are left out, not sent
    assert [e.type for e in formats.samples("acc_1", "arpoone", ("sent", "open"))] == ["open"]
    assert formats.samples("acc_1", "optimizely", ("delivered",)) == []


def test_samples_do_not_share_mutable_details():
    first = formats.samples("acc_1", "linkhub", ("click",))[0]
    first.details["ip"] = "changed"
    assert formats.samples("acc_1", "linkhub", ("click",))[0].details["ip"] != "changed"


# --- the click's verdict, in every format ------------------------------------------------------

def test_every_format_carries_a_click_s_verdict_score_and_reasons():
    click = event("click", url="https://example.com/a", details=SCANNED)
    native = formats.render("linkhub", click, 1)["details"]
    assert (native["verdict"], native["score"], native["reasons"]) == ("scanner", -100, SCANNED["reasons"])
    for fmt in ("optimizely", "esputnik"):
        body = formats.render(fmt, click, 1)
        assert (body["linkhubVerdict"], body["linkhubScore"], body["linkhubReasons"]) == ("scanner", -100,
                                                                                        SCANNED_CODES), fmt
    details = formats.render("arpoone", click, 1)["EventDetails"]
    assert (details["LinkhubVerdict"], details["LinkhubScore"], details["LinkhubReasons"]) == ("scanner", -100,
                                                                                               SCANNED_CODES)


def test_the_added_keys_cannot_be_taken_for_a_provider_s_own():
    # Every key a provider format adds for the verdict starts with `linkhub`/`Linkhub`, which no field
    # of Optimizely's, eSputnik's or Arpoone's documents does; the rest of the element is unchanged.
    click = event("click", url="https://example.com/a", details=SCANNED)
    plain = event("click", url="https://example.com/a", details=CLICK_DETAILS)
    for fmt in ("optimizely", "esputnik", "arpoone"):
        with_verdict, without = formats.render(fmt, click, 1), formats.render(fmt, plain, 1)
        if fmt == "arpoone":
            with_verdict, without = with_verdict["EventDetails"], without["EventDetails"]
        added = set(with_verdict) - {k for k in without if not k.lower().startswith("linkhub")}
        assert added == {k for k in with_verdict if k.lower().startswith("linkhub")} and len(added) == 3, fmt
        assert {k: v for k, v in with_verdict.items() if k not in added} == {
            k: v for k, v in without.items() if k not in added}, fmt


@pytest.mark.parametrize("verdict", [None, "Human", 3, ["bot"], "person"])
def test_a_click_without_a_verdict_of_the_four_is_unknown_everywhere(verdict):
    # As the webhook's `verdicts` judged it: what a receiver sees is what was filtered on.
    details = {**CLICK_DETAILS, **({"verdict": verdict} if verdict is not None else {})}
    click = event("click", url="https://example.com/a", details=details)
    assert formats.render("linkhub", click, 1)["details"]["verdict"] == "unknown"
    assert formats.render("optimizely", click, 1)["linkhubVerdict"] == "unknown"
    assert formats.render("esputnik", click, 1)["linkhubVerdict"] == "unknown"
    assert formats.render("arpoone", click, 1)["EventDetails"]["LinkhubVerdict"] == "unknown"
    # No score or reasons are made up: omitted where absent values are, null in Arpoone's fixed shape.
    assert "linkhubScore" not in formats.render("optimizely", click, 1)
    assert "linkhubReasons" not in formats.render("esputnik", click, 1)
    assert formats.render("arpoone", click, 1)["EventDetails"]["LinkhubScore"] is None


def test_other_types_carry_no_verdict():
    opened = event("open", details=SCANNED)
    assert not any(k.lower().startswith("linkhub") for k in formats.render("optimizely", opened, 1))
    assert not any(k.lower().startswith("linkhub") for k in formats.render("esputnik", opened, 1))
    assert not any(k.lower().startswith("linkhub") for k in formats.render("arpoone", opened, 1)["EventDetails"])
    assert formats.render("linkhub", event("open", details={}), 1)["details"] == {}


def test_the_sample_click_is_a_person_as_the_classifier_would_judge_it():
    click = formats.samples("acc_1", "linkhub", ("click",))[0]
    reasons = [Reason(r["code"], r["weight"], r["evidence"]) for r in click.details["reasons"]]
    assert all(r.code in CODES for r in reasons)
    # The weights are the classifier's own: a change there shows here.
    weights = {**agents.WEIGHTS, **signals.WEIGHTS}
    assert [r.weight for r in reasons] == [weights[r.code] for r in reasons]
    decided = decide(reasons)
    assert (click.details["verdict"], click.details["score"]) == (decided.verdict, decided.score) == ("human", 25)
    for fmt in ("optimizely", "esputnik"):
        body = formats.render(fmt, formats.samples("acc_1", fmt, ("click",))[0], 1, test=True)
        assert body["linkhubVerdict"] == "human" and body["linkhubReasons"] == ["current_browser", "late_hit"]
