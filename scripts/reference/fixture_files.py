"""Writing reference fixtures, shared by the fixture scripts: one compact JSON file per case."""
import json
import os


def write_json(path, doc):
    """Writes `doc` to `path` as compact JSON, then a newline: the form every fixture takes."""
    with open(path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")


def write_fixture(out_dir, fixture):
    """Writes `fixture` as <out_dir>/<name>.json (see `write_json`) and prints its seed,
    smallest margin to the threshold and size."""
    path = os.path.join(out_dir, fixture["name"] + ".json")
    write_json(path, fixture)
    print(f"{fixture['name']}: seed {fixture['seed']}, min |H-Vth| {fixture['minMargin']:.2e}, "
          f"{os.path.getsize(path) // 1024} KB")
