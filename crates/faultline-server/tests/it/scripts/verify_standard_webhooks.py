"""Verify webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), unmodified, as a receiver built on it would: so that faultline's signatures
are checked by an implementation that is not faultline's.

    verify_standard_webhooks.py CASES.json

CASES.json is a list of {"secret", "id", "timestamp", "signature", "body"}: one received request
(its webhook-id, webhook-timestamp and webhook-signature headers and its raw body) and the
secret to verify it under. Prints one JSON object, {"verified": [ids], "failed": [{"id",
"error"}]}, and exits 1 when any case fails (or there is none), 0 when every one verifies.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)

verified, failed = [], []
for case in cases:
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": case["timestamp"],
        "webhook-signature": case["signature"],
    }
    body = case["body"].encode("utf-8")
    try:
        payload = Webhook(case["secret"]).verify(body, headers)
    except Exception as err:  # WebhookVerificationError, or whatever else the library raises
        failed.append({"id": case["id"], "error": f"{type(err).__name__}: {err}"})
        continue
    if payload != json.loads(body):
        failed.append({"id": case["id"], "error": "the verified payload is not the body"})
        continue
    verified.append(case["id"])

print(json.dumps({"verified": verified, "failed": failed}))
sys.exit(1 if failed or not cases else 0)
