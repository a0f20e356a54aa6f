"""Inventories of project exports by implementations nobody on this team wrote, for the
structured-diff tests to agree with.

  inventory.py l5x FILE     the Python `l5x` package: controller tags and each program's tags
  inventory.py blark FILE   blark (TwinCAT): the POU's name and its methods, properties, actions
"""
import json
import pathlib
import sys


def l5x_inventory(path):
    import l5x
    prj = l5x.Project(path)
    return {
        "controller_tags": sorted(prj.controller.tags.names),
        "programs": {p: sorted(prj.programs[p].tags.names) for p in prj.programs.names},
    }


def blark_inventory(path):
    from blark.solution import TcPOU
    pou = TcPOU.from_filename(pathlib.Path(path))
    parts = {}
    for p in pou.parts:
        name = getattr(p, "name", None)
        if name is None:  # LineIds and other editor data: not code
            continue
        kind = type(p).__name__.removeprefix("Tc")
        parts.setdefault(kind, []).append(name)
    return {"name": pou.name, "parts": {k: sorted(v) for k, v in parts.items()}}


if __name__ == "__main__":
    fn = {"l5x": l5x_inventory, "blark": blark_inventory}[sys.argv[1]]
    print(json.dumps(fn(sys.argv[2])))
