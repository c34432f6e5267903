"""Build the monoenergetic kernel libraries shipped in ``theranet/data/kernels/``.

The libraries hold cumulative absorbed-energy curves of monoenergetic electrons
(condensed-history Monte Carlo in water, ``theranet.physics.electron_mc``) and
photons (Monte Carlo per medium, ``theranet.physics.photon_kernels``) on fixed
energy grids. They are the project's own computation, shipped so that a new
(nuclide, voxel size) kernel takes seconds. Rebuild after changing the physics
(and bump ``_DATA_VERSION`` in ``theranet/physics/kernels.py``)::

    .venv/bin/python scripts/build_kernel_library.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from theranet._version import __version__
from theranet.physics import kernels as kern

MEDIA = ("water", "soft_tissue", "bone", "lung", "adipose")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--out", type=Path,
        default=Path(__file__).resolve().parents[1] / "src" / "theranet" / "data" / "kernels",
    )  # fmt: skip
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [("electron", "water", kern._ELECTRON_HISTORIES)]
    jobs += [("photon", m, kern._PHOTON_HISTORIES) for m in MEDIA]
    manifest = {
        "what": "monoenergetic electron and photon kernel libraries (cumulative absorbed "
        "energy fraction vs scaled radius r/r0 for electrons, radius in mm for photons)",
        "computed_by": f"theranet {__version__} scripts/build_kernel_library.py",
        "date": dt.date.today().isoformat(),
        "data_version": kern._DATA_VERSION,
        "files": {},
    }
    for kind, material, n in jobs:
        lib = kern.build_library(kind, material)
        name = f"{kind}_{material}_n{n}_v{kern._DATA_VERSION}.npz"
        np.savez_compressed(
            args.out / name, energies_mev=lib.energies_mev, coord=lib.coord, cum=lib.cum,
            total=lib.total,
        )  # fmt: skip
        manifest["files"][name] = {"kind": kind, "material": material, "histories": n}
        print(f"wrote {name}")
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
