"""Drives Helm's own engine (the PyPI package helm-sdkpy, a binding of Helm's Go library) for
tests/chart.rs: `lint CHART` and `install KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON`.
Prints the result as JSON on stdout; on failure prints Helm's message on stderr and exits 1.

Release records are kept in memory (HELM_DRIVER=memory): Helm's default driver writes them as
Secrets encoded as protobuf, and serin::sim speaks JSON and YAML only (it answers 415 like an API
server without that codec). Every object of the chart itself goes to the sim as JSON.
"""

import asyncio
import json
import os
import sys

os.environ.setdefault("HELM_DRIVER", "memory")

import helm_sdkpy as helm  # noqa: E402


def main(argv):
    if len(argv) >= 2 and argv[0] == "lint":
        config = helm.Configuration(namespace="default")
        result = asyncio.run(helm.Lint(config).run(argv[1]))
    elif len(argv) == 6 and argv[0] == "install":
        kubeconfig, namespace, release, chart, values = argv[1:]
        config = helm.Configuration(namespace=namespace, kubeconfig=kubeconfig)
        result = asyncio.run(
            helm.Install(config).run(
                release, chart, values=json.loads(values), wait=False, timeout=60
            )
        )
        result = {"name": result.get("name"), "manifest": result.get("manifest", ""),
                  "info": result.get("info", {}), "notes": result.get("info", {}).get("notes", "")}
    else:
        print("usage: helm.py lint CHART | install KUBECONFIG NAMESPACE RELEASE CHART VALUES_JSON",
              file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except helm.HelmError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
