"""Send events to faultline with the official PagerDuty client library (PyPI `pagerduty`),
unmodified, as any tool built on it would. The library speaks only https, so faultline is put
behind a TLS terminator on loopback here (a self-signed certificate the client is told to
trust), as it would be in production. Prints one JSON object of what the library returned; the
Rust test checks faultline's side.

    pagerduty_client.py BASE_URL ROUTING_KEY
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse

import pagerduty

base, routing_key = sys.argv[1], sys.argv[2]
upstream = urllib.parse.urlsplit(base)

workdir = tempfile.mkdtemp()
cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
subprocess.run(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
     "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
    check=True, capture_output=True,
)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]


def pipe(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve():
    while True:
        try:
            client, _ = listener.accept()
            tls = context.wrap_socket(client, server_side=True)
        except OSError:
            continue
        plain = socket.create_connection((upstream.hostname, upstream.port))
        threading.Thread(target=pipe, args=(tls, plain), daemon=True).start()
        threading.Thread(target=pipe, args=(plain, tls), daemon=True).start()


threading.Thread(target=serve, daemon=True).start()
url = f"https://127.0.0.1:{port}/integrations/pagerduty"

client = pagerduty.EventsApiV2Client(routing_key, base_url=url, verify=cert)
out = {}
out["trigger"] = client.trigger(
    "BGP session down on edge-3", "edge-3", dedup_key="edge-3/bgp", severity="critical",
    payload={"group": "site_berlin", "class": "bgp", "component": "frr"},
    custom_details={"peer": "192.0.2.1", "state": "Idle"},
)
out["again"] = client.trigger("BGP session down on edge-3", "edge-3", dedup_key="edge-3/bgp", severity="critical")
out["generated"] = client.trigger("Packet loss 12%", "edge-4", severity="warning")
out["acknowledge"] = client.acknowledge("edge-3/bgp")
out["resolve"] = client.resolve("edge-3/bgp")


def refused(send):
    try:
        send()
        return "accepted"
    except pagerduty.Error as err:
        response = getattr(err, "response", None)
        body = None
        if response is not None:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        return {"status": getattr(response, "status_code", None), "body": body}


out["invalid"] = refused(lambda: client.trigger("", "edge-5", severity="critical"))
bad = pagerduty.EventsApiV2Client("flk_not_a_real_key", base_url=url, verify=cert)
out["bad_key"] = refused(lambda: bad.trigger("x", "y"))
print(json.dumps(out))
