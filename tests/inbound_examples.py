"""The example payloads of the providers' public webhook documents, verbatim (whitespace aside).

Optimizely Campaign's "Webhooks" page gives one example per event type; eSputnik's "Webhooks" page
gives one array "with all possible status options", whose `mediaType` values are bare words (not
JSON). Arpoone's "Email webhooks" page gives the envelope and each type's `EventDetails` with
placeholders (`<string>`, `<long>`) instead of values: ARPOONE_* below fill them in, one item per
type, keeping every key as the page spells it (`IsHardBouce` included).
"""

from __future__ import annotations

# Optimizely Campaign: "Example: List of event data (opens) in JSON format"
OPTIMIZELY_OPENS = """[{
"type":"open",
"recipientId":"123456789005",
"userListId":123456789003,
"remoteAddress":"10.420.3.42",
"clientId":123456789001,
"mailingId":123456789004,
"created":1564590054000,
"subscriptionId":1234567,
"mailId":"3P5W8B4-3P5W0LI-BSLXEC",
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"device":"desktop",
"operatingSystem":"Windows 10",
"browser":"Firefox 64.1",
"attempt":2
},  {
"type":"open",
"recipientId":"123456789005",
"userListId":123456789003,
"remoteAddress":"10.420.3.42",
"clientId":123456789001,
"mailingId":123456789004,
"created":1564590054000,
"subscriptionId":1234567,
"mailId":"4P6W8B4-4P6W0LI-BSLXEC",
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"device":"desktop",
"operatingSystem":"Windows 10",
"browser":"Firefox 64.1",
"attempt":5
}]"""

# Optimizely Campaign: "Example: Event data (clicks) in JSON format"
OPTIMIZELY_CLICK = """{
"type":"click",
"link":"https://www.optimizely.com",
"mailingId":10230355206,
"remoteAddress":"10.420.3.42",
"linkId":10180855027,
"device":"desktop",
"browser":"Safari 13.1",
"operatingSystem":"Mac 10.13",
"created":1617108763000,
"mailId":"4P6W8B4-4P6W0LI-BSLXEC",
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"userListId":10180860004,
"recipientId":"john.smith@example.com",
"subscriptionId":10227900201,
"clientId":10180860001,
"attempt":1}"""

# Optimizely Campaign: "Example: Event data (mailings sent) in JSON format"
OPTIMIZELY_SENT = """{
"mailingType":"campaign",
"type":"sent",
"id":"0a673110-17883138caf-178832ea49f-2690c03e51f4cc26",
"mailingId":10230355206,
"mediaType":"EMAIL",
"mailingName":"Welcome",
"created":1617108575391,
"mailId":"4P6W8B4-4P6W0LI-BSLXEC",
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"userListId":10180860004,
"recipientId":"john.smith@example.com",
"subscriptionId":10227900201,
"clientId":10180860001,
"attempt":1
}"""

# Optimizely Campaign: "Example: Event data (bounce) in JSON format"
OPTIMIZELY_BOUNCE = """{
"type":"bounce",
"id":"0a673102-178d27b2c8c-178d2cac0e4-c7420699923845e",
"recipientId":"john.smith@example.com",
"userListId":10180860004,
"clientId":10180860001,
"created":1617108575391,
"subscriptionId":10227900201,
"mailId":"4P6W8B4-4P6W0LI-BSLXEC",
"mailingId":10230355206,
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"category":"softbounce",
"mediaType":"EMAIL",
"reason":"other",
"thresholdExceeded":false,
"attempt":1
}"""

# Optimizely Campaign: "Example: Event data (unsubscribe) in JSON format"
OPTIMIZELY_UNSUBSCRIBE = """{
"type":"unsubscribe",
"reason":"Unsubscribe via REST API",
"id":"0acb3115-17aa6042099-17aaa1c69bf-6efb42209c0b1",
"mailingId":10230355205,
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"mediaType":"EMAIL",
"subscriptionId":10237984200,
"mailId":"4P6W7B7-4P5W0LI-BALXEC",
"created":1617108763000,
"recipientId":"john.smith@example.com",
"userListId":10180860009,
"clientId":10180860001,
"attempt":2
}"""

# Optimizely Campaign: "Example: Event data (spam complaint) in JSON format"
OPTIMIZELY_SPAMCOMPLAINT = """{
"mailingType": "campaign",
"providerName": "AOL",
"id": "0a0a3742-17k7f11690c-13c82b66689-63eb542f53667a61",
"mailingId": 365704742069,
"type":"spamcomplaint",
"mediaTypesToAddresses": {      "EMAIL":"john.smith@example.com"    },
"subscriptionId":10237984200,
"mailId":"4P6W7B7-4P5W0LI-BALXEC",
"created":1617108763000,
"userListId":10180860009,
"recipientId":"john.smith@example.com",
"clientId":10180860001,
"attempt":2
}"""

# eSputnik: "The test example of a webhook as JSON array with all possible status options"
ESPUTNIK_ALL_STATUSES = """[
{
"iid": "ffd3e1a7-a270-4e58-94de-5ac681c5c8e7",
"contactId": 687266822,
"activityStatus": "SUBSCRIPTION_CHANGED",
"mediaType": email,
"activityDateTime": "2019-09-26T14:45:18",
"statusData": {
"subscription": {
"subscriptions": [
"SMARTPHONES",
"TABLETS",
"LAPTOPS"
]
}
}
},
{
"broadcastId": 2833914,
"iid": "76662EBB-9FD4-4A6A-B1F8-2F594DF9B7B4",
"contactId": 295953704,
"email": "test@rambler.ru",
"activityStatus": "DELIVERED",
"mediaType": email,
"messageId": 976440,
"messageInstanceId": 1344540,
"activityDateTime": "2018-03-01T13:31:52",
"viewMessageLink": "https://123.esclick.me/test"
},
{
"broadcastId": 2833915,
"hardBounce": false,
"iid": "D5AF8EFC-2E8F-4BB5-B427-77D554B30E65",
"contactId": 357885291,
"sms": "380671234567",
"activityStatus": "UNDELIVERED",
"mediaType": sms,
"activityDateTime": "2019-10-01T03:43:49",
"statusDescription": "IM_NO_MONEY"
},
{
"broadcastId": 2833914,
"hardBounce": false,
"iid": "76662EBB-9FD4-4A6A-B1F8-2F594DF9B7B4",
"contactId": 295953704,
"email": "test@rambler.ru",
"activityStatus": "UNDELIVERED",
"mediaType": email,
"messageId": 976440,
"messageInstanceId": 1344540,
"activityDateTime": "2018-03-01T13:31:58",
"statusDescription": "smtp;554 5.7.1 Spam message rejected; If this is not spam contact abuse",
"viewMessageLink": "https://123.esclick.me/test"
},
{
"workflowId": 245460,
"workflowBlockId": "e_e9e90420db06b64c157440cd60d0b73d",
"sourceEventKey": "1258810400",
"sourceEventTypeKey": "subscribeFromApi",
"iid": "0bb5e1dc-0d1b-4deb-948f-8cea4d8ef738",
"contactId": 1258810400,
"email": "test@gmail.com",
"activityStatus": "READ",
"mediaType": email,
"messageId": 1235215,
"messageInstanceId": 1622691,
"messageTag": "1522397496",
"activityDateTime": "2018-05-15T04:05:53",
"viewMessageLink": "https://123.esclick.me/test"
},
{
"workflowId": 245460,
"workflowBlockId": "e_e9e90420db06b64c157440cd60d0b73d",
"sourceEventKey": "1258810400",
"sourceEventTypeKey": "subscribeFromApi",
"iid": "92227CB7-4EEF-4168-9EA5-43F3ED3559F8",
"contactId": 1258810400,
"email": "test@gmail.com",
"activityStatus": "UNSUBSCRIBED",
"mediaType": email,
"messageId": 1166457,
"messageInstanceId": 1550164,
"messageTag": "1521722870",
"activityDateTime": "2018-05-15T09:56:40",
"viewMessageLink": "https://123.esclick.me/test"
},
{
"workflowId": 245460,
"workflowBlockId": "e_e9e90420db06b64c157440cd60d0b73d",
"sourceEventKey": "1258810400",
"sourceEventTypeKey": "subscribeFromApi",
"iid": "d08d1e15-ea92-4d5c-8dc9-6f750250a6ff",
"contactId": 1258810400,
"email": "test@gmail.com",
"activityStatus": "CLICKED",
"mediaType": email,
"messageId": 1242672,
"messageInstanceId": 1630305,
"messageTag": "1522397496",
"activityDateTime": "2018-05-15T04:45:04",
"viewMessageLink": "https://123.esclick.me/test",
"clickEventLink": "https://test.ua/promo/"
},
{
"workflowId": 245460,
"workflowBlockId": "e_e9e90420db06b64c157440cd60d0b73d",
"sourceEventKey": "1258810400",
"sourceEventTypeKey": "subscribeFromApi",
"iid": "0ae4b6a3-59ad-426e-a40b-ce8f55bd40bc",
"contactId": 1258810400,
"email": "test@mail.ru",
"activityStatus": "SPAM",
"mediaType": email,
"messageId": 1242672,
"messageInstanceId": 1630305,
"messageTag": "1522397496",
"activityDateTime": "2018-05-15T08:23:56",
"viewMessageLink": "https://123.esclick.me/test"
}
]"""

# Arpoone: the "Invocation" envelope with each type's "EventDetails", placeholders filled in.
ARPOONE_ALL_TYPES = """[
{
"EventType": "Opened",
"Email": "ana@example.com",
"MessageId": "3f2b8c1e-7d4a-4e2b-9c1d-2a6b8e0f4d11",
"Time": 1764587400123,
"EventDetails": {
"CountryCode": "PT",
"IpAddress": "198.51.100.23",
"UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
}
},
{
"EventType": "Clicked",
"Email": "ana@example.com",
"MessageId": "3f2b8c1e-7d4a-4e2b-9c1d-2a6b8e0f4d11",
"Time": 1764587460456,
"EventDetails": {
"CountryCode": "PT",
"IpAddress": "198.51.100.23",
"UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
"Link": "https://shop.example.com/promo?utm_source=arpoone"
}
},
{
"EventType": "Bounced",
"Email": "rui@example.net",
"MessageId": "8a1d5e2f-0b3c-4d6e-8f7a-9b0c1d2e3f40",
"Time": 1764587500000,
"EventDetails": {
"IsBlocked": false,
"IsHardBouce": true,
"BounceType": "HardBounce",
"BounceDescription": "550 5.1.1 <rui@example.net>: Recipient address rejected: User unknown"
}
},
{
"EventType": "Unsubscribed",
"Email": "ana@example.com",
"MessageId": "3f2b8c1e-7d4a-4e2b-9c1d-2a6b8e0f4d11",
"Time": 1764587520789,
"EventDetails": {
"CountryCode": "PT",
"IpAddress": "2001:db8::17",
"UserAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
}
},
{
"EventType": "Spam",
"Email": "marta@example.org",
"MessageId": "c4e5f6a7-b8c9-4d0e-a1f2-b3c4d5e6f708",
"Time": 1764587600000,
"EventDetails": {
"FeedbackLoopSource": "Microsoft JMRP"
}
}
]"""
