#!/usr/bin/env python3
"""A client written to SODALITE image-builder's API, in the shape of its client.py: POST the
build params to /build/, poll /status/{invocation_id} until success or failed, print each image's
reference and digest. Usage: IMAGEBUILDER_API_KEY=KEY [IMAGEBUILDER_URL=URL] client.py PARAMS.json
(the README quotes this file; cmd/imagebuilder's TestServeSODALITEClient runs it)."""
import json, os, sys, time

import requests

URL = os.environ.get("IMAGEBUILDER_URL", "http://127.0.0.1:8080")
HEADERS = {"X-API-Key": os.environ["IMAGEBUILDER_API_KEY"]}

with open(sys.argv[1]) as f:
    params = json.load(f)
r = requests.post(f"{URL}/build/", json=params, headers=HEADERS)
if r.status_code == 400:
    sys.exit(r.json())  # every problem with the params, each with its JSON pointer
r.raise_for_status()
invocation_id = r.json()["invocation_id"]

while True:
    status = requests.get(f"{URL}/status/{invocation_id}", headers=HEADERS).json()
    if status["state"] in ("success", "failed"):
        break
    time.sleep(2)
if status["state"] == "failed":
    sys.exit(status["response"])  # the error, naming the step and the image
for image in json.loads(status["response"])["images"]:
    print(image["ref"], image["digest"])
