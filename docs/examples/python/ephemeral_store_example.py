#!/usr/bin/env python3
"""Use ephemeral-store from Python with the standard library only.

Put, get, compare-and-swap and the handling of the API's error codes
(docs/openapi.yaml, schema ErrorCode), over mutual TLS: the client presents a
certificate whose Common Name is a user of the users ConfigMap.

    python3 ephemeral_store_example.py \\
        --endpoint https://ephemeral-store:8087 \\
        --cert myuser.crt --key myuser.key --cacert rootCA.crt

Each flag may also come from the environment: ES_ENDPOINT, ES_CERT, ES_KEY,
ES_CACERT. The script exits 0 when every step behaved as the API promises.
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse


class StoreError(Exception):
    """An error answer: its HTTP status and the stable code to compare."""

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Store:
    """A minimal client of one endpoint of the client API."""

    def __init__(self, endpoint, cert, key, cacert, timeout=10.0):
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"endpoint {endpoint!r}: want https://host:port")
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cacert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile=cert, keyfile=key)
        self._conn = http.client.HTTPSConnection(
            url.hostname, url.port or 8087, context=ctx, timeout=timeout)

    def close(self):
        self._conn.close()

    def _request(self, method, path, query=None, body=None):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        self._conn.request(method, path, body=body, headers=headers)
        resp = self._conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            try:
                err = json.loads(data)["error"]
                code, message = err["code"], err["message"]
            except (ValueError, KeyError, TypeError):
                code, message = "", data.decode("utf-8", "replace")
            raise StoreError(resp.status, code, message, resp.getheader("Retry-After"))
        return resp, data

    @staticmethod
    def _key_path(key):
        # Every byte but unreserved ones escaped, "/" too: the server
        # unescapes the whole path, and no proxy can clean "a//b" or "x/../y".
        return "/v1/kv/" + urllib.parse.quote(key, safe="")

    def put(self, key, value, ttl=None, prev_revision=None):
        """Write; prev_revision makes it a compare-and-swap (0: create only).
        Returns {"key", "revision", "create_revision", "modify_revision"}."""
        query = {}
        if ttl is not None:
            query["ttl"] = ttl
        if prev_revision is not None:
            query["prev_revision"] = str(prev_revision)
        _, data = self._request("PUT", self._key_path(key), query, value)
        return json.loads(data)

    def get(self, key, stale=False):
        """Returns (value bytes, modify revision). Reads are safe to retry,
        so a 503 (no_quorum, not_ready) is retried after Retry-After."""
        for attempt in range(5):
            try:
                resp, data = self._request("GET", self._key_path(key), {"stale": "true"} if stale else None)
                return data, int(resp.getheader("ES-Modify-Revision"))
            except StoreError as e:
                if e.code not in ("no_quorum", "not_ready") or attempt == 4:
                    raise
                time.sleep(float(e.retry_after or 1))
        raise AssertionError("unreachable")

    def delete(self, key, prev_revision=None):
        query = {"prev_revision": str(prev_revision)} if prev_revision is not None else None
        _, data = self._request("DELETE", self._key_path(key), query)
        return json.loads(data)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default=os.environ.get("ES_ENDPOINT", "https://localhost:8087"))
    p.add_argument("--cert", default=os.environ.get("ES_CERT"), help="client certificate (PEM)")
    p.add_argument("--key", default=os.environ.get("ES_KEY"), help="its private key (PEM)")
    p.add_argument("--cacert", default=os.environ.get("ES_CACERT"), help="the CA that signed the server (PEM)")
    p.add_argument("--prefix", default="examples/python/", help="prefix of the keys the example writes")
    args = p.parse_args()
    for name in ("cert", "key", "cacert"):
        if not getattr(args, name):
            p.error(f"--{name} (or ES_{name.upper()}) is required")

    store = Store(args.endpoint, args.cert, args.key, args.cacert)
    key = args.prefix + "greeting"
    try:
        # 1. Create the key; prev_revision=0 refuses to overwrite one.
        created = store.put(key, b"hello", prev_revision=0)
        print(f"put {key} revision={created['revision']}")

        # 2. Read it back with its revision.
        value, rev = store.get(key)
        print(f"get {key} value={value.decode()} revision={rev}")

        # 3. Compare-and-swap: succeeds only while the key is still at rev.
        swapped = store.put(key, b"hello again", prev_revision=rev)
        print(f"cas {key} revision={swapped['revision']}")

        # 4. The same swap again is stale: 412 revision_mismatch, nothing written.
        try:
            store.put(key, b"lost update", prev_revision=rev)
            print("error: a stale compare-and-swap was accepted", file=sys.stderr)
            return 1
        except StoreError as e:
            if e.code != "revision_mismatch":
                raise
            print(f"cas refused: code={e.code} status={e.status}")

        # 5. A missing key: 404 key_not_found.
        try:
            store.get(args.prefix + "missing")
            print("error: a missing key was found", file=sys.stderr)
            return 1
        except StoreError as e:
            if e.code != "key_not_found":
                raise
            print(f"get missing: code={e.code} status={e.status}")

        value, rev = store.get(key)
        if value != b"hello again":
            print(f"error: read {value!r} after the swap", file=sys.stderr)
            return 1
        store.delete(key, prev_revision=rev)
        print(f"deleted {key}")
        return 0
    except StoreError as e:
        # Any other code: say it and fail. For a write, no_quorum means the
        # outcome is unknown; read before writing again.
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
