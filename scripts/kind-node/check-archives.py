#!/usr/bin/env python3
"""Check that kind's node-image builder will see every wanted image as "built".

kind reads, from each of the 4 kube-*.tar archives of the release tarball, only the first of
manifest.json / repositories it meets, and from manifest.json only entry [0]. Any wanted
image it does not see there it would try to fetch from a registry, which fails offline.
usage: check-archives.py SERVER_BIN_DIR IMAGES_TXT
"""
import json
import os
import sys
import tarfile

bin_dir, images_txt = sys.argv[1], sys.argv[2]
want = set(open(images_txt).read().split())
seen = set()
for name in ("kube-apiserver.tar", "kube-controller-manager.tar", "kube-scheduler.tar", "kube-proxy.tar"):
    with tarfile.open(os.path.join(bin_dir, name)) as t:
        first = next(m for m in t if m.name in ("manifest.json", "repositories"))
        data = json.load(t.extractfile(first))
        if first.name == "repositories":
            seen |= {f"{repo}:{tag}" for repo, tags in data.items() for tag in tags}
        else:
            seen |= set(data[0]["RepoTags"])
missing = want - seen
print(f"images kind will see as built: {len(seen)} of {len(want)} wanted")
if missing:
    sys.exit(f"MISSING (kind would try to pull them): {sorted(missing)}")
