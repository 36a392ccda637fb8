"""The same export as `servicetitan export crm_customers`, through the Python package: every
record of the feed written to a JSONL file, one `orjson.dumps` per line.

    python benches/cli/export_python.py BASE_URL APP_KEY TENANT_ID CLIENT_ID CLIENT_SECRET OUT
"""

from __future__ import annotations

import sys

import orjson

import servicetitan as st


def main() -> None:
    base, app_key, tenant_id, client_id, client_secret, out = sys.argv[1:7]
    client = st.Client(app_key=app_key, auth_url=base, api_url=base, rate_limit_calls=0)
    tenant = client.tenant(tenant_id=int(tenant_id), client_id=client_id, client_secret=client_secret)
    count = 0
    with open(out, "wb") as f:
        for record in tenant.export("crm/customers"):
            f.write(orjson.dumps(record))
            f.write(b"\n")
            count += 1
    print(count)


if __name__ == "__main__":
    main()
