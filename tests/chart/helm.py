"""Drives Helm's own engine (the PyPI package helm-sdkpy, a binding of Helm's Go library) for
tests/chart.rs:
  lint CHART
  install KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON
  upgrade KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON
Prints the result as JSON on stdout; on failure prints Helm's message on stderr and exits 1.
Release records are Helm's default: Secrets in the release namespace (sent as protobuf, which
serin::sim reads).
"""

import asyncio
import json
import sys

import helm_sdkpy as helm

USAGE = "usage: helm.py lint CHART | (install|upgrade) KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON"


def release(result):
    return {"name": result.get("name"), "version": result.get("version"),
            "manifest": result.get("manifest", ""), "info": result.get("info", {})}


def main(argv):
    if len(argv) == 2 and argv[0] == "lint":
        config = helm.Configuration(namespace="default")
        result = asyncio.run(helm.Lint(config).run(argv[1]))
    elif len(argv) == 6 and argv[0] in ("install", "upgrade"):
        kubeconfig, namespace, name, chart, values = argv[1:]
        config = helm.Configuration(namespace=namespace, kubeconfig=kubeconfig)
        if argv[0] == "install":
            action = helm.Install(config).run(name, chart, values=json.loads(values), wait=False,
                                              timeout=60)
        else:
            action = helm.Upgrade(config).run(name, chart, values=json.loads(values), wait=False,
                                              timeout=60)
        result = release(asyncio.run(action))
    else:
        print(USAGE, file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except helm.HelmError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
