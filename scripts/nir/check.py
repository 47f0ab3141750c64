"""Loads a NIR file with `nir.read` (which type-checks every edge) and prints its version and
node type counts as JSON."""
import collections
import json
import sys

import nir
import nir.serialization

graph = nir.read(sys.argv[1])
types = collections.Counter(type(n).__name__ for n in graph.nodes.values())
print(json.dumps({'version': nir.serialization.read_version(sys.argv[1]), 'types': types}))
